"""Search the Gemini Observatory Archive (``jsonsummary``) and its calibration manager (``jsoncalmgr``).

Why not ``astroquery.gemini``?  It is the field's client and was checked
(astroquery 0.4.11): its ``Observations.query_criteria`` builds the same
``/jsonsummary/notengineering/NotFail/...`` URLs as :func:`selection` does
(the tests compare them), but

* its table parser turns every column into strings (``exposure_time`` is
  ``'119.9986'``, ``mdready`` is ``'True'``) and keeps a fixed list of 63
  keys, dropping ``present``, ``canonical``, ``processing``, ``entrytime``,
  ``pending_ingest``, ``phot_standards`` and the ``results_truncated``
  marker, so truncation cannot be seen;
* it has no call for the calibration manager (``/jsoncalmgr``) at all, and
  its downloads have no checksum check, deadline or cancel;
* a single ``utc_date`` becomes the literal token ``YYYYMMdd`` (a
  ``strftime`` slip), which the archive silently ignores: the query widens to
  the whole archive (seen with 0.4.11: ``query_criteria(utc_date=date(2017, 6,
  14))`` asks for ``/jsonsummary/notengineering/NotFail/YYYYMMdd``);
* its server is a class attribute bound at import (``URLHelper(conf.server)``),
  so pointing it at another server means patching a global;
* it would add requests, beautifulsoup4, html5lib, keyring and pyvo to the
  kernel's dependencies.

So this module uses the standard library (as :mod:`gmoswidgets.data.download`
does) and keeps every key of every row, typed; astroquery is a test-only
dependency (URL cross-check, and its real GMOS-N ``m101.json`` response).

The archive has no paging: an open query (no date, program or file) returns
at most 500 rows, a closed one 2000.  A table that hit the limit has
``meta['truncated']`` True and ``meta['note']`` saying to narrow the query.
"""
from __future__ import annotations

import posixpath
import urllib.parse
from pathlib import PurePath

import numpy as np
from astropy.table import MaskedColumn, Table

from ..logutils import get_logger
from .client import get_json
from .config import archive_url
from .selection import CAL_TYPES, CLOSED_LIMIT, OPEN_LIMIT, ArchiveError, is_open, selection

__all__ = ["search", "summary_table", "calibrations_for", "SUMMARY_COLUMNS", "PROCESSED"]

_log = get_logger("archive")
#: The columns shown first (the archive's key names), in this order.
SUMMARY_COLUMNS = ("name", "data_label", "object", "filter_name", "exposure_time",
                   "detector_binning", "detector_roi_setting", "ut_datetime", "file_size",
                   "qa_state", "file_md5", "data_md5", "filename", "observation_type",
                   "observation_class", "program_id", "instrument")
#: What ``processed=True`` asks for instead of a raw calibration type.
PROCESSED = {"bias": "processed_bias", "flat": "processed_flat", "fringe": "processed_fringe",
             "bpm": "processed_bpm", "dark": "processed_dark"}
_MARKER = "results_truncated"


def _column(name: str, values: list):
    """A typed, masked column from JSON values (None -> masked); lists/dicts stay objects."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    mask = [v is None for v in values]
    if kinds == {bool}:
        dtype, fill = bool, False
    elif kinds and kinds <= {int}:
        dtype, fill = np.int64, 0
    elif kinds and kinds <= {int, float}:
        dtype, fill = np.float64, np.nan
    elif kinds and kinds <= {str}:
        dtype, fill = str, ""
    elif not kinds:
        dtype, fill = str, ""
    else:
        column = MaskedColumn(np.empty(len(values), dtype=object), name=name, mask=mask)
        column[:] = values
        return column
    data = np.array([fill if v is None else v for v in values], dtype=dtype)
    return MaskedColumn(data, name=name, mask=mask)


def summary_table(rows, *, url: str = "", limit: int | None = None) -> Table:
    """The archive's jsonsummary (or jsonfilelist) rows as a Table, every key kept and typed.

    Parameters
    ----------
    rows : list of dict
        The parsed JSON.
    url : str
        The query (kept in ``meta['url']``).
    limit : int, optional
        The archive's row limit for this query; reaching it marks the table truncated.

    Returns
    -------
    astropy.table.Table
        One row per file; :data:`SUMMARY_COLUMNS` first, then the other keys in
        the archive's order; nulls masked.  ``meta``: ``url``, ``truncated``,
        ``marker`` (the archive's ``results_truncated`` flag), ``note``.
    """
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ArchiveError("the archive's answer is not a list of files")
    keys = [k for k in SUMMARY_COLUMNS if any(k in r for r in rows)]
    for row in rows:
        keys.extend(k for k in row if k not in keys and k != _MARKER)
    table = Table([_column(k, [r.get(k) for r in rows]) for k in keys], masked=True)
    marker = bool(rows and rows[-1].get(_MARKER))
    truncated = limit is not None and len(rows) >= limit
    table.meta.update(url=url, marker=marker, truncated=truncated, note="")
    if truncated:
        table.meta["note"] = (f"the archive returned only its first {len(rows)} results (its limit; "
                              "it has no paging): narrow the query (a shorter date range, a "
                              "filter, an observation class)")
    return table


def search(*, program=None, date=None, object=None, filter=None, obsclass=None, obstype=None,
           instrument=None, binning=None, file=None, qa: str = "NotFail", extra=(),
           orderby: str | None = None, server: str | None = None, cookie: str | None = None,
           timeout: float = 60.0, cancel=None) -> Table:
    """Search the archive's summary of files; criteria combine with AND.

    Parameters
    ----------
    program, date, object, filter, obsclass, obstype, instrument, binning, file, qa, extra
        As for :func:`gmoswidgets.archive.selection.selection`.
    orderby : str, optional
        The archive's ``?orderby=`` (e.g. ``ut_datetime_desc`` for the newest first).
    server : str, optional
        The archive's base URL (default :func:`~gmoswidgets.archive.config.archive_url`).
    cookie : str, optional
        The session cookie value for proprietary data (default ``$GEMINI_ARCHIVE_COOKIE``).
    timeout : float
        Seconds to wait for any one network event.
    cancel : object with ``is_set()``, optional

    Returns
    -------
    astropy.table.Table
        See :func:`summary_table`.  A truncated result is logged (one line) too.

    Raises
    ------
    ArchiveError
        A bad criterion, no network, an HTTP error, a reply that is not JSON.
    """
    tokens = selection(program=program, date=date, object=object, filter=filter,
                       obsclass=obsclass, obstype=obstype, instrument=instrument, binning=binning,
                       file=file, qa=qa, extra=extra)
    url = f"{archive_url(server)}/jsonsummary/{'/'.join(tokens)}"
    if orderby:
        url += f"?orderby={urllib.parse.quote(orderby)}"
    rows = get_json(url, cookie=cookie, timeout=timeout, cancel=cancel, what="the search")
    table = summary_table(rows, url=url, limit=OPEN_LIMIT if is_open(tokens) else CLOSED_LIMIT)
    if table.meta["truncated"]:
        _log.warning(table.meta["note"])
    return table


def _science_names(files) -> list:
    """File names (``N...fits``, no ``.bz2``, no folder) from names, paths or a search Table."""
    if isinstance(files, Table):
        files = list(files["name"])
    elif isinstance(files, (str, PurePath)):
        files = [files]
    names = []
    for item in files:
        name = PurePath(str(item)).name
        name = name[:-4] if name.endswith(".bz2") else name
        if name and name not in names:
            names.append(name)
    return names


def _caltypes(caltypes, processed: bool) -> list:
    out = []
    for caltype in ([caltypes] if isinstance(caltypes, str) else caltypes):
        caltype = str(caltype).strip().lower()
        caltype = PROCESSED.get(caltype, caltype) if processed else caltype
        if caltype not in CAL_TYPES:
            raise ArchiveError(f"unknown calibration type {caltype!r}: one of "
                               f"{', '.join(('bias', 'flat', *PROCESSED.values()))}, ...")
        out.append(caltype)
    return out


def _stored_name(cal: dict, base: str) -> tuple:
    """(stored file name, URL on the configured server) of a calmgr match; URL None if absent."""
    url = cal.get("url")
    if not url:
        return (cal.get("name") or "") + ".bz2", None
    stored = posixpath.basename(urllib.parse.urlsplit(url).path)
    # the archive writes its own host without the port: use the configured base instead
    return stored, f"{base}/file/{urllib.parse.quote(stored)}"


def calibrations_for(files, *, caltypes=("bias", "flat"), processed: bool = False,
                     count: int | None = None, server: str | None = None,
                     cookie: str | None = None, timeout: float = 60.0, cancel=None) -> Table:
    """The archive's calibration manager's matches for each file (``/jsoncalmgr/<type>/<file>``).

    Parameters
    ----------
    files : iterable of str or path, or Table
        Science (or any) files the archive knows, by name; a :func:`search` table works too.
    caltypes : iterable of str
        Calibration types (``bias``, ``flat``, ``processed_bias``, ``processed_fringe``, ...).
    processed : bool
        Ask for the processed kind of each raw type (``bias`` -> ``processed_bias``).
    count : int, optional
        Keep the best ``count`` matches per file and type (the archive gives up to
        50 biases, 20 flats, 1 processed calibration).
    server, cookie, timeout, cancel
        As for :func:`search`.

    Returns
    -------
    astropy.table.Table
        Columns ``science``, ``caltype``, ``rank`` (1 = best), ``name`` (without
        ``.bz2``), ``filename`` (as stored), ``data_label``, ``file_md5`` (of the
        stored ``.bz2``), ``url`` (on the configured server; masked if the file is
        not present).  ``meta['problems']`` lists types the archive failed on.

    Raises
    ------
    ArchiveError
        As for :func:`search`; a file the archive does not know gives no rows
        and a line in ``meta['problems']``.
    """
    base = archive_url(server)
    types = _caltypes(caltypes, processed)
    rows, problems = [], []
    for science in _science_names(files):
        for caltype in types:
            url = f"{base}/jsoncalmgr/{caltype}/{urllib.parse.quote(science)}"
            answer = get_json(url, cookie=cookie, timeout=timeout, cancel=cancel,
                              what=f"the {caltype} of {science}")
            if not answer:
                problems.append(f"{science}: the archive does not know this file")
                continue
            for dataset in answer:
                for info in dataset.get("cal_info") or []:
                    if info.get("error"):
                        problems.append(f"{science}: the archive's calibration manager failed "
                                        f"for {info.get('type')}")
                        continue
                    cals = info.get("cals") or []
                    if not cals:
                        problems.append(f"{science}: no {info.get('type')} found")
                    for rank, cal in enumerate(cals[:count] if count else cals, start=1):
                        stored, file_url = _stored_name(cal, base)
                        rows.append({"science": science, "caltype": info.get("type"),
                                     "rank": rank, "name": cal.get("name"), "filename": stored,
                                     "data_label": cal.get("label"), "file_md5": cal.get("md5"),
                                     "url": file_url})
    keys = ("science", "caltype", "rank", "name", "filename", "data_label", "file_md5", "url")
    table = Table([_column(k, [r[k] for r in rows]) for k in keys], masked=True)
    table.meta.update(problems=problems, caltypes=types)
    for problem in dict.fromkeys(problems):
        _log.warning(problem)
    return table

