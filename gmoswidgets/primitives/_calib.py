"""Helpers shared by the calibration primitives (bias, flat, BPM, stacking).

* :func:`fetch_calibration` finds the calibration a primitive applies: a file
  the user named, else the calibration service of the :class:`StepContext`.
* :func:`matched_planes` cuts a calibration to the readout window of a
  science frame (DRAGONS' ``clip_auxiliary_data``), extension by extension,
  using the detector sections, so a full-frame bias or flat serves a
  Central-Stamp science frame.
* :func:`central_ccd_region` locates CCD2, whose statistics
  DRAGONS uses to scale and normalize GMOS imaging flats.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.io import fits

from ..errors import CalibrationNotFoundError, FileProblem
from ..executor import map_bands
from ..frame import Extension, Frame, copy_header, read_frame
from ..gmos import geometry, lookups
from ..gmos.descriptors import ccdsum_binning
from ..gmos.keywords import BUNIT, BUNIT_ELECTRON_ALIASES
from ..sections import Section
from .base import StepContext

__all__ = ["DO_CAL_CHOICES", "CalPlanes", "CalibrationMemo", "light_copy", "constant_plane",
           "trim_plane", "each_extension",
           "fetch_calibration", "matched_planes", "in_electrons", "central_ccd_region",
           "central_ccd_pixels",
           "detector_of", "extension_binning"]

#: Values of every calibration primitive's ``do_cal`` parameter (DRAGONS' names).
DO_CAL_CHOICES = ("procmode", "force", "skip")


def light_copy(frame: Frame) -> Frame:
    """A copy with its own headers and tables but the *same* pixel arrays.

    Primitives use it to avoid copying planes they replace anyway: they must
    then assign new arrays (``ext.data = ext.data * g``), never modify the
    shared ones in place.
    """
    exts = [Extension(e.data, copy_header(e.header), e.variance, e.mask, e.objcat, e.objmask)
            for e in frame.exts]
    new = Frame(copy_header(frame.phu), exts, frame.path,
                {k: v.copy() for k, v in frame.tables.items()})
    new.filename = frame.filename
    return new


def constant_plane(value: float, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only plane of one value that takes no memory (a broadcast scalar).

    addVAR(read_noise) and addDQ give biases such planes (a constant VAR, an
    all-zero DQ), which keeps ten 2x2 biases in a few hundred MB.  Arithmetic
    on them returns ordinary arrays; ``copy()`` gives a writable array.
    """
    return np.broadcast_to(np.asarray(value, dtype=dtype), shape)


def trim_plane(plane: np.ndarray | None, slices: tuple[slice, slice]) -> np.ndarray | None:
    """``plane[slices]`` as a compact array (a constant plane stays constant)."""
    if plane is None:
        return None
    if plane.size and not any(plane.strides):
        return constant_plane(plane.flat[0], plane[slices].shape, plane.dtype)
    return np.ascontiguousarray(plane[slices])


def each_extension(func: Callable[[int], None], count: int) -> None:
    """``func(index)`` for the extensions ``0 .. count - 1`` of a frame, on every core.

    The extensions are split into one band per core
    (:func:`~gmoswidgets.executor.map_bands`): the pixel work of a frame's
    amplifiers (numpy releases the GIL in it) keeps every core busy when a
    step runs one frame at a time (1x1 frames stream one by one).  ``func``
    must touch only its own extension: the result is that of the loop in
    order, and the first error in that order is raised.
    """
    map_bands(lambda first, stop: [func(index) for index in range(first, stop)], count,
              min_rows=1)


class CalibrationMemo:
    """What a primitive derives from each calibration frame in use, computed once for all the
    frames it calibrates (also when a step takes them a few at a time) and let go of with
    the calibration (the lookup holds it while the step runs).
    """

    def __init__(self):
        self._memos: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def of(self, cal: Frame) -> dict:
        """The memo of ``cal`` (a dict the caller fills, by extension)."""
        with self._lock:
            return self._memos.setdefault(cal, {})

    def __len__(self) -> int:
        """Number of calibrations with a memo."""
        return len(self._memos)


def in_electrons(frame: Frame) -> bool:
    """True if the frame's pixels are in electrons (``BUNIT`` of its extensions or PHU)."""
    unit = frame.exts[0].header.get(BUNIT, frame.phu.get(BUNIT, ""))
    return str(unit).strip().lower() in BUNIT_ELECTRON_ALIASES


def fetch_calibration(frame: Frame, ctx: StepContext, caltype: str,
                      path: str | Path | None = None) -> tuple[Frame, Path | None]:
    """Return ``(calibration Frame, path or None)`` for ``frame``.

    Parameters
    ----------
    frame : Frame
        The frame to calibrate.
    ctx : StepContext
        Asked for ``caltype`` when ``path`` is None.
    caltype : str
        ``'processed_bias'``, ``'processed_flat'``, ``'processed_bpm'`` ...
    path : str or path-like, optional
        A file given by the user (the ``bias=`` / ``flat=`` parameter).

    Raises
    ------
    CalibrationNotFoundError
        If nothing matches (raised by the calibration service).
    FileProblem
        If the named file cannot be read.
    """
    if path is not None:
        return read_frame(path), Path(path)
    cal, cal_path, reason = ctx.calibration(frame, caltype)
    if cal is None:
        raise CalibrationNotFoundError(f"no {caltype} for {frame.filename}: {reason}")
    return cal, (Path(cal_path) if cal_path else None)


def apply_calibration(frames: list[Frame], ctx: StepContext, primitive: str, caltype: str,
                      path: str | None, do_cal: str, apply: Callable[[Frame, Frame, int], None],
                      image_keyword: str, check_units: bool = False,
                      skip_reason: Callable[[Frame], str | None] | None = None) -> list[Frame]:
    """The part biasCorrect, flatCorrect and fringeCorrect share.

    For each frame: leave it unchanged if ``do_cal='skip'``, if it already
    went through ``primitive`` (its timestamp keyword) or if ``skip_reason``
    gives a reason; otherwise fetch the calibration, check its units if
    asked, call ``apply(new, cal, index)`` on a light copy (which must assign
    new arrays, not modify the shared ones), record the calibration in
    ``image_keyword`` and in PROVENANCE.

    Parameters
    ----------
    frames : list of Frame
    ctx : StepContext
    primitive : str
        The calling primitive's name (log messages, timestamp keyword, provenance).
    caltype : str
        ``'processed_bias'``, ``'processed_flat'`` or ``'processed_fringe'``.
    path : path-like or None
        A calibration file given by the user; None asks ``ctx``.
    do_cal : str
        One of :data:`DO_CAL_CHOICES`.
    apply : callable
        ``apply(new, cal, index)``: correct ``new`` (the copy of frame ``index``) with ``cal``;
        a module-level function or a :func:`functools.partial` of one, run
        by ``ctx.map`` (on threads, processes or a cluster).
    image_keyword : str
        PHU keyword that names the calibration used (BIASIM, FLATIM, FRINGEIM).
    check_units : bool
        Refuse a calibration whose units (ADU or electrons) differ from the frame's.
    skip_reason : callable, optional
        ``skip_reason(frame) -> str or None``: why this frame needs no correction.

    Returns
    -------
    list of Frame
    """
    from ..gmos.keywords import TIMESTAMP_KEYWORDS
    from ..fitstext import to_header_text
    from ..outputs import add_provenance
    if do_cal == "skip":
        ctx.log.warning("%s: do_cal='skip', frames left unchanged", primitive)
        return [light_copy(frame) for frame in frames]
    out: list = [None] * len(frames)
    jobs = []
    for index, frame in enumerate(frames):
        reason = None
        if TIMESTAMP_KEYWORDS[primitive] in frame.phu:
            reason = f"{frame.filename} already went through {primitive}"
        elif skip_reason is not None and do_cal != "force":
            reason = skip_reason(frame)
        if reason:
            ctx.log.info("%s; skipping", reason)
            out[index] = light_copy(frame)
            continue
        cal, cal_path = fetch_calibration(frame, ctx, caltype, path)
        if check_units and in_electrons(cal) != in_electrons(frame):
            raise FileProblem(cal_path or cal.filename, f"the {caltype} and {frame.filename} are "
                                                        "in different units (ADU vs electrons)")
        jobs.append((index, cal, cal_path))
    corrected = ctx.map(partial(_apply_job, apply=apply),
                        [(light_copy(frames[index]), cal, index) for index, cal, _ in jobs])
    for (index, cal, cal_path), new in zip(jobs, corrected):
        new.phu[image_keyword] = (to_header_text(cal_path.name if cal_path else cal.filename),
                                  f"{caltype} used by {primitive}")
        if cal_path is not None and cal_path.exists():
            add_provenance(new, cal_path, primitive)
        out[index] = new
    return out


def _apply_job(job: tuple, *, apply: Callable[[Frame, Frame, int], None]) -> Frame:
    """``apply(new, cal, index)`` on one ``(new, cal, index)`` job; returns ``new``."""
    new, cal, index = job
    apply(new, cal, index)
    return new


class CalPlanes(NamedTuple):
    """A calibration's planes cut to one science extension, and its header."""

    data: np.ndarray
    variance: np.ndarray | None
    mask: np.ndarray | None
    header: object


def extension_binning(header: fits.Header, where: str) -> tuple[int, int]:
    """``(xbin, ybin)`` of one extension of file ``where`` from its ``CCDSUM`` (unbinned if none).

    Raises
    ------
    FileProblem
        If ``CCDSUM`` is malformed.
    """
    return ccdsum_binning(header, where, default=(1, 1))


def _section(header, key, where):
    value = header.get(key)
    if value is None:
        raise FileProblem(where, f"extension has no {key} keyword")
    return Section.from_string(value)


def matched_planes(sci: Frame, cal: Frame, caltype: str, fill: float = 0.0) -> list[CalPlanes]:
    """Cut ``cal`` to the pixels of each extension of ``sci``.

    Each science extension is matched to the calibration extension whose
    detector section (``DETSEC``) contains its own, with the same binning;
    the calibration's data-section pixels under the science data section are
    returned.  Where the science array also has pixels outside its data
    section (an untrimmed frame) and the calibration is not the same shape,
    those pixels get ``fill``.

    Parameters
    ----------
    sci, cal : Frame
    caltype : str
        Used in error messages.
    fill : float
        Value for science pixels the calibration does not describe.

    Returns
    -------
    list of CalPlanes
        One per science extension, each plane shaped like that extension
        (variance / mask None when ``cal`` has none).
        Arrays are views where possible: do not modify them.

    Raises
    ------
    FileProblem
        If a science extension lies outside every calibration extension.
    """
    out = []
    cal_info = []
    for ext in cal.exts:
        cal_info.append((_section(ext.header, "DETSEC", cal.filename),
                         _section(ext.header, "DATASEC", cal.filename),
                         extension_binning(ext.header, cal.filename)))
    for index, ext in enumerate(sci.exts, start=1):
        detsec = _section(ext.header, "DETSEC", sci.filename)
        datasec = _section(ext.header, "DATASEC", sci.filename)
        binning = extension_binning(ext.header, sci.filename)
        for cal_ext, (cdet, cdata, cbin) in zip(cal.exts, cal_info):
            if cbin == binning and cdet.contains(detsec):
                break
        else:
            raise FileProblem(cal.filename, f"the {caltype} does not cover extension {index} of "
                                            f"{sci.filename} (DETSEC {detsec}, binning "
                                            f"{binning[0]}x{binning[1]})")
        if cal_ext.data.shape == ext.data.shape and cdet == detsec and cdata == datasec:
            out.append(CalPlanes(cal_ext.data, cal_ext.variance, cal_ext.mask, cal_ext.header))
            continue
        dx = (detsec.x1 - cdet.x1) // binning[0]
        dy = (detsec.y1 - cdet.y1) // binning[1]
        ny, nx = datasec.shape
        window = Section(cdata.x1 + dx, cdata.x1 + dx + nx,
                         cdata.y1 + dy, cdata.y1 + dy + ny).slices
        planes = [None if p is None else p[window] for p in (cal_ext.data, cal_ext.variance,
                                                               cal_ext.mask)]
        if planes[0].shape != datasec.shape:
            raise FileProblem(cal.filename, f"the {caltype}'s sections do not match its pixels "
                                            f"under extension {index} of {sci.filename}")
        if datasec.shape != ext.data.shape:
            full = []
            for plane, value in zip(planes, (fill, 0.0, 0)):
                if plane is None:
                    full.append(None)
                    continue
                arr = np.full(ext.data.shape, value, dtype=plane.dtype)
                arr[datasec.slices] = plane
                full.append(arr)
            planes = full
        out.append(CalPlanes(*planes, cal_ext.header))
    return out


def detector_of(frame: Frame) -> lookups.DetectorType | None:
    """The :class:`~gmoswidgets.gmos.lookups.DetectorType` of a frame, or None."""
    return lookups.detector_type(frame.phu.get("INSTRUME", ""), frame.phu.get("DETTYPE", ""))


def central_ccd_region(frame: Frame, border_fraction: float = 0.05,
                       min_border: int = 20) -> list[tuple[int, tuple[slice, slice]]]:
    """Pixels of CCD2 (the central CCD) away from its edges, per extension.

    DRAGONS measures GMOS imaging flats on CCD2 only (CCD1 and CCD3 are less
    illuminated), leaving out a border of 5% of each dimension, at least 20
    binned pixels.  For a frame with one extension (a mosaic) or of an
    unknown detector, the whole of each extension is used instead, with the
    same border.

    Returns
    -------
    list of tuple
        ``(extension index, (row slice, column slice))`` for every extension
        that has pixels in the region.
    """
    det = detector_of(frame)
    try:
        groups = geometry.ccd_groups(frame) if det is not None else []
    except FileProblem:
        groups = []
    central = [i for g in groups if g.ccd == det.nccds // 2 for i in g.ext_indices]
    if not central:
        out = []
        for index, ext in enumerate(frame.exts):
            ny, nx = ext.data.shape
            bx = max(int(border_fraction * nx), min_border)
            by = max(int(border_fraction * ny), min_border)
            out.append((index, (slice(by, ny - by), slice(bx, nx - bx))))
        return out
    # CCD2 extent in binned detector pixels, from the trimmed data of its extensions
    boxes = []
    for index in central:
        ext = frame.exts[index]
        xbin, ybin = extension_binning(ext.header, frame.filename)
        detsec = Section.from_string(ext.header["DETSEC"]).binned(xbin, ybin)
        datasec = _section(ext.header, "DATASEC", frame.filename)
        boxes.append((index, detsec, datasec))
    x0 = min(b[1].x1 for b in boxes)
    x1 = max(b[1].x2 for b in boxes)
    y0 = min(b[1].y1 for b in boxes)
    y1 = max(b[1].y2 for b in boxes)
    bx = max(int(border_fraction * (x1 - x0)), min_border)
    by = max(int(border_fraction * (y1 - y0)), min_border)
    region = Section(x0 + bx, x1 - bx, y0 + by, y1 - by)
    out = []
    for index, detsec, datasec in boxes:
        lo_x, hi_x = max(region.x1, detsec.x1), min(region.x2, detsec.x2)
        lo_y, hi_y = max(region.y1, detsec.y1), min(region.y2, detsec.y2)
        if lo_x >= hi_x or lo_y >= hi_y:
            continue
        cols = slice(datasec.x1 + lo_x - detsec.x1, datasec.x1 + hi_x - detsec.x1)
        rows = slice(datasec.y1 + lo_y - detsec.y1, datasec.y1 + hi_y - detsec.y1)
        out.append((index, (rows, cols)))
    return out


def central_ccd_pixels(frame: Frame) -> np.ndarray:
    """The good pixels (finite, DQ 0) of :func:`central_ccd_region`, as one 1-D array."""
    samples = []
    for index, region in central_ccd_region(frame):
        ext = frame.exts[index]
        data = ext.data[region]
        good = np.isfinite(data)
        if ext.mask is not None:
            good &= ext.mask[region] == 0
        samples.append(data[good])
    return np.concatenate(samples) if samples else np.array([], dtype=np.float32)
