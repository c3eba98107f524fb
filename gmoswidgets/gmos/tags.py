"""Tags of a GMOS file, computed from headers only, as DRAGONS prints them.

Works on anything with ``phu`` and ``ext_headers`` attributes: a
:class:`~gmoswidgets.frame.HeaderSet` (header-only listing) or a
:class:`~gmoswidgets.frame.Frame`.
"""
from __future__ import annotations

from .keywords import GEM_TLM, PROCESSED_MARKERS

__all__ = ["tags_of", "format_tags"]


def _s(phu, key) -> str:
    return str(phu.get(key, "")).strip()


def _num(phu, key):
    try:
        return float(phu.get(key))
    except (TypeError, ValueError):
        return None


def _observatory_tags(phu) -> set:
    tags = set()
    site = (_s(phu, "OBSERVAT") or _s(phu, "TELESCOP")).lower()
    if "gemini" in site:
        tags.add("GEMINI")
        if "north" in site:
            tags.add("NORTH")
        elif "south" in site:
            tags.add("SOUTH")
    if _s(phu, "INSTRUME").upper().startswith("GMOS"):
        tags.add("GMOS")
    return tags


def _type_tags(phu) -> set:
    tags = set()
    obstype = _s(phu, "OBSTYPE").upper()
    obj = _s(phu, "OBJECT")
    obsmode = _s(phu, "OBSMODE").upper()
    grating = _s(phu, "GRATING").upper()
    imaging = obsmode == "IMAGE" or (obsmode == "" and grating in ("MIRROR", ""))
    if obstype == "BIAS":
        tags |= {"BIAS", "CAL"}
    elif obstype == "DARK":
        tags |= {"DARK", "CAL"}
    elif obstype == "BPM":
        tags |= {"BPM", "CAL"}
    elif obstype == "FLAT":
        tags |= {"FLAT", "CAL", "GCALFLAT"}
    elif obstype == "OBJECT" and obj.lower() == "twilight":
        tags |= {"FLAT", "TWILIGHT", "CAL"}
    if obstype not in ("BIAS", "DARK", "BPM") and imaging:
        tags.add("IMAGE")
    elif obstype not in ("BIAS", "DARK", "BPM"):
        tags.add("SPECT")
    if _s(phu, "OBSCLASS").lower() in ("acq", "acqcal"):
        tags.add("ACQUISITION")
    return tags


def _tracking_tags(phu) -> set:
    tags = set()
    frame = _s(phu, "FRAME").upper()
    if frame in ("AZEL_TOPO", "AZEL_TARGET"):
        tags.add("AZEL_TARGET")
        tags.add("NON_SIDEREAL")
    else:
        ra_rate, dec_rate = _num(phu, "RATRACK"), _num(phu, "DECTRACK")
        if ra_rate is None and dec_rate is None:
            tags.add("NON_SIDEREAL" if not _s(phu, "TRKFRAME") else "SIDEREAL")
        elif (ra_rate or 0.0) == 0.0 and (dec_rate or 0.0) == 0.0:
            tags.add("SIDEREAL")
        else:
            tags.add("NON_SIDEREAL")
    airmass = _num(phu, "AIRMASS")
    elevation = _num(phu, "ELEVATIO")
    if airmass == 1.0 or (elevation is not None and elevation >= 89.99):
        tags.add("AT_ZENITH")
    return tags


def _processing_tags(phu) -> set:
    tags = set()
    keys = set(phu.keys())
    if GEM_TLM not in keys:
        tags.add("RAW")
    if any("PREPAR" in key for key in keys):
        tags.add("PREPARED")
    else:
        tags.add("UNPREPARED")
    for key, implied in PROCESSED_MARKERS.items():
        if key in keys:
            tags |= implied
    if "SUBOVER" in keys:
        tags.add("OVERSCAN_SUBTRACTED")
    if "TRIMOVER" in keys:
        tags.add("OVERSCAN_TRIMMED")
    return tags


def tags_of(headers) -> frozenset:
    """Return the set of tags of a file from its headers.

    Parameters
    ----------
    headers : HeaderSet or Frame
        Anything with a ``phu`` header.

    Returns
    -------
    frozenset of str
        E.g. ``{'BIAS', 'CAL', 'GEMINI', 'GMOS', 'NORTH', 'RAW', ...}``.
    """
    phu = headers.phu
    tags = _observatory_tags(phu) | _type_tags(phu) | _tracking_tags(phu) | _processing_tags(phu)
    if "PROCESSED" in tags:
        tags.discard("UNPREPARED")
    if "PROCESSED_SCIENCE" in tags:
        tags.discard("CAL")
    return frozenset(tags)


def format_tags(tags) -> str:
    """Format tags as typewalk prints them: ``(BIAS) (CAL) (GEMINI) ...``, sorted."""
    return " ".join(f"({tag})" for tag in sorted(tags))
