"""Minimal GMOS calibration files for tests, demos and benchmarks.

:func:`make_headers` builds the headers of a processed calibration (or a
raw / prepared frame) with the keywords a real GMOS file carries for the
association descriptors: INSTRUME, DETTYPE, CCDSUM, AMPINTEG, GAIN,
DETRO1*, DATE-OBS/TIME-OBS, FILTER1/2, AMPNAME, DETSEC ... and, for
processed files, GEM-TLM, PREPARE, SUBOVER, TRIMOVER, the PROC* marker,
PROCMODE and BUNIT.  :func:`write_calibration` writes them as a tiny
SCI/VAR/DQ multi-extension file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from ..frame import Extension, Frame, HeaderSet
from ..gmos import lookups

__all__ = ["make_headers", "write_calibration", "KINDS"]

#: (OBSTYPE, OBJECT, OBSCLASS, processed marker) of each kind of file.
KINDS = {
    "bias": ("BIAS", "Bias", "dayCal", "PROCBIAS"),
    "flat": ("OBJECT", "Twilight", "dayCal", "PROCFLAT"),
    "fringe": ("OBJECT", "starfield", "science", "PROCFRNG"),
    "bpm": ("BPM", "BPM", "dayCal", "PROCBPM"),
    "science": ("OBJECT", "starfield", "science", None),
}

_SITES = {"GMOS-N": "Gemini-North", "GMOS-S": "Gemini-South"}
_CCD_NAMES = {"S10892-N": ("BI13-20-4k-1", "BI12-09-4k-2", "BI13-18-4k-2"),
              "S10892": ("BI11-41-4k-2", "BI13-19-4k-3", "BI12-34-4k-1"),
              "SDSU II e2v DD CCD42-90": ("e2v 10031-23-05", "e2v 10031-01-03",
                                          "e2v 10031-18-04")}
_FILTERS = {"i": "i_G0302", "g": "g_G0301", "r": "r_G0303", "z": "z_G0304"}
_AMPINTEG = {"slow": 11880, "fast": 1000}
_GAIN = {"low": 1.6, "high": 5.0}


def make_headers(kind="bias", *, instrument="GMOS-N", dettype="S10892-N", binning=(2, 2),
                 read_speed="slow", gain="low", roi="Full Frame", amps=None, filter_name="i",
                 date="2017-06-13T12:00:00", processed=None, filename="unnamed.fits") -> HeaderSet:
    """Headers of a minimal GMOS file.

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS`.
    instrument, dettype : str
        ``INSTRUME`` and ``DETTYPE`` (a key of the lookups' detector types).
    binning : (int, int)
        x, y binning (``CCDSUM``).
    read_speed, gain : str
        'slow'/'fast' and 'low'/'high'.
    roi : str
        A named region of ``lookups.ROI_SETTINGS`` ('Full Frame', 'CCD2',
        'Central Spectrum', 'Central Stamp'); sets DETRO1* (binned sizes, as real
        headers) and each amplifier's DETSEC (unbinned).
    amps : sequence of int, optional
        Indices of the amplifiers read (default all); fewer amplifiers make a
        'Custom'-looking read area.
    filter_name : str
        Short filter name.
    date : str
        ISO UT start, 'YYYY-MM-DDTHH:MM:SS'.
    processed : bool, optional
        Write the processed-file keywords (default: True except for 'science').
    filename : str
        The name the HeaderSet reports.

    Returns
    -------
    HeaderSet
    """
    obstype, obj, obsclass, marker = KINDS[kind]
    processed = marker is not None if processed is None else processed
    det = lookups.detector_type(instrument, dettype)
    width = det.ccd_width * det.nccds
    x0, xs, y0, ys = lookups.ROI_SETTINGS[det.ccd_height][roi][0]
    phu = fits.Header()
    day, clock = date.split("T")
    for key, value in (("INSTRUME", instrument), ("OBSERVAT", _SITES[instrument]),
                       ("TELESCOP", _SITES[instrument]), ("OBSTYPE", obstype), ("OBJECT", obj),
                       ("OBSCLASS", obsclass), ("OBSMODE", "IMAGE"), ("GRATING", "MIRROR"),
                       ("DETTYPE", dettype), ("DETECTOR", f"{instrument} + {det.name}"),
                       ("NCCDS", det.nccds), ("NAMPS", det.namps // det.nccds),
                       ("AMPINTEG", _AMPINTEG[read_speed]), ("DETRO1X", x0),
                       ("DETRO1XS", xs // binning[0]), ("DETRO1Y", y0),
                       ("DETRO1YS", ys // binning[1]), ("DATE-OBS", day), ("TIME-OBS", clock),
                       ("FILTER1", "open1-6"), ("FILTER2", _FILTERS.get(filter_name, filter_name)),
                       ("EXPTIME", 1.0), ("FRAME", "FK5"), ("TRKFRAME", "FK5")):
        phu[key] = value
    if processed:
        for key in ("GEM-TLM", "PREPARE", "SUBOVER", "TRIMOVER"):
            phu[key] = "2026-01-01T00:00:00"
        if marker:
            phu[marker] = "2026-01-01T00:00:00"
            phu["PROCMODE"] = "sq"
        phu["BUNIT"] = "adu" if kind == "bias" else "electron"
    amp_width = width // det.namps
    ext_headers = []
    for amp in (range(det.namps) if amps is None else amps):
        ccd, amp_in_ccd = divmod(amp, det.namps // det.nccds)
        x1 = max(amp * amp_width + 1, x0)
        x2 = min((amp + 1) * amp_width, x0 + xs - 1)
        if x1 > x2:
            continue  # this amplifier is outside the ROI
        hdr = fits.Header()
        hdr["CCDSUM"] = f"{binning[0]} {binning[1]}"
        hdr["AMPNAME"] = f"{_CCD_NAMES[dettype][ccd]}, {det.namps // det.nccds - amp_in_ccd}"
        hdr["CCDNAME"] = _CCD_NAMES[dettype][ccd]
        hdr["DETSEC"] = f"[{x1}:{x2},{y0}:{y0 + ys - 1}]"
        hdr["GAIN"] = _GAIN[gain]
        hdr["RDNOISE"] = 4.0
        ext_headers.append(hdr)
    return HeaderSet(phu, ext_headers, Path(filename))


def write_calibration(path, kind="bias", **kwargs):
    """Write a minimal file (2x2-pixel SCI, VAR, DQ per amplifier) with :func:`make_headers`.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    headers = make_headers(kind, **kwargs)
    exts = [Extension(np.zeros((2, 2), np.float32), hdr, np.ones((2, 2), np.float32),
                      np.zeros((2, 2), np.uint16)) for hdr in headers.ext_headers]
    return Frame(headers.phu, exts).write(path)
