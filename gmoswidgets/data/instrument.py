"""The simulated instrument: DRAGONS' GMOS facts, read with the simulator's own code.

Everything configuration-dependent (site, detector set, amplifiers and their
order, overscan side, gains, read noise, bias levels, saturation, geometry,
pixel scale, ROIs, illumination masks) comes from the vendored DRAGONS tables
``gmoswidgets/gmos/dragons/gmos-lookups.json`` and the headers of DRAGONS'
illumination masks ``gmoswidgets/gmos/dragons/illum/*.fits.bz2``.  The
pipeline reads the same *facts* with *its* code (``gmoswidgets.gmos``); this
module shares no function with it, so the tests compare two independent
readings.

A configuration is chosen by (instrument, detector family, observation date):
the detector set (``DETID``) is the one of that site and family whose dated
gain tables cover the date (``detectors.by_DETID[..].dates_with_gains_for_all_amps``);
when two sets qualify (GMOS-S EEV before 2015) the one DRAGONS made masks on
wins.
"""
from __future__ import annotations

import bz2
import datetime as dt
import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from ..errors import ParameterError

__all__ = ["DRAGONS_DIR", "INSTRUMENTS", "DETECTORS", "READ_SPEEDS", "GAIN_SETTINGS", "OVERSCAN_COLUMNS",
           "ADC_LIMIT", "Configuration", "configuration", "default_date", "facts", "open_mask",
           "check_dates"]

#: Folder of the vendored DRAGONS tables and masks (data files, not pipeline code).
DRAGONS_DIR = Path(__file__).resolve().parent.parent / "gmos" / "dragons"
INSTRUMENTS = ("GMOS-N", "GMOS-S")
#: Command-line detector names -> DRAGONS' pretty detector name (prefix).
DETECTORS = {"hamamatsu": "Hamamatsu", "e2vdd": "e2vDD", "eev": "EEV"}
READ_SPEEDS = ("slow", "fast")
GAIN_SETTINGS = ("low", "high")
#: Binned overscan columns of every raw extension: each BIASSEC of the raw
#: frames DRAGONS' masks were made from ends 32 binned columns past the data.
OVERSCAN_COLUMNS = 32
#: The 16-bit ADC limit (ADU).
ADC_LIMIT = 65535.0
#: Science night of the default data set of each configuration: inside the
#: detector set's service with DRAGONS' gain tables, so that each era's table
#: is exercised (GMOS-N Hamamatsu: the tutorial's own dates).
_DEFAULT_DATES = {
    ("GMOS-N", "hamamatsu"): dt.date(2017, 6, 14),
    ("GMOS-S", "hamamatsu"): dt.date(2024, 3, 14),
    ("GMOS-N", "e2vdd"): dt.date(2016, 3, 14),
    ("GMOS-N", "eev"): dt.date(2010, 3, 14),
    ("GMOS-S", "eev"): dt.date(2012, 3, 14),
}
#: PHU AMPINTEG (ns) written for each read speed; DRAGONS calls a Hamamatsu
#: read slow above 8000 ns, an EEV/e2v read slow above 2000 ns.
_AMPINTEG = {("Hamamatsu", "slow"): 11880, ("Hamamatsu", "fast"): 5300,
             ("other", "slow"): 5000, ("other", "fast"): 1000}


@functools.lru_cache(maxsize=1)
def facts() -> dict:
    """DRAGONS' GMOS tables (the vendored JSON), parsed once."""
    with open(DRAGONS_DIR / "gmos-lookups.json") as fh:
        return json.load(fh)


def _iso(day) -> dt.date | None:
    return None if day is None else dt.date.fromisoformat(day)


def _dated_table(quantity: str, day: dt.date) -> dict:
    """The amp table of ``quantity`` ('gain', 'read_noise', 'bias') valid on ``day``."""
    tables = facts()["amp_tables"]
    for window in tables["selection"][quantity]:
        start, stop = _iso(window["valid_from"]), _iso(window["valid_to"])
        after = start is None or (day >= start if window["from_inclusive"] else day > start)
        before = stop is None or (day <= stop if window["to_inclusive"] else day < stop)
        if after and before:
            return {"name": window["table"], "values": tables["tables"][window["table"]]["values"]}
    raise ParameterError(f"no DRAGONS {quantity} table covers {day}")


def _window_name(day: dt.date) -> tuple:
    """The names of the gain, read-noise and bias tables valid on ``day``."""
    return tuple(_dated_table(q, day)["name"] for q in ("gain", "read_noise", "bias"))


def open_mask(filename: str) -> fits.HDUList:
    """Open a DRAGONS illumination mask, decompressed in memory (one pass; seeking in bz2 is slow)."""
    with bz2.open(DRAGONS_DIR / "illum" / filename) as fh:
        return fits.open(io.BytesIO(fh.read()))


@functools.lru_cache(maxsize=None)
def _mask_headers(filename: str) -> tuple:
    """(PHU, [extension headers]) of a DRAGONS illumination mask."""
    with open_mask(filename) as hdus:
        return hdus[0].header.copy(), [hdu.header.copy() for hdu in hdus[1:]]


@dataclass(frozen=True)
class Amp:
    """One amplifier of the detector set as read out in full frame.

    Attributes
    ----------
    ampname, ccdname : str
        ``AMPNAME`` (key of DRAGONS' amp tables) and ``CCDNAME``.
    ccd : int
        0, 1, 2 for CCD1..CCD3 (left to right).
    x0 : int
        First unbinned CCD column read by the amplifier (0-based).
    overscan_right : bool
        Whether the overscan columns follow the data (else they precede it).
    """

    ampname: str
    ccdname: str
    ccd: int
    x0: int
    overscan_right: bool


@dataclass(frozen=True)
class Configuration:
    """A GMOS detector configuration and the DRAGONS facts that go with it.

    Build it with :func:`configuration`.  Amplifier values (``gains``,
    ``read_noises``, ``bias_levels``, ``wells``) are keyed by ``AMPNAME``.
    """

    instrument: str
    detector: str            # 'hamamatsu' | 'e2vdd' | 'eev'
    date: dt.date
    read_speed: str
    gain_setting: str
    detid: str
    dettype: str
    pretty_name: str
    detector_keyword: str
    pixel_scale: float       # arcsec per unbinned pixel
    ccd_width: int
    ccd_height: int
    ccdsize: str
    amps: tuple              # Amp, in file order
    placements: tuple        # per CCD: ((shift x, shift y), rotation deg ccw)
    gains: dict = field(hash=False)
    read_noises: dict = field(hash=False)
    bias_levels: dict = field(hash=False)
    wells: dict = field(hash=False)
    tables: tuple = ()        # names of the gain, read-noise, bias tables used

    @property
    def site(self) -> str:
        """``'North'`` or ``'South'``."""
        return "North" if self.instrument == "GMOS-N" else "South"

    @property
    def prefix(self) -> str:
        """File-name and program prefixes: ``'N'``/``'S'`` and ``'GN'``/``'GS'``."""
        return self.instrument[-1]

    @property
    def amps_per_ccd(self) -> int:
        """Amplifiers read per CCD (PHU ``NAMPS``)."""
        return len(self.amps) // 3

    @property
    def amp_width(self) -> int:
        """Unbinned columns read by one amplifier."""
        return self.ccd_width // self.amps_per_ccd

    @property
    def ampinteg(self) -> int:
        """PHU ``AMPINTEG`` for the read speed."""
        family = "Hamamatsu" if self.detector == "hamamatsu" else "other"
        return _AMPINTEG[(family, self.read_speed)]

    @property
    def fringe_filters(self) -> tuple:
        """Filters DRAGONS fringe-corrects on this detector."""
        return tuple(facts()["fringe"]["needs_correction_by_pretty_detector"][self.pretty_name])

    def saturation(self, ampname: str, binning: int) -> float:
        """Raw saturation level (ADU) of an amplifier, as DRAGONS computes it.

        ``min(W * bin / g, 65535)`` with the 1x1 well depth ``W`` (e-) of
        the PHU ``DETECTOR`` and the dated gain ``g``; the ADC limit for
        EEV, for more than 2 binned pixels, or when the well is not tabled.
        Raw data carry no subtracted bias, so DRAGONS' bias term is 0.
        """
        bin_factor = binning * binning
        well = self.wells.get(ampname)
        if self.pretty_name == "EEV" or bin_factor > 2 or well is None:
            return ADC_LIMIT
        return min(well * bin_factor / self.gains[ampname], ADC_LIMIT)

    def roi_extent(self, roi: str) -> tuple:
        """Unbinned (x1 1-based, x size, y1 1-based, y size) of a named ROI for this detector."""
        family = "Hamamatsu" if self.detector == "hamamatsu" else "EEV/e2vDD"
        for variant in facts()["rois"]["by_name"][roi]:
            if variant["detector_family"] == family:
                x1, x2, y1, y2 = variant["section_0based_unbinned"]
                return x1 + 1, x2 - x1, y1 + 1, y2 - y1
        raise ParameterError(f"DRAGONS lists no {roi!r} region for {self.pretty_name}")

    def illumination_mask(self, binning: int) -> str | None:
        """File name of DRAGONS' illumination mask for this configuration and binning.

        DRAGONS' rule: the last ``maskdb`` key starting with
        ``<INSTRUME>_<det3>_<xbin><ybin>_<3*NAMPS>amp``; None when no key
        matches (e.g. EEV/e2v 4x4).
        """
        prefix = f"{self.instrument}_{self.pretty_name[:3]}_{binning}{binning}_{len(self.amps)}amp"
        chosen = None
        for key, filename in facts()["illumination_masks"]["maskdb_illumMask_dict"].items():
            if key.startswith(prefix):
                chosen = filename
        return chosen

    def describe(self) -> dict:
        """JSON-ready summary (kept in the ground truth)."""
        return {"instrument": self.instrument, "detector": self.detector, "date": self.date.isoformat(),
                "read_speed": self.read_speed, "gain_setting": self.gain_setting, "DETID": self.detid,
                "DETTYPE": self.dettype, "DETECTOR": self.detector_keyword,
                "detector_name": self.pretty_name, "pixel_scale_unbinned_arcsec": self.pixel_scale,
                "ccd_shape_xy_unbinned": [self.ccd_width, self.ccd_height],
                "amps_per_ccd": self.amps_per_ccd, "tables": list(self.tables),
                "ccd_names": [self.amps[i].ccdname for i in sorted(
                    {a.ccd: k for k, a in enumerate(self.amps)}.values())]}


def default_date(instrument: str, detector: str) -> dt.date:
    """Science night of the default data set of a configuration."""
    return _DEFAULT_DATES[(instrument, detector)]


def _candidates(instrument: str, pretty: str, day: dt.date) -> list:
    found = []
    for detid, info in facts()["detectors"]["by_DETID"].items():
        if info["site"] != instrument or not info["pretty_name"].startswith(pretty):
            continue
        window = info["dates_with_gains_for_all_amps"]
        start, stop = _iso(window["from"]), _iso(window["to_exclusive"])
        if (start is None or day >= start) and (stop is None or day < stop):
            found.append(detid)
    # the detector set DRAGONS made its masks on first
    return sorted(found, key=lambda d: not facts()["detectors"]["by_DETID"][d]["illum_mask_files_with_this_DETID"])


def _template(detid: str) -> tuple:
    """(DETID, 2x2 mask file) of the set whose masks describe ``detid``'s raw layout.

    ``detid`` itself when DRAGONS made a mask on it, else a set of the same
    site and detector type with a mask (the amplifiers are matched by
    position on their CCD).
    """
    detectors = facts()["detectors"]["by_DETID"]
    info = detectors[detid]
    options = [detid] + [d for d, v in detectors.items()
                         if v["site"] == info["site"] and v["DETTYPE"] == info["DETTYPE"] and d != detid]
    for candidate in options:
        files = [f for f in detectors[candidate]["illum_mask_files_with_this_DETID"] if "_22_" in f]
        if files:
            return candidate, files[0]
    raise ParameterError(f"no DRAGONS mask describes the raw layout of detector set {detid!r}")


def _amps(detid: str) -> tuple:
    """The amplifiers of a full-frame readout in file order, with their overscan side.

    Both come from the headers of DRAGONS' 2x2 illumination mask made on the
    detector set (or on a set of the same site and type, amplifiers matched
    by position), which kept the raw frame's extension order, ``AMPNAME``,
    ``CCDNAME`` and ``BIASSEC``: Hamamatsu and EEV in ``DETSEC`` order, e2v
    with each CCD's right amplifier first on CCD1 and CCD2.
    """
    detectors = facts()["detectors"]["by_DETID"]
    template, mask_file = _template(detid)
    own_ccds = detectors[detid]["ccd_names_left_to_right"]
    template_ccds = detectors[template]["ccd_names_left_to_right"]
    phu, headers = _mask_headers(mask_file)
    amps = []
    for hdr in headers:
        ccd = [i for i, name in enumerate(template_ccds) if hdr["AMPNAME"].startswith(name + ",")][0]
        suffix = hdr["AMPNAME"].split(",", 1)[1]
        ampname = f"{own_ccds[ccd]},{suffix}"
        ccdname = hdr["CCDNAME"] if template == detid else own_ccds[ccd]
        datasec = [int(v) for v in hdr["DATASEC"].strip("[]").replace(",", ":").split(":")]
        biassec = [int(v) for v in hdr["BIASSEC"].strip("[]").replace(",", ":").split(":")]
        ccdsec = [int(v) for v in hdr["CCDSEC"].strip("[]").replace(",", ":").split(":")]
        amps.append(Amp(ampname, ccdname, ccd, ccdsec[0] - 1, overscan_right=biassec[0] > datasec[1]))
    return tuple(amps), headers[0]["CCDSIZE"]


def configuration(instrument: str = "GMOS-N", detector: str = "hamamatsu", *, date=None,
                  read_speed: str = "slow", gain_setting: str = "low") -> Configuration:
    """Resolve a GMOS configuration from DRAGONS' tables.

    Parameters
    ----------
    instrument : str
        ``'GMOS-N'`` or ``'GMOS-S'``.
    detector : str
        ``'hamamatsu'``, ``'e2vdd'`` or ``'eev'``.
    date : datetime.date or str, optional
        Observation (science) night; default :func:`default_date`.
    read_speed, gain_setting : str
        ``'slow'``/``'fast'`` and ``'low'``/``'high'``.

    Returns
    -------
    Configuration

    Raises
    ------
    ParameterError
        For an unknown name, or a combination DRAGONS cannot calibrate (no
        detector set of that family at that site on that date, or no gain
        for one of its amplifiers).
    """
    if instrument not in INSTRUMENTS:
        raise ParameterError(f"instrument must be one of {', '.join(INSTRUMENTS)}, not {instrument!r}")
    if detector not in DETECTORS:
        raise ParameterError(f"detector must be one of {', '.join(DETECTORS)}, not {detector!r}")
    if read_speed not in READ_SPEEDS or gain_setting not in GAIN_SETTINGS:
        raise ParameterError(f"read speed must be slow|fast and gain setting low|high, "
                             f"not {read_speed!r}/{gain_setting!r}")
    pretty = DETECTORS[detector]
    if date is None:
        if (instrument, detector) not in _DEFAULT_DATES:
            raise ParameterError(f"{instrument} never had {pretty} CCDs in DRAGONS' tables")
        date = _DEFAULT_DATES[(instrument, detector)]
    elif isinstance(date, str):
        try:
            date = dt.date.fromisoformat(date)
        except ValueError:
            raise ParameterError(f"date must be YYYY-MM-DD, not {date!r}") from None
    found = _candidates(instrument, pretty, date)
    if not found:
        raise ParameterError(f"{instrument} had no {pretty} CCDs that DRAGONS can calibrate on {date}")
    detid = found[0]
    info = facts()["detectors"]["by_DETID"][detid]
    amps, ccdsize = _amps(detid)
    values = {}
    for quantity in ("gain", "read_noise", "bias"):
        table = _dated_table(quantity, date)
        per_amp = {}
        for amp in amps:
            value = table["values"].get(amp.ampname, {}).get(read_speed, {}).get(gain_setting)
            if value is None:
                raise ParameterError(f"DRAGONS' {table['name']} has no {read_speed}/{gain_setting} "
                                     f"{quantity} for {amp.ampname!r} ({instrument} {pretty} on {date})")
            per_amp[amp.ampname] = float(value)
        values[quantity] = per_amp
    if pretty == "Hamamatsu" and read_speed == "slow" and gain_setting == "high":
        raise ParameterError("DRAGONS' Hamamatsu slow/high (Engineering) gains are placeholders; "
                             "use slow/low, fast/low or fast/high")
    keyword = info["DETECTOR_keyword_seen"]
    thresholds = facts()["saturation"]["thresholds_by_DETECTOR"]
    if keyword is None:
        keyword = next((k for k, v in thresholds.items() if detid in v["DETID_with_same_ccd_set"]), None)
        if keyword is None:
            raise ParameterError(f"DRAGONS' tables give no DETECTOR keyword for {detid!r}")
    geometry = facts()["mosaic_geometry"]["by_DETID"][detid]
    placements = tuple((tuple(c["shift_xy_unbinned_px"]), float(c["rotation_deg_ccw"]))
                       for c in geometry["ccds_left_to_right"])
    width, height = geometry["default_shape_xy_unbinned"]
    dettypes = facts()["detectors"]["by_DETTYPE"]
    return Configuration(
        instrument=instrument, detector=detector, date=date, read_speed=read_speed,
        gain_setting=gain_setting, detid=detid, dettype=info["DETTYPE"], pretty_name=info["pretty_name"],
        detector_keyword=keyword,
        pixel_scale=float(dettypes[info["DETTYPE"]]["pixel_scale_arcsec_unbinned"][instrument]),
        ccd_width=int(width), ccd_height=int(height), ccdsize=ccdsize, amps=amps, placements=placements,
        gains=values["gain"], read_noises=values["read_noise"], bias_levels=values["bias"],
        wells=dict(thresholds.get(keyword, {}).get("well_electrons_1x1", {})),
        tables=_window_name(date))


def check_dates(config: Configuration, days) -> None:
    """Raise if the frames' dates use other DRAGONS tables than the configuration's date."""
    for day in days:
        if _window_name(day) != config.tables:
            raise ParameterError(f"the data set would straddle a DRAGONS table boundary ({config.date} vs "
                                 f"{day}); choose a science date further from it")
