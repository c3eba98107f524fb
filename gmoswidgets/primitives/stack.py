"""stackFrames, stackBiases, stackFlats and :func:`stack_frames` behind them.

Semantics and defaults follow DRAGONS (``core/primitives_stack.py``,
``core/parameters_stack.py``, GMOS imaging ``stackFlats``).  Frames are
combined extension by extension by :func:`gmoswidgets.numerics.combine.combine_arrays`
(DQ hierarchy, rejection, VAR propagation); this module adds what needs
frames: scale/zero statistics, header bookkeeping (``NCOMBINE``, ``RDNOISE``,
``GAIN``, provenance) and the flats' scaling and rejection by number of inputs.
"""
from __future__ import annotations

import os
from functools import partial

import numpy as np

from .. import dq
from ..errors import FileProblem
from ..executor import map_in_memory
from ..frame import Extension, Frame
from ..gmos.keywords import GAIN, NCOMBINE, RDNOISE, RELINT
from ..numerics.combine import OPERATIONS, REJECT_METHODS, combine_arrays, compiled_pays
from ..outputs import merge_provenance
from ..sections import Section
from ._calib import central_ccd_pixels, in_electrons
from .base import Param, StepContext, primitive

__all__ = ["stack_params", "stack_frames", "flat_rejection", "stackFrames", "stackBiases",
           "stackFlats"]

#: Pixels sampled per frame (at most) to measure scale / zero statistics.
_STAT_SAMPLES = 1_000_000


# -- scale / zero statistics ---------------------------------------------------------

def _good_sample(ext, statsec):
    region = (slice(None), slice(None)) if statsec is None else statsec.slices
    data = ext.data[region]
    good = np.isfinite(data)
    if ext.mask is not None:
        good &= ext.mask[region] == 0
    step = max(1, data.size // _STAT_SAMPLES)
    return data[good][::step]


def _frame_statistics(frames, separate_ext, statsec):
    """Median of the good pixels per frame (and per extension if ``separate_ext``)."""
    section = None if statsec is None else Section.from_string(statsec)
    stats = []
    for frame in frames:
        samples = [_good_sample(ext, section) for ext in frame.exts]
        if separate_ext:
            stats.append([float(np.median(s)) if s.size else np.nan for s in samples])
        else:
            pooled = np.concatenate(samples)
            value = float(np.median(pooled)) if pooled.size else np.nan
            stats.append([value] * len(frame.exts))
    return np.array(stats)


#: Fewest common good pixels for an offset measured on the overlap of two frames.
_MIN_OVERLAP = 100
#: Stand-in for an absent DQ plane (the compiled kernel takes an array, with a flag).
_NO_MASK = np.zeros((0, 0), dq.DTYPE)


def _native(plane, dtype):
    """``plane`` as a native-order array of ``dtype`` (the compiled kernel takes no other)."""
    return np.asarray(plane, np.dtype(dtype).newbyteorder("="))


def _overlap_differences(frame, reference, region, separate_ext):
    """Medians of ``reference - frame`` on their common good pixels, per extension (None: too few).

    The float32 differences (every k-th, at most :data:`_STAT_SAMPLES`) are
    gathered in one compiled pass, without full-size temporaries (the SCI
    planes are float32 once prepared).
    """
    from . import crs_kernels as kernels  # numba: loaded by the science stage only
    diffs = []
    for ref, ext in zip(reference.exts, frame.exts):
        ref_mask, mask = (_native(_NO_MASK if e.mask is None else e.mask[region], dq.DTYPE)
                          for e in (ref, ext))
        diff = kernels.overlap_differences(
            _native(ref.data[region], np.float32), ref_mask, ref.mask is not None,
            _native(ext.data[region], np.float32), mask, ext.mask is not None, _STAT_SAMPLES)
        diffs.append(diff.astype(np.float64))
    if not separate_ext:
        diffs = [np.concatenate(diffs)]
    offsets = [float(np.median(d)) if d.size >= _MIN_OVERLAP else None for d in diffs]
    return offsets if separate_ext else offsets * len(reference.exts)


def _overlap_offsets(frames, separate_ext, statsec, *, map_frames=None):
    """Additive offsets bringing each frame to the first, from the pixels both have good.

    For each frame the offset is the median of ``first - frame`` over the
    pixels good (DQ 0, finite) in both (every k-th of them, at most
    :data:`_STAT_SAMPLES`), so that sources, gradients and different
    footprints cancel (DRAGONS normalises over the overlaps too); where two
    frames share fewer than :data:`_MIN_OVERLAP` good pixels the difference
    of their medians is used.  ``map_frames(func, frames)``, if given, runs
    the frames' measurements (e.g. on threads: the compiled kernel releases
    the GIL).

    Returns
    -------
    numpy.ndarray
        (frames, extensions) offsets to add; the first row is 0.
    """
    section = None if statsec is None else Section.from_string(statsec)
    region = (slice(None), slice(None)) if section is None else section.slices
    reference = frames[0]
    measure = partial(_overlap_differences, reference=reference, region=region,
                      separate_ext=separate_ext)
    measured = (map_frames or (lambda func, items: [func(item) for item in items]))(
        measure, frames[1:])
    medians = None
    offsets = np.zeros((len(frames), len(reference.exts)))
    for i, row in enumerate(measured, start=1):
        for index, value in enumerate(row):
            if value is None:
                if medians is None:
                    medians = _frame_statistics(frames, separate_ext, statsec)
                value = medians[0, index] - medians[i, index]
            offsets[i, index] = value
    return offsets


# -- frame-level stacking ------------------------------------------------------------

def _combine_workers(ctx: StepContext) -> int:
    """Threads combining at once: 1 with the sequential executor (the reference), else the cores.

    The combination runs in this process whatever the executor (numpy
    releases the GIL in it); only ``sync`` asks for one thread.
    """
    if ctx.executor.name == "sync":
        return 1
    return getattr(ctx.executor, "max_workers", None) or len(os.sched_getaffinity(0))


def _check_stackable(frames):
    first = frames[0]
    for frame in frames[1:]:
        if frame.shapes != first.shapes:
            raise FileProblem(frame.path or frame.filename,
                              f"extension shapes {frame.shapes} differ from {first.shapes} of "
                              f"{first.filename}; only like frames can be stacked")
        if in_electrons(frame) != in_electrons(first):
            raise FileProblem(frame.path or frame.filename,
                              f"units differ from those of {first.filename} (ADU vs electrons)")


def stack_frames(frames: list[Frame], ctx: StepContext, *, operation: str, reject_method: str,
                 scale: bool = False, zero: bool = False, separate_ext: bool = True,
                 statsec: str | None = None, scales: np.ndarray | None = None,
                 **options) -> Frame:
    """Stack frames into one (the engine of stackFrames, stackBiases, stackFlats, makeFringeFrame).

    Parameters
    ----------
    frames : list of Frame
        Like frames (same extension shapes and units).
    ctx : StepContext
        For logging and progress.
    operation, reject_method : str
        As :func:`~gmoswidgets.numerics.combine.combine_arrays`.
    scale, zero : bool
        Scale the inputs to the median of the first, or offset them to the
        first (measured on their common good pixels); not both: with both,
        only the offsets are applied (DRAGONS).
    separate_ext : bool
        Measure scale / zero per extension (else one value per frame).
    statsec : str, optional
        FITS section of the scale / zero statistics (None: whole extension).
    scales : sequence of float, optional
        Precomputed per-frame factors (stackFlats).
    **options
        The other keyword options of :func:`~gmoswidgets.numerics.combine.combine_arrays`
        (``lsigma``, ``hsigma``, ``mclip``, ``max_iters``, ``nlow``, ``nhigh``,
        ``apply_dq``, ``memory``).

    Returns
    -------
    Frame
        Named after the first input, with its headers, ``NCOMBINE`` set,
        ``RDNOISE`` the rms of the inputs' and ``GAIN`` their harmonic mean.
    """
    _check_stackable(frames)
    if scale and zero:
        ctx.log.warning("scale and zero both requested: the inputs are offset (zero) but not "
                        "scaled, as DRAGONS does")
        scale = False
    nframes, nexts = len(frames), len(frames[0].exts)
    scale_table = np.ones((nframes, nexts)) if scales is None else np.repeat(
        np.asarray(scales, float)[:, None], nexts, axis=1)
    zero_table = np.zeros((nframes, nexts))
    if scale or zero:
        if scale:
            stats = _frame_statistics(frames, separate_ext, statsec)
            scale_table = scale_table * stats[0] / stats
        if zero:
            zero_table = _overlap_offsets(frames, separate_ext, statsec,
                                          map_frames=partial(map_in_memory, ctx.executor))
        if not np.all(np.isfinite(scale_table)) or not np.all(np.isfinite(zero_table)):
            raise FileProblem(frames[0].filename, "cannot scale the inputs: no good pixels to "
                                                  "measure them on")
    first = frames[0]
    exts = []
    workers = _combine_workers(ctx)
    compiled = compiled_pays(nframes * sum(ext.data.size for ext in first.exts))
    for index in range(nexts):
        inputs = [frame.exts[index] for frame in frames]
        zeros = zero_table[:, index] / scale_table[:, index] if zero else None

        def progress(fraction, index=index):
            ctx.progress((index + fraction) / nexts, f"stacking extension {index + 1}/{nexts}")

        data, var, mask = combine_arrays(
            [e.data for e in inputs], [e.variance for e in inputs], [e.mask for e in inputs],
            operation=operation, reject_method=reject_method,
            scales=scale_table[:, index] if (scale or scales is not None) else None, zeros=zeros,
            progress=progress, workers=workers, compiled=compiled, **options)
        header = inputs[0].header.copy()
        noises = [float(e.header[RDNOISE]) for e in inputs if RDNOISE in e.header]
        if noises:
            header[RDNOISE] = (float(np.sqrt(np.mean(np.square(noises)))), "Read noise (e-)")
        gains = [float(e.header[GAIN]) for e in inputs if GAIN in e.header]
        if gains and len(set(gains)) > 1:
            header[GAIN] = (float(len(gains) / np.sum(1.0 / np.array(gains))), "Gain (e-/ADU)")
        exts.append(Extension(data, header,
                              var if any(e.variance is not None for e in inputs) else None,
                              mask if any(e.mask is not None for e in inputs) else None))
    out = Frame(first.phu.copy(), exts, first.path, {k: v.copy() for k, v in first.tables.items()})
    out.filename = first.filename
    out.phu[NCOMBINE] = (nframes, "Number of frames combined")
    merge_provenance(out, frames[1:])
    ctx.log.info("stacked %d frames (%s, rejection %s)", nframes, operation, reject_method)
    return out


def stack_params(*, reject_method: str = "sigclip", nlow: int | None = 0,
                 nhigh: int | None = 0, scaling: bool = True) -> list[Param]:
    """The parameter declarations of a stacking primitive (DRAGONS' ``parameters_stack``).

    Parameters
    ----------
    reject_method : str
        Default rejection.
    nlow, nhigh : int or None
        Default minmax counts; None (allowed then) means "by number of inputs".
    scaling : bool
        Include ``scale``, ``zero`` and ``statsec`` (stackFrames).

    Returns
    -------
    list of Param
    """
    params = [
        Param("operation", str, "mean", "Averaging operation: 'mean', 'wtmean' (inverse-variance "
                                         "weighted), 'median' or 'lmedian' (low median).",
              choices=OPERATIONS),
        Param("reject_method", str, reject_method, "Pixel rejection: 'none', 'minmax', 'sigclip' "
                                                   "or 'varclip' (clipping with the VAR plane).",
              choices=REJECT_METHODS),
        Param("hsigma", float, 3.0, "High rejection threshold (sigma).", min=0.0),
        Param("lsigma", float, 3.0, "Low rejection threshold (sigma).", min=0.0),
        Param("mclip", bool, True, "Centre the clipping on the median (else the mean)?"),
        Param("max_iters", int, None, "Maximum clipping iterations (None: until nothing changes).",
              optional=True, min=1),
        Param("nlow", int, nlow, "Number of low pixels rejected by minmax"
              + (" (None: by number of inputs)." if nlow is None else "."), min=0,
              optional=nlow is None),
        Param("nhigh", int, nhigh, "Number of high pixels rejected by minmax"
              + (" (None: by number of inputs)." if nhigh is None else "."), min=0,
              optional=nhigh is None),
    ]
    if scaling:
        params += [
            Param("scale", bool, False, "Scale the inputs to the median of the first?"),
            Param("zero", bool, False, "Offset the inputs to the first (measured on their "
                                       "common good pixels)?"),
            Param("separate_ext", bool, True, "Measure scale/zero per extension (else one value "
                                              "per frame)?"),
            Param("statsec", str, None, "Section '[x1:x2,y1:y2]' for the scale/zero statistics "
                                        "(None: whole extension).", optional=True,
                  check=Section.from_string),
        ]
    else:
        params.append(Param("separate_ext", bool, True, "Handle extensions separately?"))
    params += [
        Param("apply_dq", bool, True, "Leave out flagged pixels (using the best available)?"),
        Param("memory", float, 1.0, "Working memory for the combination, in GB (None: unlimited).",
              optional=True, min=0.001),
    ]
    return params


def _single(frames, ctx, name):
    if len(frames) < 2:
        ctx.log.warning("%s: only %d input; nothing to stack", name, len(frames))
        return [frame.copy() for frame in frames]
    return None


@primitive(*stack_params(), suffix="_stack")
def stackFrames(frames: list[Frame], ctx: StepContext, *, operation: str, reject_method: str,
                hsigma: float, lsigma: float, mclip: bool, max_iters: int | None, nlow: int,
                nhigh: int, scale: bool, zero: bool, separate_ext: bool, statsec: str | None,
                apply_dq: bool, memory: float | None) -> list[Frame]:
    """Combine all inputs into one frame, with DQ hierarchy, rejection and VAR propagation."""
    single = _single(frames, ctx, "stackFrames")
    if single is not None:
        return single
    return [stack_frames(frames, ctx, operation=operation, reject_method=reject_method, scale=scale,
                         zero=zero, separate_ext=separate_ext, statsec=statsec, hsigma=hsigma,
                         lsigma=lsigma, mclip=mclip, max_iters=max_iters, nlow=nlow, nhigh=nhigh,
                         apply_dq=apply_dq, memory=memory)]


def _require_tag(frames, tag, name):
    for frame in frames:
        if tag not in frame.tags:
            raise FileProblem(frame.path or frame.filename, f"{name} needs {tag} frames; this one "
                                                            "is not tagged " + tag)


@primitive(*stack_params(reject_method="varclip", scaling=False), suffix="_stack")
def stackBiases(frames: list[Frame], ctx: StepContext, *, operation: str, reject_method: str,
                hsigma: float, lsigma: float, mclip: bool, max_iters: int | None, nlow: int,
                nhigh: int, separate_ext: bool, apply_dq: bool,
                memory: float | None) -> list[Frame]:
    """Stack biases (no scaling, no offsets; mean with variance clipping by default)."""
    _require_tag(frames, "BIAS", "stackBiases")
    single = _single(frames, ctx, "stackBiases")
    if single is not None:
        return single
    return [stack_frames(frames, ctx, operation=operation, reject_method=reject_method,
                         separate_ext=separate_ext, hsigma=hsigma, lsigma=lsigma, mclip=mclip,
                         max_iters=max_iters, nlow=nlow, nhigh=nhigh, apply_dq=apply_dq,
                         memory=memory)]


def flat_rejection(nframes: int) -> tuple[str, int, int]:
    """GMOS imaging flats' minmax rejection by number of inputs: (method, nlow, nhigh)."""
    if nframes <= 2:
        return "none", 0, 0
    if nframes <= 5:
        return "minmax", 1, 1
    if nframes <= 10:
        return "minmax", 2, 2
    return "minmax", 2, 3


def _flat_intensities(frames):
    """Mean of the good pixels of CCD2 (5% border, at least 20 px) of each frame."""
    values = []
    for frame in frames:
        pixels = central_ccd_pixels(frame)
        total, count = float(np.sum(pixels, dtype=np.float64)), pixels.size
        if count == 0 or total <= 0:
            raise FileProblem(frame.path or frame.filename, "no good illuminated pixels on CCD2 "
                                                            "to scale this flat")
        values.append(total / count)
    return np.array(values)


@primitive(*stack_params(reject_method="minmax", nlow=None, nhigh=None, scaling=False),
           suffix="_stack")
def stackFlats(frames: list[Frame], ctx: StepContext, *, operation: str, reject_method: str,
               hsigma: float, lsigma: float, mclip: bool, max_iters: int | None, nlow: int | None,
               nhigh: int | None, separate_ext: bool, apply_dq: bool,
               memory: float | None) -> list[Frame]:
    """Scale twilight flats to the first one's CCD2 mean, then combine (minmax by number)."""
    _require_tag(frames, "FLAT", "stackFlats")
    single = _single(frames, ctx, "stackFlats")
    if single is not None:
        return single
    method, auto_low, auto_high = flat_rejection(len(frames))
    if reject_method == "minmax":
        reject_method = method
    nlow = auto_low if nlow is None else nlow
    nhigh = auto_high if nhigh is None else nhigh
    intensities = _flat_intensities(frames)
    scales = intensities[0] / intensities
    for frame, factor in zip(frames, scales):
        ctx.log.info("%s: relative intensity %.4f", frame.filename, 1.0 / factor)
    ctx.log.info("stackFlats: %d flats, rejection %s (nlow=%d, nhigh=%d)", len(frames),
                 reject_method, nlow, nhigh)
    out = stack_frames(frames, ctx, operation=operation, reject_method=reject_method,
                       separate_ext=separate_ext, scales=scales, hsigma=hsigma, lsigma=lsigma,
                       mclip=mclip, max_iters=max_iters, nlow=nlow, nhigh=nhigh,
                       apply_dq=apply_dq, memory=memory)
    out.phu[RELINT] = (float(scales[0]), "Relative intensity (scaling) factor")
    return [out]


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (stackFrames, stackBiases, stackFlats)
