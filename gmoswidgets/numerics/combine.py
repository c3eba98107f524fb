"""Combining N same-shaped images into one: rejection, scaling, weighting, VAR and DQ.

A library of plain functions on numpy arrays (as ccdproc's ``Combiner``),
with DRAGONS' semantics (``gempy/library/nddops.py``):

* the inputs are combined in **row chunks** sized so that the working
  arrays stay within ``memory`` GB (each thread reuses its chunk buffers);
  constant planes (a bias's read-noise VAR, an all-zero DQ) are not expanded;
* **DQ hierarchy**: for each output pixel only the inputs of the best
  available quality are used — good pixels first, then non-linear or
  saturated, cosmic ray, overlap, bad pixel, unilluminated and finally
  no-data ones; a pixel with no good input gets the OR of the flags of the
  inputs it was made from;
* optional per-input **offsets and scale factors** are applied first;
* **rejection** (``minmax`` as IRAF imcombine, ``sigclip``, ``varclip``) then
  **combination** (``mean``, ``wtmean`` inverse-variance weighted,
  ``median``, ``lmedian``), vectorised over the chunk: a boolean "still
  used" mask carries the rejections, and order statistics come from a
  sorting network over whole pixel planes; or, for large stacks or when
  numba is loaded anyway, the same arithmetic in one compiled pass per
  chunk (:mod:`.combine_kernel`, the same bits, three times as fast);
* **variance**: mean -> sum(VAR)/n^2, median -> the same times pi/2 (n > 2),
  wtmean -> 1/sum(1/VAR); rejected pixels are left out.  Without VAR the
  gemcombine estimate sum((x - mean)^2)/(n(n-1)) is used.

:func:`combine_arrays` is the entry point; the stacking primitives
(:mod:`gmoswidgets.primitives.stack`) wrap it for frames.
"""
from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from .. import dq
from ..errors import ParameterError

__all__ = ["OPERATIONS", "REJECT_METHODS", "DQ_HIERARCHY", "MAX_ITERATIONS", "combine_arrays",
           "compiled_pays", "sorting_network"]

OPERATIONS = ("mean", "wtmean", "median", "lmedian")
REJECT_METHODS = ("none", "minmax", "sigclip", "varclip")
#: Order in which flagged inputs are accepted when nothing better exists (DRAGONS' hierarchy).
DQ_HIERARCHY = (dq.NON_LINEAR | dq.SATURATED, dq.COSMIC_RAY, dq.OVERLAP, dq.BAD_PIXEL,
                dq.UNILLUMINATED, dq.NO_DATA)
#: max_iters=None means "until nothing changes", but at most this many (DRAGONS).
MAX_ITERATIONS = 100
#: Working bytes per input pixel inside a chunk: data, sorted copy and temporaries
#: (float32), VAR, DQ, quality rank and boolean masks.
_BYTES_PER_PIXEL = 32
#: Input pixels (N x rows x columns) per chunk that keep the working set in the CPU
#: caches; chunks are this size unless ``memory`` asks for smaller ones.
_CHUNK_ELEMENTS = 300_000


# A chunk is held as (N, P) planes: N inputs, P pixels.  Values are never
# reordered; a boolean ``valid`` array says which inputs still enter each
# pixel.  Order statistics (median, minmax cuts) come from a sorted copy in
# which unused inputs are +inf, sorted by a sorting network of element-wise
# minimum/maximum operations over whole planes (fast for the usual N <= 32),
# of which only the comparators the ranks asked for depend on are done.

#: Above this many inputs, np.sort is used instead of the sorting network.
_NETWORK_MAX_INPUTS = 32


@lru_cache(maxsize=None)
def _sorting_network(n: int) -> tuple:
    """Comparator pairs of Batcher's odd-even merge sort for ``n`` elements."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            j = k % p
            while j + k < n:
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
                j += 2 * k
            k //= 2
        p *= 2
    return tuple(pairs)


@lru_cache(maxsize=None)
def sorting_network(n: int) -> np.ndarray:
    """The comparators of Batcher's odd-even merge sort for ``n`` elements, as a read-only
    (K, 2) array of intp for compiled kernels: ``(i, j)`` puts the smaller of
    elements i and j (i < j) in i and the larger in j."""
    pairs = np.array(_sorting_network(n), dtype=np.intp).reshape(-1, 2)
    pairs.flags.writeable = False      # shared by every caller
    return pairs


@lru_cache(maxsize=None)
def _selection_network(n: int, first: int, last: int) -> tuple:
    """The comparators of :func:`_sorting_network` that ranks ``first..last`` of the result need.

    Each is ``(i, j, low, high)``: ``low`` / ``high`` whether its minimum
    (row i) / maximum (row j) is used later.  Found backwards from the ranks
    asked: a comparator whose outputs are not used is left out (a median of
    10 needs 50 of the 64 minimum/maximum operations).
    """
    used, kept = set(range(first, last + 1)), []
    for i, j in reversed(_sorting_network(n)):
        low, high = i in used, j in used
        if low or high:
            kept.append((i, j, low, high))
            used.update((i, j))
    return tuple(reversed(kept))


def _sorted_valid(values, valid, first, last):
    """Ranks ``first..last`` of ``values`` sorted along axis 0, unused inputs (+inf) last.

    Returns a list of N rows of which those ranks are right (others may be
    None or anything).  The comparators of :func:`_selection_network` write
    into spare rows (``values`` itself is never written); when every input
    is used the first ones read ``values`` directly, without a masked copy.
    """
    nin = values.shape[0]
    if nin > _NETWORK_MAX_INPUTS:
        work = np.where(valid, values, np.float32(np.inf))
        work.sort(axis=0)
        return list(work)
    if valid.all():
        rows, owned = list(values), [False] * nin
    else:
        rows, owned = list(np.where(valid, values, np.float32(np.inf))), [True] * nin
    spare = []      # owned rows free for reuse

    def target(*candidates):
        for index in candidates:
            if owned[index]:
                return rows[index]
        return spare.pop() if spare else np.empty_like(values[0])

    for i, j, low, high in _selection_network(nin, first, last):
        a, b = rows[i], rows[j]
        if low and high:
            lo = spare.pop() if spare else np.empty_like(values[0])
            np.minimum(a, b, out=lo)
            hi = target(j, i)
            np.maximum(a, b, out=hi)
            spare.extend(r for r, mine in ((a, owned[i]), (b, owned[j])) if mine and r is not hi)
            rows[i], rows[j], owned[i], owned[j] = lo, hi, True, True
        else:
            out = target(i, j) if low else target(j, i)
            (np.minimum if low else np.maximum)(a, b, out=out)
            spare.extend(r for r, mine in ((a, owned[i]), (b, owned[j])) if mine and r is not out)
            keep, drop = (i, j) if low else (j, i)
            rows[keep], owned[keep], rows[drop], owned[drop] = out, True, None, False
    return rows


def _span(k):
    """``(smallest, largest)`` of the int array ``k`` ((0, -1) if empty)."""
    return (int(k.min()), int(k.max())) if k.size else (0, -1)


def _order_statistic(rows, k, span, first):
    """The ``k``-th smallest used value of each pixel (``k`` a 1-D int array) from sorted rows.

    ``span`` is :func:`_span` of ``k``; ``rows[first:]`` up to the largest
    ``k`` must be right (:func:`_sorted_valid`).
    """
    low, high = span
    if low == high:       # every pixel uses as many inputs: one row
        return rows[low]
    if not k.size:
        return np.empty(0, np.float32)
    stacked = np.stack(rows[first:high + 1])
    npix = stacked.shape[1]
    return stacked.reshape(-1).take((k.astype(np.intp, copy=False) - first) * npix
                                    + np.arange(npix))


def _count(valid):
    """The number of used inputs of each pixel (int64; summed as bytes: 7x faster)."""
    if valid.shape[0] > 255:
        return valid.sum(axis=0)
    return np.add.reduce(valid.view(np.uint8), axis=0, dtype=np.uint8).astype(np.int64)


def _median(values, valid, n, low=False):
    span = _span(n)
    if span[0] == span[1]:    # every pixel uses as many inputs: two rows of the sorted ones
        count = max(span[0], 1)
        lower_rank, upper_rank = (count - 1) // 2, count // 2
        ordered = _sorted_valid(values, valid, lower_rank, lower_rank if low else upper_rank)
        if low:
            return ordered[lower_rank]
        return 0.5 * (ordered[lower_rank] + ordered[upper_rank])
    safe = np.maximum(n, 1)
    lower_rank, upper_rank = (safe - 1) // 2, safe // 2
    lower_span, upper_span = _span(lower_rank), _span(upper_rank)
    ordered = _sorted_valid(values, valid, lower_span[0], lower_span[1] if low else upper_span[1])
    lower = _order_statistic(ordered, lower_rank, lower_span, lower_span[0])
    if low:
        return lower
    return 0.5 * (lower + _order_statistic(ordered, upper_rank, upper_span, lower_span[0]))


def _masked_sum(values, valid, finite=False):
    """Sum over the inputs of the used ``values``.

    ``finite``: the unused values are finite, so multiplying by ``valid``
    masks them (the same sums; np.where is 3x slower on a scattered mask).
    """
    if finite:
        return np.multiply(values, valid).sum(axis=0)
    return np.where(valid, values, np.float32(0)).sum(axis=0)


@lru_cache(maxsize=None)
def _quality_levels() -> np.ndarray:
    """Rank in the DQ hierarchy (0 = good; higher = worse) of every uint16 DQ value."""
    values = np.arange(1 << 16, dtype=np.uint32)
    levels = np.zeros(values.size, dtype=np.uint8)
    for level, bits in enumerate(DQ_HIERARCHY, start=1):
        levels[(values & bits) != 0] = level
    return levels


def _quality_rank(masks: np.ndarray) -> np.ndarray:
    """Rank of each input pixel in the DQ hierarchy (0 = good; higher = worse)."""
    return _quality_levels()[masks.astype(dq.DTYPE, copy=False)]


def _minmax(values, valid, nlow, nhigh, ntotal):
    """IRAF imcombine minmax: drop the n*nlow/N lowest and n*nhigh/N highest used inputs."""
    n = _count(valid)
    count, most = _span(n)
    if count == most:       # every pixel uses as many inputs: the same cuts (the same arithmetic)
        low, high = int(count * nlow / ntotal + 0.001), int(count * nhigh / ntotal + 0.001)
        if low + high >= count:
            low, high = 0, 0
        nl, nh = np.full(n.shape, low, np.int32), np.full(n.shape, high, np.int32)
        ordered = _sorted_valid(values, valid, low, max(count - high - 1, 0))
        lowest, highest = ordered[low], ordered[max(count - high - 1, 0)]
    else:
        nl = (n * nlow / ntotal + 0.001).astype(np.int32)
        nh = (n * nhigh / ntotal + 0.001).astype(np.int32)
        too_many = nl + nh >= n
        nl[too_many], nh[too_many] = 0, 0
        top = np.maximum(n - nh - 1, 0)
        low_span, top_span = _span(nl), _span(top)
        first = min(low_span[0], top_span[0])
        ordered = _sorted_valid(values, valid, first, max(low_span[1], top_span[1]))
        lowest = _order_statistic(ordered, nl, low_span, first)
        highest = _order_statistic(ordered, top, top_span, first)
    keep = valid & (values >= lowest) & (values <= highest)
    # inputs equal to a cut value: keep exactly n - nl - nh, ranking ties by input order
    ties = np.flatnonzero(_count(keep) > n - nl - nh)
    if ties.size:
        sub = np.where(valid[:, ties], values[:, ties], np.float32(np.inf))
        rank = np.empty(sub.shape, np.intp)
        np.put_along_axis(rank, np.argsort(sub, axis=0, kind="stable"),
                          np.arange(sub.shape[0])[:, None], axis=0)
        keep[:, ties] = (valid[:, ties] & (rank >= nl[ties])
                         & (rank < (n - nh)[ties]))
    return keep


def _clip(values, variances, valid, method, lsigma, hsigma, mclip, max_iters):
    """Iterative sigma or variance clipping; only pixels that changed are iterated again."""
    iterations = MAX_ITERATIONS if max_iters is None else max_iters
    active = slice(None)
    for _ in range(iterations):
        vals, ok = values[:, active], valid[:, active]
        n = _count(ok)
        safe = np.maximum(n, 1).astype(np.float32)
        mean = None if (mclip and method == "varclip") else _masked_sum(vals, ok, True) / safe
        centre = _median(vals, ok, n) if mclip else mean
        if method == "varclip":     # VAR (N, P), or one value per input (N, 1)
            sigma = np.sqrt(variances if variances.shape[1] == 1 else variances[:, active])
        else:
            dev = vals - mean
            sigma = np.sqrt(_masked_sum(dev * dev, ok) / safe)
        # ok & (vals >= centre - lsigma * sigma) & (vals <= centre + hsigma * sigma), in place;
        # sigma (N, 1) gives a bound per input and pixel
        bound = np.subtract(centre, lsigma * sigma)
        new = np.greater_equal(vals, bound)
        np.add(centre, sigma * hsigma, out=bound)
        below = np.less_equal(vals, bound)
        new &= below
        new &= ok
        changed = np.not_equal(new, ok, out=below).any(axis=0)
        emptied = changed & ~new.any(axis=0)    # never reject every input of a pixel
        if emptied.any():
            new[:, emptied] = ok[:, emptied]
            changed &= ~emptied
        valid[:, active] = new
        changed = np.flatnonzero(changed)
        if changed.size == 0:
            break
        active = changed if isinstance(active, slice) else active[changed]
    return valid


def _combine(values, variances, valid, operation):
    """Combine the used inputs (``values`` finite); return (data, variance, n)."""
    n = _count(valid)
    safe = np.maximum(n, 1).astype(np.float32)
    if operation == "wtmean":
        use = valid & (variances > 0)
        weights = np.where(use, 1.0 / np.where(use, variances, np.float32(1)), np.float32(0))
        wsum = weights.sum(axis=0)
        safe_w = np.where(wsum > 0, wsum, np.float32(1))
        data = _masked_sum(values * weights, use) / safe_w
        return data, np.where(wsum > 0, 1.0 / safe_w, 0.0), n
    if operation == "mean":
        data = _masked_sum(values, valid, True) / safe
    else:
        data = _median(values, valid, n, low=operation == "lmedian")
    if variances is not None:
        var = _masked_sum(variances, valid, bool(np.isfinite(variances).all())) / (safe * safe)
    else:
        dev = values - data
        var = np.where(n > 1, _masked_sum(dev * dev, valid) / (safe * np.maximum(safe - 1, 1)), 0.0)
    if operation != "mean":
        var = np.where(n > 2, var * np.float32(math.pi / 2), var)
    return data, var, n


#: Stand-ins for absent VAR or DQ planes (the kernel's arguments have one type).
_NO_VARIANCE = np.zeros((1, 1), np.float32)
_NO_FLAGS = np.zeros((1, 1), dq.DTYPE)


def _compiled_combination(values, var, flags, options):
    """data, variance, mask (1-D) of a chunk's (N, P) planes by :mod:`.combine_kernel`."""
    from .combine_kernel import OPERATION_CODES, REJECT_CODES, combine_pixels
    npix = values.shape[1]
    data = np.empty(npix, np.float32)
    out_var = np.empty(npix, np.float32)
    out_mask = np.empty(npix, dq.DTYPE)
    max_iters = options["max_iters"]
    combine_pixels(values, _NO_VARIANCE if var is None else var,
                   _NO_FLAGS if flags is None else flags.astype(dq.DTYPE, copy=False),
                   var is not None, flags is not None, bool(options["apply_dq"]),
                   _quality_levels(), REJECT_CODES[options["reject_method"]],
                   OPERATION_CODES[options["operation"]], np.float32(options["lsigma"]),
                   np.float32(options["hsigma"]), bool(options["mclip"]),
                   MAX_ITERATIONS if max_iters is None else int(max_iters),
                   int(options["nlow"]), int(options["nhigh"]), sorting_network(values.shape[0]),
                   data, out_var, out_mask)
    return data, out_var, out_mask


def _stacked(planes, rows, dtype, workspace, name):
    """``planes[:][rows]`` as one (N, pixels) array of ``dtype``, in a buffer of ``workspace``.

    Each thread reuses its buffers from chunk to chunk: new chunk-sized
    arrays would be page-faulted in again every time.
    """
    ny, nx = planes[0][rows].shape
    size = len(planes) * ny * nx
    buffer = workspace.get(name)
    if buffer is None or buffer.size < size:
        buffer = workspace[name] = np.empty(size, dtype)
    out = buffer[:size].reshape(len(planes), ny, nx)
    np.stack([a[rows] for a in planes], out=out, casting="unsafe")
    return out.reshape(len(planes), ny * nx)


def _combine_chunk(datas, variances, masks, rows, scales, zeros, options, workspace):
    ny, nx = datas[0][rows].shape
    values = _stacked(datas, rows, np.float32, workspace, "values")
    var = None
    if isinstance(variances, np.ndarray):       # one value per input: (N, 1)
        var = variances.copy()
    elif variances is not None:
        var = _stacked(variances, rows, np.float32, workspace, "variances")
    if zeros is not None:
        values += zeros[:, None]
    if scales is not None:
        values *= scales[:, None]
        if var is not None:
            var *= (scales * scales)[:, None]
    flags = None
    if masks is not None:
        flags = _stacked(masks, rows, np.result_type(*masks), workspace, "masks")
    if options["compiled"]:
        data, out_var, out_mask = _compiled_combination(values, var, flags, options)
        return data.reshape(ny, nx), out_var.reshape(ny, nx), out_mask.reshape(ny, nx)
    valid = np.isfinite(values)
    if not valid.all():     # never used: zeros keep the masked sums finite
        values[~valid] = 0
    if flags is not None:
        # where every input has the same flags (mostly 0, or UNILLUMINATED) the DQ hierarchy
        # keeps them all and the result has those flags: only the other pixels are ranked
        common = flags.max(axis=0)
        mixed = np.flatnonzero(flags.min(axis=0) != common)
        if options["apply_dq"] and mixed.size:
            rank = _quality_rank(flags[:, mixed])
            valid[:, mixed] &= rank == rank.min(axis=0)
    method = options["reject_method"]
    if method == "minmax":
        valid = _minmax(values, valid, options["nlow"], options["nhigh"], len(datas))
    elif method in ("sigclip", "varclip"):
        valid = _clip(values, var, valid, method, options["lsigma"], options["hsigma"],
                      options["mclip"], options["max_iters"])
    data, out_var, n = _combine(values, var, valid, options["operation"])
    empty = n == 0
    if flags is not None:
        out_mask = common.astype(dq.DTYPE, copy=False)
        if mixed.size:
            out_mask[mixed] = np.bitwise_or.reduce(np.where(valid[:, mixed], flags[:, mixed], 0),
                                                   axis=0)
        if empty.any():
            out_mask[empty] = np.bitwise_or.reduce(flags[:, empty], axis=0) | dq.NO_DATA
    else:
        out_mask = np.where(empty, dq.NO_DATA, 0).astype(dq.DTYPE)
    data = np.where(empty, 0.0, data)
    out_var = np.where(empty, 0.0, out_var)
    shape = (ny, nx)
    return data.reshape(shape), out_var.reshape(shape), out_mask.reshape(shape)


#: Input pixels (frames x pixels of all extensions) from which the compiled kernel repays
#: loading numba: 0.5 s of CPU, serial, in a process that has not imported it (0.15 s the
#: import, 0.35 s the first call, most of it numba importing scipy.linalg), against ~6 ns
#: of CPU saved per input pixel, half that in wall time on two cores (measured at 2x2 on the
#: 2-core Xeon: twelve extensions of ten biases, 65e6 pixels, 0.62 s CPU with numpy, 0.22 s
#: compiled; the 0.5 s is serial, the combination on both cores: not repaid).
_COMPILED_MIN_ELEMENTS = 100_000_000


def _is_constant(plane: np.ndarray) -> bool:
    """Whether ``plane`` is one value broadcast (no strides), e.g. a bias's VAR or DQ."""
    return plane.size > 0 and not any(plane.strides)


def compiled_pays(elements: int) -> bool:
    """Whether a stack of ``elements`` input pixels in all is combined by the compiled kernel.

    Yes when numba is already imported (its load is paid) or the stack is
    large enough to repay loading it.
    """
    return "numba" in sys.modules or elements >= _COMPILED_MIN_ELEMENTS


def combine_arrays(datas: Sequence[np.ndarray], variances: Sequence[np.ndarray] | None = None,
                   masks: Sequence[np.ndarray] | None = None, *, operation: str = "mean",
                   reject_method: str = "none", lsigma: float = 3.0, hsigma: float = 3.0,
                   mclip: bool = True, max_iters: int | None = None, nlow: int = 0,
                   nhigh: int = 0, apply_dq: bool = True, scales: Sequence[float] | None = None,
                   zeros: Sequence[float] | None = None, memory: float | None = 1.0,
                   progress: Callable[[float], None] | None = None, workers: int = 1,
                   compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine N same-shaped 2-D arrays with DQ hierarchy, rejection and VAR propagation.

    Parameters
    ----------
    datas : sequence of numpy.ndarray
        The N input images (not modified).
    variances, masks : sequence of numpy.ndarray, optional
        VAR and DQ planes of the inputs (all or none).
    operation : {'mean', 'wtmean', 'median', 'lmedian'}
    reject_method : {'none', 'minmax', 'sigclip', 'varclip'}
    lsigma, hsigma : float
        Clipping thresholds for sigclip / varclip.
    mclip : bool
        Centre the clipping on the median rather than the mean.
    max_iters : int or None
        Clipping iterations; None iterates until nothing changes (at most 100).
    nlow, nhigh : int
        Pixels rejected at each end by minmax (scaled by n/N for partly
        masked pixels, as IRAF imcombine).
    apply_dq : bool
        Use the DQ hierarchy to choose which inputs enter each pixel.
    scales, zeros : sequence of float, optional
        Per-input multiplicative factors and additive offsets (offsets first).
    memory : float or None
        Working-memory budget in GB for the chunked combination (all workers).
    progress : callable, optional
        ``progress(fraction)`` called after each chunk (in the calling thread).
    workers : int
        Threads combining row chunks at once (numpy and the compiled kernel
        release the GIL in the work); the result does not depend on it.
    compiled : bool, optional
        Combine with the compiled kernel (:mod:`.combine_kernel`, same
        results, three times as fast) rather than numpy; None (default):
        :func:`compiled_pays` for these arrays (callers combining several
        extensions decide for the whole stack).

    Returns
    -------
    data, variance, mask : numpy.ndarray
        float32, float32 and uint16 arrays of the common shape.
    """
    if operation not in OPERATIONS:
        raise ParameterError(f"operation must be one of {OPERATIONS}, not {operation!r}")
    if reject_method not in REJECT_METHODS:
        raise ParameterError(f"reject_method must be one of {REJECT_METHODS}, "
                             f"not {reject_method!r}")
    datas = list(datas)
    shape = datas[0].shape
    if any(a.shape != shape for a in datas):
        raise ParameterError("cannot stack arrays of different shapes: "
                             + ", ".join(str(a.shape) for a in datas))
    variances = None if variances is None or any(v is None for v in variances) else list(variances)
    masks = None if masks is None or any(m is None for m in masks) else list(masks)
    # constant planes (one value broadcast, see primitives._calib.constant_plane) are not
    # expanded: VAR becomes one value per input; DQ planes all 0 are no DQ (the same result)
    if variances is not None and all(_is_constant(v) for v in variances):
        variances = np.array([v.flat[0] for v in variances], np.float32)[:, None]
    if masks is not None and all(_is_constant(m) and m.flat[0] == 0 for m in masks):
        masks = None
    if variances is None and operation == "wtmean":
        raise ParameterError("operation='wtmean' needs the VAR planes of the inputs")
    if variances is None and reject_method == "varclip":
        reject_method = "sigclip"
    options = dict(operation=operation, reject_method=reject_method, lsigma=lsigma,
                   hsigma=hsigma, mclip=mclip, max_iters=max_iters, nlow=nlow, nhigh=nhigh,
                   apply_dq=apply_dq, compiled=compiled_pays(len(datas) * datas[0].size)
                   if compiled is None else compiled)
    scales = None if scales is None else np.asarray(scales, dtype=np.float32)
    zeros = None if zeros is None else np.asarray(zeros, dtype=np.float32)
    ny, nx = shape
    workers = max(1, int(workers))
    chunk = max(1, _CHUNK_ELEMENTS // (len(datas) * nx))
    if memory is not None:       # the budget is shared by the chunks combined at once
        chunk = min(chunk, int(memory * 1e9 // (workers * len(datas) * nx * _BYTES_PER_PIXEL)))
    chunk = min(max(chunk, 1), ny)
    out_data = np.empty(shape, np.float32)
    out_var = np.empty(shape, np.float32)
    out_mask = np.empty(shape, dq.DTYPE)

    workspaces = threading.local()

    def combine_rows(start):
        rows = slice(start, min(start + chunk, ny))
        if not hasattr(workspaces, "buffers"):
            workspaces.buffers = {}
        out_data[rows], out_var[rows], out_mask[rows] = _combine_chunk(
            datas, variances, masks, rows, scales, zeros, options, workspaces.buffers)
        return rows.stop

    starts = range(0, ny, chunk)
    workers = min(workers, len(starts))
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for stop in (pool.map if pool else map)(combine_rows, starts):
            if progress is not None:
                progress(stop / ny)
    finally:     # after an error or a cancel (from progress): drop the chunks not started
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return out_data, out_var, out_mask
