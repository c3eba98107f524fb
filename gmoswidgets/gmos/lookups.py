"""GMOS instrument facts: one place, read from DRAGONS' tables.

Every number here comes from ``gmoswidgets/gmos/dragons/gmos-lookups.json``
(DRAGONS' GMOS lookup tables at a fixed commit, re-encoded as JSON; see
``dragons/README.md``):
dated amplifier gains, read noise and bias levels, full-well depths,
detector identities and pixel scales, mosaic geometry per ``DETID``, named
readout regions, fringe filters and the illumination masks.  This module
only gives them a Python shape; the rules that use them (which table for
which date, the saturation formula, the mask alignment) live in
:mod:`gmoswidgets.gmos.descriptors` and :mod:`gmoswidgets.gmos.illumination`.

Besides the JSON, :class:`DetectorType` holds three facts of the raw file
layout that DRAGONS keeps in code: the 32 serial-overscan columns of every
amplifier, the overscan columns next to the data that DRAGONS ignores
(``nbiascontam``: 5 for e2vDD, 4 otherwise) and how many amplifiers per CCD
a full-frame readout uses.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = [
    "ADC_LIMIT", "DetectorType", "DETECTOR_TYPES", "detector_type", "amp_table", "amp_value",
    "well_depth", "bias_removed", "CCDPlacement", "MosaicGeometry", "MOSAIC_GEOMETRY",
    "ROI_SETTINGS", "roi_name", "FRINGE_FILTERS", "READ_SPEED_AMPINTEG_SLOW",
    "READ_SPEED_AMPINTEG_SLOW_EEV", "GAIN_SETTING_THRESHOLD", "READ_MODES", "illum_mask_name",
    "illum_mask_path", "illum_mask_fits", "ILLUM_MASK_NAMES", "tables",
]


@functools.cache
def tables() -> dict:
    """The vendored DRAGONS tables (``dragons/gmos-lookups.json``), parsed once."""
    text = resources.files(__package__).joinpath("dragons", "gmos-lookups.json").read_text()
    return json.loads(text)


_T = tables()

#: The 16-bit ADC limit of every GMOS amplifier, ADU.
ADC_LIMIT = float(_T["saturation"]["adc_limit_adu"])

#: Readout with ``AMPINTEG`` above this many ns is "slow" (DRAGONS' rule):
#: Hamamatsu CCDs, and the EEV / e2vDD CCDs.
_AMPINTEG = _T["read_settings"]["read_speed_from_AMPINTEG"]
READ_SPEED_AMPINTEG_SLOW = int(_AMPINTEG["hamamatsu_threshold"])
READ_SPEED_AMPINTEG_SLOW_EEV = int(_AMPINTEG["other_threshold"])
#: A raw header ``GAIN`` below this is the "low" gain setting (DRAGONS' rule).
GAIN_SETTING_THRESHOLD = float(_T["read_settings"]["gain_setting_from_GAIN"]["threshold"])
#: Read-mode names by 'gain_setting/read_speed' (DRAGONS' ``read_mode``: 'low/slow' -> 'Normal').
READ_MODES: dict[str, str] = dict(_T["read_settings"]["read_mode_map"]["default"])


# -- detector arrays -----------------------------------------------------------

@dataclass(frozen=True)
class DetectorType:
    """One GMOS detector array (an ``INSTRUME`` + PHU ``DETTYPE``).

    Attributes
    ----------
    dettype : str
        The PHU ``DETTYPE`` value.
    name : str
        DRAGONS' ``detector_name(pretty=True)``: 'Hamamatsu-N', 'Hamamatsu-S',
        'e2vDD' or 'EEV'.
    instrument : str
        ``GMOS-N`` or ``GMOS-S``.
    pixel_scale : float
        Unbinned pixel scale in arcsec (DRAGONS multiplies it by the y binning).
    nccds : int
        Number of CCDs (3).
    namps : int
        Amplifiers of a full-frame readout (12 Hamamatsu, 6 e2vDD, 3 EEV).
    ccd_width, ccd_height : int
        Unbinned size of one CCD's data area (x, y).
    overscan_width : int
        Serial-overscan (BIASSEC) columns of each amplifier, at every binning.
    nbiascontam : int
        Overscan columns next to the data contaminated by it (DRAGONS: 5
        for e2vDD, 4 otherwise).
    """

    dettype: str
    name: str
    instrument: str
    pixel_scale: float
    nccds: int
    namps: int
    ccd_width: int
    ccd_height: int
    overscan_width: int
    nbiascontam: int

    @property
    def amp_width(self) -> int:
        """Unbinned width of one amplifier's data area in a full-frame readout."""
        return self.ccd_width * self.nccds // self.namps

    @property
    def family(self) -> str:
        """'Hamamatsu' or 'EEV/e2vDD' (the ``detector_family`` of the ROI table)."""
        return "Hamamatsu" if self.name.startswith("Hamamatsu") else "EEV/e2vDD"


#: Full-frame amplifiers per CCD, by pretty name (the illumination masks' NAMPS).
_AMPS_PER_CCD = {"Hamamatsu-N": 4, "Hamamatsu-S": 4, "e2vDD": 2, "EEV": 1}
_OVERSCAN_COLUMNS = 32
_NBIASCONTAM = {"e2vDD": 5}


def _full_frame(family: str) -> list:
    return next(r["section_0based_unbinned"] for r in _T["rois"]["by_name"]["Full Frame"]
                if r["detector_family"] == family)


def _detector_types() -> dict:
    out = {}
    for dettype, entry in _T["detectors"]["by_DETTYPE"].items():
        name = entry["pretty_name"]
        family = "Hamamatsu" if name.startswith("Hamamatsu") else "EEV/e2vDD"
        x1, x2, y1, y2 = _full_frame(family)
        for site, scale in entry["pixel_scale_arcsec_unbinned"].items():
            out[(site, dettype)] = DetectorType(
                dettype=dettype, name=name, instrument=site, pixel_scale=float(scale), nccds=3,
                namps=3 * _AMPS_PER_CCD[name], ccd_width=(x2 - x1) // 3, ccd_height=y2 - y1,
                overscan_width=_OVERSCAN_COLUMNS, nbiascontam=_NBIASCONTAM.get(name, 4))
    return out


#: Detector arrays by (INSTRUME, DETTYPE).
DETECTOR_TYPES: dict[tuple[str, str], DetectorType] = _detector_types()


def detector_type(instrument: str, dettype: str) -> DetectorType | None:
    """Return the :class:`DetectorType` for an instrument and ``DETTYPE``, or None."""
    return DETECTOR_TYPES.get((str(instrument).strip(), str(dettype).strip()))


# -- dated amplifier tables ------------------------------------------------------

def _in_window(date: _dt.date, entry: dict) -> bool:
    start, stop = entry["valid_from"], entry["valid_to"]
    if start is not None:
        start = _dt.date.fromisoformat(start)
        if date < start or (date == start and not entry["from_inclusive"]):
            return False
    if stop is not None:
        stop = _dt.date.fromisoformat(stop)
        if date > stop or (date == stop and not entry["to_inclusive"]):
            return False
    return True


def amp_table(quantity: str, date: _dt.date) -> str:
    """Name of DRAGONS' table of ``quantity`` valid on ``date``.

    Parameters
    ----------
    quantity : str
        'gain' (e-/ADU), 'read_noise' (e-) or 'bias' (ADU).
    date : datetime.date
        The frame's UT date.

    Returns
    -------
    str
        E.g. 'gmosampsGainBefore20231214'.  Read noise switches one day later
        than gain on two boundaries, as in DRAGONS.
    """
    for entry in _T["amp_tables"]["selection"][quantity]:
        if _in_window(date, entry):
            return entry["table"]
    raise ValueError(f"no {quantity} table covers {date}")  # the windows cover every date


def amp_value(quantity: str, ampname: str, read_speed: str, gain_setting: str,
              date: _dt.date) -> float | None:
    """An amplifier's gain, read noise or bias level on a date, or None.

    Parameters
    ----------
    quantity : str
        'gain' (e-/ADU), 'read_noise' (e-) or 'bias' (ADU).
    ampname : str
        The extension's ``AMPNAME``.
    read_speed, gain_setting : str
        'slow'/'fast' and 'low'/'high'.
    date : datetime.date
        The frame's UT date; selects the table (:func:`amp_table`).

    Returns
    -------
    float or None
        None when the amplifier is not in the table valid on that date
        (DRAGONS does not fall back to another table), and for the
        Hamamatsu slow-read / high-gain entries, which DRAGONS fills with
        placeholders (gain 1, read noise 0, bias 0), not measurements.
    """
    ampname = str(ampname).strip()
    if (read_speed, gain_setting) == _PLACEHOLDER_MODE and ampname.startswith("BI"):
        return None
    values = _T["amp_tables"]["tables"][amp_table(quantity, date)]["values"]
    try:
        return float(values[ampname][read_speed][gain_setting])
    except (KeyError, TypeError):
        return None


#: Read mode whose Hamamatsu (AMPNAME 'BI...') entries are placeholders in DRAGONS' tables.
_PLACEHOLDER_MODE = ("slow", "high")


def well_depth(detector: str, ampname: str) -> float | None:
    """Full-well depth in electrons at 1x1, by PHU ``DETECTOR`` and ``AMPNAME``, or None."""
    entry = _T["saturation"]["thresholds_by_DETECTOR"].get(str(detector).strip())
    if entry is None:
        return None
    value = entry["well_electrons_1x1"].get(str(ampname).strip())
    return None if value is None else float(value)


def bias_removed(phu, header, read_speed: str, gain_setting: str, date: _dt.date) -> float:
    """The bias level already removed from an extension's data, ADU (DRAGONS' ``B``).

    0 unless the data are bias-subtracted (PHU ``DARKIM`` or an ``OVERSCAN``
    keyword); then the ``OVERSCAN`` value, else ``RAWBIAS``, else the table.
    """
    if "DARKIM" not in phu and "OVERSCAN" not in header:
        return 0.0
    for key in ("OVERSCAN", "RAWBIAS"):
        if key in header:
            return float(header[key])
    value = amp_value("bias", header.get("AMPNAME", ""), read_speed, gain_setting, date)
    return value or 0.0


# -- mosaic geometry -------------------------------------------------------------

@dataclass(frozen=True)
class CCDPlacement:
    """Where one CCD sits in the mosaic, relative to the central CCD.

    Attributes
    ----------
    shift : tuple of float
        (x, y) centre-to-centre shift in unbinned pixels.
    rotation : float
        Rotation in degrees (counter-clockwise) about the CCD centre.
    """

    shift: tuple[float, float]
    rotation: float


@dataclass(frozen=True)
class MosaicGeometry:
    """Mosaic geometry of one detector set (key: the PHU ``DETID``)."""

    ccd1: CCDPlacement
    ccd3: CCDPlacement
    tile_gap: int


def _mosaic_geometry() -> dict:
    out = {}
    for detid, entry in _T["mosaic_geometry"]["by_DETID"].items():
        left, _, right = entry["ccds_left_to_right"]
        placements = [CCDPlacement(tuple(float(v) for v in ccd["shift_xy_unbinned_px"]),
                                   float(ccd["rotation_deg_ccw"])) for ccd in (left, right)]
        out[detid] = MosaicGeometry(*placements, int(entry["tile_gap_unbinned_px"]))
    return out


#: Mosaic geometry of every detector set, keyed by PHU ``DETID``.
MOSAIC_GEOMETRY: dict[str, MosaicGeometry] = _mosaic_geometry()


# -- readout regions -------------------------------------------------------------

def _roi_settings() -> dict:
    out: dict[int, dict[str, list]] = {}
    for name, variants in _T["rois"]["by_name"].items():
        for variant in variants:
            x1, x2, y1, y2 = variant["section_0based_unbinned"]
            height = 4224 if "Hamamatsu" in variant["detector_family"] else 4608
            extent = (x1 + 1, x2 - x1, y1 + 1, y2 - y1)
            out.setdefault(height, {}).setdefault(name, []).append(extent)
    return out


#: Named readout regions (DRAGONS ``gmosRoiSettings``) as 1-based (x1, x size,
#: y1, y size) in unbinned pixels, keyed by CCD height (Hamamatsu 4224,
#: EEV/e2vDD 4608); the first variant of each name is the canonical one.
#: The header keywords DETRO1XS / DETRO1YS hold the sizes in *binned* pixels.
ROI_SETTINGS: dict[int, dict[str, list[tuple[int, int, int, int]]]] = _roi_settings()


def roi_name(x1: int, xsize: int, y1: int, ysize: int) -> str:
    """DRAGONS' name of a readout region given 1-based start and unbinned sizes, or 'Custom'.

    Every listed section of every detector family is compared, as DRAGONS does.
    """
    roi = (int(x1), int(xsize), int(y1), int(ysize))
    for settings in ROI_SETTINGS.values():
        for name, variants in settings.items():
            if roi in variants:
                return name
    return "Custom"


# -- fringing --------------------------------------------------------------------

#: Filters that need fringe correction, per pretty detector name.
FRINGE_FILTERS: dict[str, frozenset[str]] = {
    name: frozenset(filters)
    for name, filters in _T["fringe"]["needs_correction_by_pretty_detector"].items()}


# -- illumination masks ----------------------------------------------------------

#: DRAGONS' ``illumMask_dict``: key -> vendored file name, in DRAGONS' order.
ILLUM_MASK_NAMES: dict[str, str] = dict(_T["illumination_masks"]["maskdb_illumMask_dict"])


def illum_mask_name(instrument: str, detector: str, xbin: int, ybin: int,
                    amps_per_ccd: int) -> str | None:
    """The illumination mask DRAGONS picks for a frame, or None.

    Parameters
    ----------
    instrument : str
        ``INSTRUME``.
    detector : str
        Pretty detector name ('Hamamatsu-N', 'e2vDD', 'EEV' ...).
    xbin, ybin : int
        Binning.
    amps_per_ccd : int
        PHU ``NAMPS``.

    Returns
    -------
    str or None
        File name in ``dragons/illum``: the last ``illumMask_dict`` key that
        starts with ``{INSTRUME}_{first 3 letters}_{xbin}{ybin}_{3*NAMPS}amp``.
    """
    prefix = f"{instrument}_{detector[:3]}_{xbin}{ybin}_{3 * int(amps_per_ccd)}amp"
    names = [name for key, name in ILLUM_MASK_NAMES.items() if key.startswith(prefix)]
    return names[-1] if names else None


def illum_mask_path(name: str):
    """Path (a :class:`importlib.resources` traversable) of a vendored illumination mask."""
    return resources.files(__package__).joinpath("dragons", "illum", name)



def _cache_dir() -> Path:
    """Where decompressed masks are kept: ``$XDG_CACHE_HOME/gmoswidgets``, else ``~/.cache/...``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gmoswidgets"


def illum_mask_fits(name: str) -> bytes:
    """The FITS file of a vendored illumination mask, decompressed (the bytes DRAGONS reads).

    Decompressing bzip2 costs 0.1 s for a 2x2 mask and 1 s for a 1x1 one,
    in every ``reduce`` that flags unilluminated pixels, so the result is
    kept in the user's cache directory (:func:`_cache_dir`), under a name
    holding the MD5 of the vendored file: a changed mask is never read
    stale.  A cache that cannot be written or read is skipped.
    """
    import bz2          # here: `caldb` and `dataselect` read the tables, not the masks
    import hashlib

    from ..atomic import atomic_path
    packed = illum_mask_path(name).read_bytes()
    cached = _cache_dir() / f"{name.removesuffix('.bz2')}.{hashlib.md5(packed).hexdigest()}"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    raw = bz2.decompress(packed)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:    # whole or absent, whoever else writes it
            tmp.write_bytes(raw)
    except OSError:
        pass
    return raw
