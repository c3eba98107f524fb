"""Build archive selections (the ``/tok/tok/...`` part of a query URL) from keyword criteria.

The archive silently ignores a token it does not recognise, which *widens*
the query (``/r`` instead of ``filter=r`` returns every filter).  So each
value is checked here against the archive's own vocabulary (see
``shared/reference/gemini-archive-api.md`` §1) and a bad one is refused with
one line instead of being sent.
"""
from __future__ import annotations

import datetime as _dt
import re
import urllib.parse

from ..errors import GmosError

__all__ = ["ArchiveError", "selection", "is_open", "OPEN_LIMIT", "CLOSED_LIMIT", "INSTRUMENTS",
           "OBSERVATION_CLASSES", "OBSERVATION_TYPES", "CAL_TYPES"]

#: Row limits of a query without (open) and with (closed) a date, program or file name.
OPEN_LIMIT, CLOSED_LIMIT = 500, 2000
INSTRUMENTS = ("GMOS-N", "GMOS-S", "GMOS")
OBSERVATION_CLASSES = ("dayCal", "partnerCal", "acqCal", "acq", "science", "progCal", "nightCal")
OBSERVATION_TYPES = ("DARK", "ARC", "FLAT", "BIAS", "OBJECT", "PINHOLE", "RONCHI", "CAL", "FRINGE",
                     "MASK", "STANDARD", "SLITILLUM", "BPM")
#: The calibration manager's types (``/jsoncalmgr/<caltype>/...``).
CAL_TYPES = ("bias", "processed_bias", "dark", "processed_dark", "processed_bpm", "flat",
             "processed_flat", "arc", "processed_arc", "pinhole", "processed_pinhole",
             "processed_fringe", "ronchi_mask", "lampoff_flat", "qh_flat", "domeflat",
             "lampoff_domeflat", "mask", "slitillum", "processed_slitillum", "standard",
             "processed_standard", "telluric", "processed_telluric", "polarization_standard",
             "astrometric_standard", "polarization_flat", "specphot", "photometric_standard",
             "processed_slitflat", "processed_slit")
_BINNING = re.compile(r"^([1248])x([1248])$")
_PROGRAM = re.compile(r"^(G[NS]-(\d{4}[AB]-(Q|C|SV|QS|DD|LP|FT|DS|CAL|ENG)-\d+|(CAL|ENG)\d{8})"
                      r"|G-\d{4}[AB]-(\d{4}-[CDFLQSVP]|(CAL|ENG|COM|MON)-[A-Za-z0-9-]+-\d+))"
                      r"(-\d+(-\d+(-[A-Za-z][A-Za-z0-9-]*)?)?)?$")
_FILE = re.compile(r"^[NS]\d{8}S\d{4}[A-Za-z0-9_]*(\.fits)?(\.bz2)?$")
_DATE = r"(\d{8}|\d{4}-\d{2}-\d{2})"


class ArchiveError(GmosError):
    """A bad query, or an archive answer that cannot be used (one line for the user)."""


def _date(value: str) -> str:
    try:
        parsed = _dt.date.fromisoformat(value if "-" in value else
                                        f"{value[:4]}-{value[4:6]}-{value[6:]}")
    except ValueError:
        raise ArchiveError(f"not a date: {value!r} (use YYYYMMDD or YYYY-MM-DD)") from None
    if not 1999 <= parsed.year <= 2100:
        raise ArchiveError(f"the archive has no data dated {value}")
    return parsed.strftime("%Y%m%d")


def _date_token(date) -> str:
    """``20170614``, ``2017-06-14``, ``20170601-20170630``, ``A--B``, a date or a (start, end) pair."""
    if isinstance(date, (_dt.date, _dt.datetime)):
        return date.strftime("%Y%m%d")
    if isinstance(date, (tuple, list)) and len(date) == 2:
        return f"{_date_token(date[0])}-{_date_token(date[1])}"
    text = str(date).strip()
    match = re.fullmatch(rf"{_DATE}(?:--?{_DATE})?", text)
    if not match:
        raise ArchiveError(f"not a date or date range: {text!r} (use YYYYMMDD or "
                           "YYYYMMDD-YYYYMMDD; a year or month alone selects a single day)")
    first = _date(match.group(1))
    return f"{first}-{_date(match.group(2))}" if match.group(2) else first


def _choice(value: str, allowed, what: str, *, case=str.lower) -> str:
    for option in allowed:
        if case(option) == case(str(value).strip()):
            return option
    raise ArchiveError(f"unknown {what} {value!r}: one of {', '.join(allowed)}")


def _quote(value: str) -> str:
    """A value for ``key=value``: ``/`` becomes ``=slash=`` (the archive's escape), then %-quoted."""
    return urllib.parse.quote(str(value).strip().replace("/", "=slash="), safe="=*+-._~")


def _program_token(program: str) -> str:
    text = str(program).strip()
    if _PROGRAM.match(text):
        return text
    if not text or "/" in text:
        raise ArchiveError(f"not a program ID: {program!r}")
    return f"progid={_quote(text)}"


def _filter_token(name: str) -> str:
    text = str(name).strip()
    pretty = re.sub(r"_G\d{4}.*$", "", text)   # the archive matches DRAGONS' pretty name: i, not i_G0302
    if not pretty or "/" in pretty:
        raise ArchiveError(f"not a filter name: {name!r}")
    return f"filter={_quote(pretty)}"


def selection(*, program=None, date=None, object=None, filter=None, obsclass=None, obstype=None,
              instrument=None, binning=None, file=None, qa: str = "NotFail",
              engineering: bool = False, extra=()) -> list:
    """The selection tokens for these criteria (all ANDed), checked against the archive's vocabulary.

    Parameters
    ----------
    program : str, optional
        Program, observation ID or data label (``GN-2017A-SV-151``).
    date : str, datetime.date or (start, end), optional
        A UTC date or an inclusive range (``20170601-20170630``).
    object : str, optional
        Object name; case-insensitive, ``*`` at either end is a wildcard.
    filter : str, optional
        Filter (``i``; ``i_G0302`` is accepted and sent as ``i``).
    obsclass, obstype : str, optional
        ``science``, ``dayCal``, ...; ``OBJECT``, ``BIAS``, ``FLAT``, ...
    instrument : str, optional
        ``GMOS-N``, ``GMOS-S`` or ``GMOS`` (both).
    binning : str or int, optional
        ``2x2`` (or 2).
    file : str, optional
        A file name (``N20170614S0201.fits``).
    qa : str
        QA filter token (default ``NotFail``).
    engineering : bool
        Include engineering data.
    extra : iterable of str
        Further raw tokens, passed on as they are.

    Returns
    -------
    list of str

    Raises
    ------
    ArchiveError
        A value the archive would not recognise (it would silently widen the query).
    """
    tokens = []
    if instrument:
        tokens.append(_choice(instrument, INSTRUMENTS, "instrument", case=str.upper))
    if program:
        tokens.append(_program_token(program))
    if date:
        tokens.append(_date_token(date))
    if file:
        name = str(file).strip()
        if not _FILE.match(name):
            raise ArchiveError(f"not a Gemini file name: {file!r}")
        tokens.append(name)
    if obsclass:
        tokens.append(_choice(obsclass, OBSERVATION_CLASSES, "observation class"))
    if obstype:
        tokens.append(_choice(obstype, OBSERVATION_TYPES, "observation type"))
    if filter:
        tokens.append(_filter_token(filter))
    if binning:
        text = f"{binning}x{binning}" if str(binning).isdigit() else str(binning).strip().lower()
        if not _BINNING.match(text):
            raise ArchiveError(f"not a binning: {binning!r} (use 1x1, 2x2, 4x4, ...)")
        tokens.append(text)
    if object:
        tokens.append(f"object={_quote(object)}")
    if qa:
        tokens.append(qa)
    if not engineering:
        tokens.append("notengineering")
    tokens.extend(str(t) for t in extra)
    return tokens


def is_open(tokens) -> bool:
    """True for a selection without a date, program or file: the archive caps it at 500 rows."""
    for token in tokens:
        if (re.fullmatch(rf"{_DATE}(--?{_DATE})?", token) or _PROGRAM.match(token)
                or _FILE.match(token) or token.split("=", 1)[0] in
                ("progid", "obsid", "datalabel", "date", "daterange", "night", "nightrange",
                 "filename", "filepre")):
            return False
    return True
