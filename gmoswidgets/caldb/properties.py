"""The properties of a frame that calibration association looks at.

They are computed once from headers only (:func:`gmoswidgets.fitsheader.header_values`,
the GMOS descriptors and tags), stored in the database for each calibration,
and computed the same way for the science frame asking for one.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import FileProblem
from ..fitsheader import header_values
from ..gmos.descriptors import descriptor_value
from ..gmos.tags import tags_of

__all__ = ["CALTYPES", "USER_CALTYPES", "UNKNOWN", "PROPERTY_FIELDS", "ObsProperties", "properties_of",
           "caltype_of"]

#: Calibration types the database stores and associates (GMOS imaging).
CALTYPES = ("processed_bias", "processed_flat", "processed_fringe", "processed_bpm")

#: Calibration types ``--user_cal`` accepts: the seed's list, plus the bad-pixel mask.
USER_CALTYPES = ("processed_arc", "processed_bias", "processed_dark", "processed_flat",
                 "processed_fringe", "processed_standard", "processed_bpm")

#: Tag that identifies each processed calibration type (with PROCESSED, except the BPM).
_CALTYPE_TAG = {"processed_bias": "BIAS", "processed_flat": "FLAT",
                "processed_fringe": "FRINGE"}


#: Value recorded for a property whose keyword is missing (bad-pixel masks only).
UNKNOWN = "unknown"
#: Descriptors a bad-pixel mask may lack.
_OPTIONAL = ("read_speed_setting", "gain_setting")


@dataclass(frozen=True)
class ObsProperties:
    """Descriptor values used by the association rules.

    Attributes
    ----------
    instrument : str
        'GMOS-N' or 'GMOS-S'.
    detector : str
        Detector array name ('Hamamatsu-N', 'e2vDD' ...).
    xbin, ybin : int
        Binning along x and y.
    read_speed : str
        'slow' or 'fast'.
    gain_setting : str
        'low' or 'high'.
    roi : str
        Named readout region ('Full Frame', 'Central Spectrum', 'Custom' ...).
    amp_read_area : str
        Amplifiers and the detector area each read.
    amp_names : str
        The amplifier names (AMPNAME) in extension order, joined by '+'
        (what the archive matches a bad-pixel mask on).
    filter_name : str
        Short filter name ('i', 'g&r' ...).
    imaging : bool
        Imaging data (IMAGE tag), as opposed to spectroscopy.
    prepared : bool
        The PREPARED tag.
    overscan_subtracted, overscan_trimmed : bool
        The OVERSCAN_SUBTRACTED and OVERSCAN_TRIMMED tags.
    ut_datetime : datetime.datetime
        UT start of the exposure (naive, UTC).
    """

    instrument: str
    detector: str
    xbin: int
    ybin: int
    read_speed: str
    gain_setting: str
    roi: str
    amp_read_area: str
    amp_names: str
    filter_name: str
    imaging: bool
    prepared: bool
    overscan_subtracted: bool
    overscan_trimmed: bool
    ut_datetime: _dt.datetime

    @property
    def epoch(self) -> float:
        """``ut_datetime`` in seconds since 1970 (UTC), the value compared in SQL."""
        return self.ut_datetime.replace(tzinfo=_dt.timezone.utc).timestamp()

    @property
    def binning(self) -> str:
        """Binning as 'XxY', e.g. '2x2'."""
        return f"{self.xbin}x{self.ybin}"

    @property
    def read_mode(self) -> str:
        """Read speed and gain setting, e.g. 'slow/low'."""
        return f"{self.read_speed}/{self.gain_setting}"


#: Names of the :class:`ObsProperties` fields, in order (also the database columns).
PROPERTY_FIELDS = tuple(f.name for f in fields(ObsProperties))


def _headers(source):
    if isinstance(source, (str, Path)):
        return header_values(source)
    return source


def properties_of(source, lenient: bool = False) -> ObsProperties:
    """Compute the association properties of a frame.

    Parameters
    ----------
    source : Frame, HeaderSet, ObsProperties, str or path-like
        The frame, its headers, already computed properties, or a file name
        (only its headers are read).
    lenient : bool, optional
        Record 'unknown' for the read speed and gain setting when their
        keywords are missing, instead of raising.  For bad-pixel masks,
        whose rules do not look at them.

    Returns
    -------
    ObsProperties

    Raises
    ------
    FileProblem
        A keyword a descriptor needs is missing, or the file is unreadable.
    """
    if isinstance(source, ObsProperties):
        return source
    headers = _headers(source)
    tags = tags_of(headers)

    def value(name):
        try:
            return descriptor_value(headers, name)
        except FileProblem:
            if lenient and name in _OPTIONAL:
                return UNKNOWN
            raise

    return ObsProperties(
        instrument=value("instrument"), detector=value("detector_name"),
        xbin=int(value("detector_x_bin")), ybin=int(value("detector_y_bin")),
        read_speed=value("read_speed_setting"), gain_setting=value("gain_setting"),
        roi=value("detector_roi_setting"), amp_read_area=value("amp_read_area"),
        amp_names="+".join(value("array_name")), filter_name=value("filter_name"),
        imaging="IMAGE" in tags, prepared="PREPARED" in tags,
        overscan_subtracted="OVERSCAN_SUBTRACTED" in tags,
        overscan_trimmed="OVERSCAN_TRIMMED" in tags, ut_datetime=value("ut_datetime"))


def caltype_of(tags) -> str | None:
    """The calibration type a file's tags make it, or None if it is not a processed calibration.

    A bad-pixel mask (tag BPM) is a ``processed_bpm`` whether or not it
    carries PROCESSED: archive BPMs are marked by ``OBSTYPE = 'BPM'``.
    """
    if "BPM" in tags:
        return "processed_bpm"
    if "PROCESSED" not in tags:
        return None
    for caltype, tag in _CALTYPE_TAG.items():
        if tag in tags:
            return caltype
    return None
