"""The combination of :mod:`gmoswidgets.numerics.combine`, compiled (numba).

A chunk of N inputs x P pixels is combined in blocks of :data:`BLOCK`
pixels that stay in the CPU cache: the DQ hierarchy, the rejection and the
combination all run on one block before the next, in loops over the
block's pixels that the compiler vectorises, instead of whole-chunk numpy
temporaries.  The arithmetic is the numpy code's, operation by operation in
float32: sums in input order, order statistics from a sorting network with
unused inputs at +inf, the same thresholds, the same clipping iterations
per pixel, IRAF's tie rule for minmax.  Clipping runs its first iteration
over the whole block; the few pixels that changed then iterate alone.
A VAR plane that is one value per input (``variances`` of shape (N, 1)) is
not expanded, and blocks without any DQ flag skip the DQ hierarchy.
Each loop runs over one input's row of the block (a contiguous view) and
chooses with selects rather than branches, so that the compiler vectorises
it; sums skip an unused input by adding +0.0 (a sum that starts at +0.0 is
never -0.0: the same bits); divisions follow numpy (``error_model='numpy'``:
a lane whose quotient is not used may divide by zero).

Imported only when frames are stacked (importing numba costs ~0.2 s).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["BLOCK", "OPERATION_CODES", "REJECT_CODES", "apply_network", "combine_pixels"]

#: Codes of the operations and rejections passed to the kernel.
OPERATION_CODES = {"mean": 0, "wtmean": 1, "median": 2, "lmedian": 3}
REJECT_CODES = {"none": 0, "minmax": 1, "sigclip": 2, "varclip": 3}
#: Pixels combined at once (N x BLOCK float32 working planes stay in the L2 cache).
BLOCK = 512
_NO_DATA = np.uint16(16)
_INF = np.float32(np.inf)
_HALF = np.float32(0.5)
_ONE = np.float32(1)
_ZERO = np.float32(0)
_HALF_PI = np.float32(math.pi / 2)


@njit(nogil=True, cache=True, error_model="numpy")
def _sort_block(values, ok, base, m, pairs, work):
    """``work[:, :m]``: the used inputs of each pixel sorted, unused ones (+inf) last."""
    nin = work.shape[0]
    for i in range(nin):
        row, used, lane = values[i, base:base + m], ok[i], work[i]
        for p in range(m):
            lane[p] = row[p] if used[p] else _INF
    apply_network(work, pairs, m)


@njit(nogil=True, cache=True, error_model="numpy")
def apply_network(work, pairs, m):
    """Sort ``work[:, :m]`` along its first axis with the comparators ``pairs`` (a sorting
    network, :func:`gmoswidgets.numerics.combine.sorting_network`), pixel by pixel."""
    for c in range(pairs.shape[0]):
        low, high = work[pairs[c, 0]], work[pairs[c, 1]]
        for p in range(m):
            x, y = low[p], high[p]
            low[p] = min(x, y)
            high[p] = max(x, y)


@njit(nogil=True, cache=True, error_model="numpy")
def _count(ok, m, n):
    nin = ok.shape[0]
    for p in range(m):
        n[p] = 0
    for i in range(nin):
        used = ok[i]
        for p in range(m):
            n[p] += used[p]


@njit(nogil=True, cache=True, error_model="numpy")
def _masked_mean(values, ok, base, m, n, out):
    """``out[:m]`` = sum of the used inputs (in input order) / max(n, 1), in float32."""
    nin = ok.shape[0]
    for p in range(m):
        out[p] = _ZERO
    for i in range(nin):
        row, used = values[i, base:base + m], ok[i]
        for p in range(m):
            out[p] += row[p] if used[p] else _ZERO
    for p in range(m):
        out[p] = out[p] / np.float32(max(n[p], 1))


@njit(nogil=True, cache=True, error_model="numpy")
def _sum_squared_deviations(values, ok, base, m, centre, out):
    """``out[:m]`` = sum over the used inputs (in input order) of (value - centre)**2, float32."""
    nin = ok.shape[0]
    for p in range(m):
        out[p] = _ZERO
    for i in range(nin):
        row, used = values[i, base:base + m], ok[i]
        for p in range(m):
            dev = row[p] - centre[p]
            out[p] += dev * dev if used[p] else _ZERO


@njit(nogil=True, cache=True, error_model="numpy")
def _median(work, n, m, low, out):
    """Median (or low median) of each pixel from its sorted inputs (numpy code's rule)."""
    for p in range(m):
        safe = max(n[p], 1)
        lower = work[(safe - 1) // 2, p]
        out[p] = lower if low else _HALF * (lower + work[safe // 2, p])


@njit(nogil=True, cache=True, error_model="numpy")
def _minmax(values, ok, base, m, n, nlow, nhigh, pairs, work, order, lowest, highest, wanted,
            kept):
    """IRAF imcombine minmax on a block: drop the n*nlow/N lowest and n*nhigh/N highest inputs.

    The inputs between each pixel's cut values (``lowest``, ``highest``) are
    kept where they are as many as wanted (``wanted``; -1: nothing to drop),
    in loops over the block's pixels; pixels with inputs equal to a cut
    value that would keep too many are then done one by one.
    """
    nin = ok.shape[0]
    _count(ok, m, n)
    _sort_block(values, ok, base, m, pairs, work)
    for p in range(m):
        count = n[p]
        nl = int(count * nlow / nin + 0.001)
        nh = int(count * nhigh / nin + 0.001)
        if nl + nh >= count:
            wanted[p] = -1
            lowest[p] = _INF
            highest[p] = _INF
        else:
            wanted[p] = count - nl - nh
            lowest[p] = work[nl, p]
            highest[p] = work[count - nh - 1, p]
        kept[p] = 0
    for i in range(nin):
        row, usable = values[i, base:base + m], ok[i]
        for p in range(m):
            kept[p] += usable[p] & (lowest[p] <= row[p]) & (row[p] <= highest[p])
    for i in range(nin):
        row, usable = values[i, base:base + m], ok[i]
        for p in range(m):
            inside = usable[p] & (lowest[p] <= row[p]) & (row[p] <= highest[p])
            usable[p] = inside if kept[p] == wanted[p] else usable[p]
    for p in range(m):
        if wanted[p] < 0 or kept[p] == wanted[p]:
            continue
        count = n[p]
        nl = int(count * nlow / nin + 0.001)
        nh = int(count * nhigh / nin + 0.001)
        # inputs equal to a cut value: keep exactly n - nl - nh, ranking ties by input order
        used = 0
        for i in range(nin):
            if ok[i, p]:
                order[used] = i
                used += 1
        for a in range(1, used):
            index = order[a]
            x = values[index, base + p]
            b = a - 1
            while b >= 0 and values[order[b], base + p] > x:
                order[b + 1] = order[b]
                b -= 1
            order[b + 1] = index
        for rank in range(used):
            if rank < nl or rank >= used - nh:
                ok[order[rank], p] = False


@njit(nogil=True, cache=True, error_model="numpy")
def _clip_pixel(values, ok, base, p, sd, varclip, lsigma, hsigma, mclip, iterations, column):
    """Further clipping iterations of one pixel of a block, until it no longer changes.

    The arithmetic of :func:`_clip`'s, for one pixel: its used inputs
    sorted in ``column`` for the median.
    """
    nin = ok.shape[0]
    for _ in range(iterations):
        count = 0
        total = _ZERO
        for i in range(nin):
            if ok[i, p]:
                total += values[i, base + p]
                count += 1
        safe = np.float32(max(count, 1))
        mean = total / safe
        if mclip:
            used = 0
            for i in range(nin):
                if ok[i, p]:
                    x = values[i, base + p]
                    b = used - 1
                    while b >= 0 and column[b] > x:
                        column[b + 1] = column[b]
                        b -= 1
                    column[b + 1] = x
                    used += 1
            half = max(count, 1)
            centre = _HALF * (column[(half - 1) // 2] + column[half // 2])
        else:
            centre = mean
        sigma = _ZERO
        if not varclip:
            squares = _ZERO
            for i in range(nin):
                if ok[i, p]:
                    dev = values[i, base + p] - mean
                    squares += dev * dev
            sigma = np.sqrt(squares / safe)
        changed = False
        kept = False
        for i in range(nin):
            s = sd[i, p] if varclip else sigma
            v = values[i, base + p]
            keep = ok[i, p] and v >= centre - lsigma * s and v <= centre + hsigma * s
            changed |= keep != ok[i, p]
            kept |= keep
        if not (changed and kept):     # never reject every input of a pixel
            return
        for i in range(nin):
            s = sd[i, p] if varclip else sigma
            v = values[i, base + p]
            ok[i, p] = ok[i, p] and v >= centre - lsigma * s and v <= centre + hsigma * s


@njit(nogil=True, cache=True, error_model="numpy")
def _clip(values, sd, ok, base, m, varclip, lsigma, hsigma, mclip, iterations, pairs, work, new,
          n, mean, centre, sigma, column, changed, kept):
    """Iterative sigma / variance clipping of a block; each pixel until it no longer changes.

    ``sd``: the inputs' standard deviations (sqrt VAR) for varclip.  The
    first iteration runs over the whole block; a pixel that changed then
    iterates alone (:func:`_clip_pixel`): few pixels need a second one.
    """
    nin = ok.shape[0]
    if iterations < 1:
        return
    _count(ok, m, n)
    if not (varclip and mclip):
        _masked_mean(values, ok, base, m, n, mean)
    if mclip:
        _sort_block(values, ok, base, m, pairs, work)
        _median(work, n, m, False, centre)
    else:
        for p in range(m):
            centre[p] = mean[p]
    if not varclip:
        _sum_squared_deviations(values, ok, base, m, mean, sigma)
        for p in range(m):
            sigma[p] = np.sqrt(sigma[p] / np.float32(max(n[p], 1)))
    for p in range(m):
        changed[p] = False
        kept[p] = False
    for i in range(nin):
        row, used, keep, spread = values[i, base:base + m], ok[i], new[i], sd[i]
        for p in range(m):
            s = spread[p] if varclip else sigma[p]
            v = row[p]
            keep[p] = used[p] & (v >= centre[p] - lsigma * s) & (v <= centre[p] + hsigma * s)
            changed[p] |= keep[p] != used[p]
            kept[p] |= keep[p]
    for p in range(m):
        if changed[p] and kept[p]:     # never reject every input of a pixel
            for i in range(nin):
                ok[i, p] = new[i, p]
            _clip_pixel(values, ok, base, p, sd, varclip, lsigma, hsigma, mclip, iterations - 1,
                        column)


@njit(nogil=True, cache=True, error_model="numpy")
def combine_pixels(values, variances, flags, has_var, has_flags, apply_dq, levels, reject,
                   operation, lsigma, hsigma, mclip, iterations, nlow, nhigh, pairs, out_data,
                   out_var, out_mask):
    """Combine the inputs of every pixel of a chunk.

    Parameters
    ----------
    values : float32 array (N, P)
        The inputs (offsets and scales already applied).
    variances : float32 array (N, P) or (N, 1)
        Their VAR, or one VAR value per input (ignored when ``has_var`` is False).
    flags : uint16 array (N, P)
        Their DQ (ignored when ``has_flags`` is False).
    has_var, has_flags, apply_dq : bool
    levels : uint8 array (65536,)
        Quality level of each DQ value (0 good; the DQ hierarchy).
    reject, operation : int
        :data:`REJECT_CODES` and :data:`OPERATION_CODES` values.
    lsigma, hsigma : float32
    mclip : bool
    iterations : int
        Clipping iterations at most.
    nlow, nhigh : int
        minmax counts.
    pairs : intp array (K, 2)
        Comparators of a sorting network for N elements.
    out_data, out_var : float32 array (P,)
    out_mask : uint16 array (P,)
    """
    nin, npix = values.shape
    width = min(BLOCK, npix)
    ok = np.empty((nin, width), np.bool_)
    new = np.empty((nin, width), np.bool_)
    changed = np.empty(width, np.bool_)
    kept = np.empty(width, np.bool_)
    wanted = np.empty(width, np.int64)
    kept_count = np.empty(width, np.int64)
    rank = np.empty((nin, width), np.uint8)
    work = np.empty((nin, width), np.float32)
    var = np.zeros((nin, width), np.float32)     # the block's VAR
    sd = np.zeros((nin, width), np.float32)      # and its square root (varclip)
    n = np.empty(width, np.int64)
    best = np.empty(width, np.uint8)
    mean = np.empty(width, np.float32)
    centre = np.empty(width, np.float32)
    sigma = np.empty(width, np.float32)
    wsum = np.empty(width, np.float32)
    order = np.empty(nin, np.intp)
    column = np.empty(nin, np.float32)
    use_dq = has_flags and apply_dq
    var_per_input = variances.shape[1] == 1
    varclip = reject == 3
    if has_var and var_per_input:
        for i in range(nin):
            for p in range(width):
                var[i, p] = variances[i, 0]
                sd[i, p] = np.sqrt(variances[i, 0])
    for base in range(0, npix, BLOCK):
        m = min(BLOCK, npix - base)
        if has_var and not var_per_input:
            for i in range(nin):
                row, lane = variances[i, base:base + m], var[i]
                for p in range(m):
                    lane[p] = row[p]
            if varclip:
                for i in range(nin):
                    lane, root = var[i], sd[i]
                    for p in range(m):
                        root[p] = np.sqrt(lane[p])
        flagged = False
        if has_flags:
            any_flag = np.uint16(0)
            for i in range(nin):
                row = flags[i, base:base + m]
                for p in range(m):
                    any_flag |= row[p]
            flagged = any_flag != 0
        # which inputs enter: the best quality available, finite
        if use_dq and flagged:
            for p in range(m):
                best[p] = 255
            for i in range(nin):
                row, ranks = flags[i, base:base + m], rank[i]
                for p in range(m):
                    level = levels[row[p]]
                    ranks[p] = level
                    best[p] = min(best[p], level)
            for i in range(nin):
                row, ranks, used = values[i, base:base + m], rank[i], ok[i]
                for p in range(m):
                    used[p] = (ranks[p] == best[p]) & np.isfinite(row[p])
        else:
            for i in range(nin):
                row, used = values[i, base:base + m], ok[i]
                for p in range(m):
                    used[p] = np.isfinite(row[p])
        if reject == 1:
            _minmax(values, ok, base, m, n, nlow, nhigh, pairs, work, order, mean, centre,
                    wanted, kept_count)
        elif reject >= 2:
            _clip(values, sd, ok, base, m, varclip, lsigma, hsigma, mclip, iterations, pairs,
                  work, new, n, mean, centre, sigma, column, changed, kept)
        _count(ok, m, n)
        # combination
        if operation == 1:      # wtmean: inverse-variance weights
            for p in range(m):
                wsum[p] = _ZERO
                mean[p] = _ZERO
            for i in range(nin):
                row, used, lane = values[i, base:base + m], ok[i], var[i]
                for p in range(m):
                    v = lane[p]
                    weight = _ONE / v
                    take = used[p] & (v > 0)
                    wsum[p] += weight if take else _ZERO
                    mean[p] += row[p] * weight if take else _ZERO
            for p in range(m):
                if wsum[p] > 0:
                    out_data[base + p] = mean[p] / wsum[p]
                    out_var[base + p] = _ONE / wsum[p]
                else:
                    out_data[base + p] = mean[p]
                    out_var[base + p] = _ZERO
        else:
            if operation == 0:
                _masked_mean(values, ok, base, m, n, mean)
            else:
                _sort_block(values, ok, base, m, pairs, work)
                _median(work, n, m, operation == 3, mean)
            for p in range(m):
                out_data[base + p] = mean[p]
            if has_var:
                for p in range(m):
                    sigma[p] = _ZERO
                for i in range(nin):
                    used, lane = ok[i], var[i]
                    for p in range(m):
                        sigma[p] += lane[p] if used[p] else _ZERO
                for p in range(m):
                    safe = np.float32(max(n[p], 1))
                    sigma[p] = sigma[p] / (safe * safe)
            else:
                _sum_squared_deviations(values, ok, base, m, mean, sigma)
                for p in range(m):
                    safe = np.float32(max(n[p], 1))
                    sigma[p] = (sigma[p] / (safe * max(safe - _ONE, _ONE)) if n[p] > 1
                                else _ZERO)
            for p in range(m):
                if operation != 0 and n[p] > 2:
                    sigma[p] = sigma[p] * _HALF_PI
                out_var[base + p] = sigma[p]
        # DQ of the result; no input left: 0 with the OR of all the flags and NO_DATA
        for p in range(m):
            out_mask[base + p] = 0
        if flagged:
            target = out_mask[base:base + m]
            for i in range(nin):
                row, used = flags[i, base:base + m], ok[i]
                for p in range(m):
                    target[p] |= row[p] if used[p] | (n[p] == 0) else np.uint16(0)
        for p in range(m):
            if n[p] == 0:
                out_data[base + p] = _ZERO
                out_var[base + p] = _ZERO
                out_mask[base + p] |= _NO_DATA
