"""Compiled per-pixel kernels of :mod:`.interpolate` and :mod:`.covariance` (numba).

One pass over the output: for each output pixel the input position is
computed once from the affine map, the Lagrange weights along x and y once,
and SCI (weights), VAR (squared weights) and DQ (bit by bit, DRAGONS'
threshold rule) are accumulated from the same taps.  No full-size
temporaries: the kernels write straight into the caller's output arrays.

This module imports numba; :mod:`.interpolate` and :mod:`.covariance`
import it only when they resample, so that the stages that never resample
(bias, flat) do not load numba.  Compiled code is cached on disk
(``cache=True``: in ``__pycache__`` next to this file, or in numba's
user-wide cache directory where that is not writable).  The kernels release
the GIL (``nogil=True``): the executor runs frames on threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["lagrange_resample", "nearest_flags", "scale_by_correlation"]


#: Output pixels of a run handled at once (the scratch arrays stay in the L1 cache).
_CHUNK = 256
#: Largest ``|m00 - 1|`` and ``|m10|`` of a map for which :func:`nearest_flags` looks for runs.
_RUN_SLOPE = 1e-3


@njit(nogil=True, cache=True)
def _scales(nodes):
    """float32 ``1 / prod(node_k - node_m)`` over ``m != k``: each Lagrange basis's scale."""
    ntaps = len(nodes)
    scales = np.empty(ntaps, np.float32)
    for k in range(ntaps):
        denominator = 1.0
        for m in range(ntaps):
            if m != k:
                denominator *= nodes[k] - nodes[m]
        scales[k] = 1.0 / denominator
    return scales


@njit(nogil=True, cache=True)
def _weights(fracs, n, nodes, scales, out):
    """float32 Lagrange weights ``out[k, :n]`` at the fractional positions ``fracs[:n]``:
    ``scales[k]`` times ``frac - node_m`` over ``m != k``, in that order."""
    ntaps = len(nodes)
    for p in range(n):
        frac = fracs[p]
        for k in range(ntaps):
            weight = scales[k]
            for m in range(ntaps):
                if m != k:
                    weight *= frac - np.float32(nodes[m])
            out[k, p] = weight


@njit(nogil=True, cache=True)
def _tap_sums(plane, row0, col0, wx, wy, n, nodes, squared, target, total):
    """``target[p] = sum_j wy[j] sum_i wx[i] plane[row0 + j, col0 + i + p]`` for ``p < n``
    (weights squared if ``squared``): output pixels with one integer offset, taps inside.

    Each pixel's sums are accumulated from 0 in the order of ``j`` and ``i``; the loop
    over the pixels is inside the one over ``j`` (vectorised by the compiler), with
    ``total`` (float32 scratch of at least ``n`` values) holding the partial sums.
    """
    ntaps = len(nodes)
    for p in range(n):
        total[p] = 0
    for j in range(ntaps):
        source = plane[row0 + j, col0:col0 + n + ntaps - 1]
        row_weights = wy[j]
        for p in range(n):
            line = np.float32(0)
            for i in range(ntaps):
                weight = wx[i, p]
                if squared:
                    weight = weight * weight
                line += weight * source[i + p]
            weight = row_weights[p]
            if squared:
                weight = weight * weight
            total[p] += weight * line
    for p in range(n):
        target[p] = total[p]


@njit(nogil=True, cache=True)
def _partial_bits(values, inside, wx, wy, p, anyset, allset, threshold):
    """DQ bits of one output pixel: a bit set in every tap is passed on; one set in some
    taps where ``|sum of the weights wx[i, p] wy[j, p] of those taps| > threshold``.
    ``values[j, i]`` are the taps' DQ values, ``inside[j, i]`` whether they lie in the input
    (taps beyond it carry no bit)."""
    ntaps = wx.shape[0]
    bits = np.int64(allset)
    partial = np.int64(anyset) & ~bits
    bit = 1
    while partial:
        if partial & bit:
            total = np.float32(0)
            for j in range(ntaps):
                for i in range(ntaps):
                    if inside[j, i] and values[j, i] & bit:
                        total += wx[i, p] * wy[j, p]
            if abs(total) > threshold:
                bits |= bit
            partial &= ~bit
        bit <<= 1
    return bits


@njit(nogil=True, cache=True)
def _run_bits(mask, row0, col0, wx, wy, n, nodes, threshold, anyset, values, inside, target,
              column_any, column_all):
    """DQ of output pixels with one integer offset, every tap inside the input.

    The bits set in some / every tap of a pixel are the OR / AND, over its
    ``ntaps`` columns, of each column's OR / AND over the run's ``ntaps`` rows
    (``column_any``, ``column_all``: scratch of ``n + ntaps - 1`` values); a run
    without any bit set is done there.
    """
    ntaps = len(nodes)
    width = n + ntaps - 1
    for q in range(width):
        column_any[q] = 0
        column_all[q] = 0xFFFF
    for j in range(ntaps):
        source = mask[row0 + j, col0:col0 + width]
        for q in range(width):
            column_any[q] |= source[q]
            column_all[q] &= source[q]
    present = 0
    for q in range(width):
        present |= column_any[q]
    if present == 0:
        for p in range(n):
            target[p] = 0
        return
    for p in range(n):
        some = 0
        every = 0xFFFF
        for i in range(ntaps):
            some |= column_any[p + i]
            every &= column_all[p + i]
        anyset[p] = some
        target[p] = every
    inside[:, :] = True
    for p in range(n):
        if anyset[p] == target[p]:
            continue
        for j in range(ntaps):
            for i in range(ntaps):
                values[j, i] = mask[row0 + j, col0 + i + p]
        target[p] = _partial_bits(values, inside, wx, wy, p, anyset[p], target[p], threshold)


@njit(nogil=True, cache=True)
def _edge_pixel(in_shape, x, y, shift, nodes, scales, threshold, planes, data, variance, mask,
                out_data, out_variance, out_mask, origins, r, c, fracs, wx, wy, values, inside):
    """Output pixel ``[r, c]``, whose taps reach beyond the input: edge pixels repeated for
    SCI and VAR, no bits for DQ."""
    ny, nx = in_shape
    ntaps = len(nodes)
    ix = np.floor(x + shift)
    iy = np.floor(y + shift)
    fracs[0] = x - ix
    _weights(fracs, 1, nodes, scales, wx)
    fracs[0] = y - iy
    _weights(fracs, 1, nodes, scales, wy)
    col0 = int(ix) + nodes[0]
    row0 = int(iy) + nodes[0]
    do_data, do_variance, do_mask = planes
    if do_data or do_variance:
        total = np.float32(0)
        total_var = np.float32(0)
        for j in range(ntaps):
            row = min(max(row0 + j, 0), ny - 1)
            line = np.float32(0)
            line_var = np.float32(0)
            for i in range(ntaps):
                col = min(max(col0 + i, 0), nx - 1)
                if do_data:
                    line += wx[i, 0] * data[row, col]
                if do_variance:
                    line_var += wx[i, 0] * wx[i, 0] * variance[row, col]
            total += wy[j, 0] * line
            total_var += wy[j, 0] * wy[j, 0] * line_var
        if do_data:
            out_data[origins[0] + r, origins[1] + c] = total
        if do_variance:
            out_variance[origins[2] + r, origins[3] + c] = total_var
    if do_mask:
        anyset = 0
        allset = 0xFFFF
        for j in range(ntaps):
            for i in range(ntaps):
                row, col = row0 + j, col0 + i
                inside[j, i] = 0 <= row < ny and 0 <= col < nx
                values[j, i] = mask[row, col] if inside[j, i] else 0
                anyset |= values[j, i]
                allset &= values[j, i]
        out_mask[origins[4] + r, origins[5] + c] = _partial_bits(values, inside, wx, wy, 0, anyset,
                                                                 allset, threshold)


@njit(nogil=True, cache=True)
def lagrange_resample(in_shape, out_shape, matrix, offset, nodes, shift, threshold, planes,
                      data, variance, mask, out_data, out_variance, out_mask, origins, rows):
    """Separable Lagrange resampling of SCI, VAR and DQ through one affine map, in one pass.

    Parameters
    ----------
    in_shape, out_shape : tuple of int
        ``(ny, nx)`` of the input planes and of the output.
    matrix, offset : numpy.ndarray
        The map ``p_in = matrix @ p_out + offset`` between (x, y) pixels.
    nodes : tuple of int
        Consecutive tap offsets from ``floor(x + shift)`` along each axis (a tuple, so
        that each interpolant's loops are compiled with their length).
    shift : float
        0.5 for nearest neighbour (``nodes = (0,)``), else 0.
    threshold : float
        DQ contribution above which a bit is set (compared in float32).
    planes : tuple of bool
        Which of SCI, VAR and DQ to resample (the arrays of the others are not read).
    data, variance, mask : numpy.ndarray
        C-contiguous input planes (float32, float32, uint16).
    out_data, out_variance, out_mask : numpy.ndarray
        C-contiguous arrays holding the outputs, written only where the output
        pixel's centre maps inside the input.  SCI goes through the weights, VAR
        through their squares; beyond the input edges the edge pixels are repeated.
    origins : tuple of int
        Row and column of each output's first pixel in its array (SCI, VAR, DQ).
    rows : tuple of int
        ``(first, stop)``: the output rows to do (a band: bands done on several
        threads give the result of one call over all rows, bit for bit).

    Notes
    -----
    Positions are float64, the weights and sums float32.  Each output row is cut
    into runs of pixels whose taps have the same integer offset from the pixel
    and lie inside the input; a run's weights and sums are computed with
    contiguous loops (vectorised by the compiler).  The other pixels (near the
    input's edges) are handled one by one.
    """
    ny, nx = in_shape
    out_rows, out_cols = out_shape
    do_data, do_variance, do_mask = planes
    ntaps = len(nodes)
    m00, m01, m10, m11 = matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1]
    o0, o1 = offset[0], offset[1]
    threshold = np.float32(threshold)
    scales = _scales(nodes)
    fracs = np.empty(_CHUNK, np.float32)
    total = np.empty(_CHUNK, np.float32)
    same = np.empty(_CHUNK, np.bool_)
    wx = np.empty((ntaps, _CHUNK), np.float32)
    wy = np.empty((ntaps, _CHUNK), np.float32)
    anyset = np.empty(_CHUNK, np.uint16)
    column_any = np.empty(_CHUNK + ntaps - 1, np.uint16)
    column_all = np.empty(_CHUNK + ntaps - 1, np.uint16)
    values = np.empty((ntaps, ntaps), np.int64)
    inside = np.empty((ntaps, ntaps), np.bool_)
    last_col, last_row = nx - ntaps, ny - ntaps
    for r in range(max(rows[0], 0), min(rows[1], out_rows)):
        rest_x = m01 * r + o0
        rest_y = m11 * r + o1
        c = 0
        while c < out_cols:
            x = m00 * c + rest_x
            y = m10 * c + rest_y
            ix = np.floor(x + shift)
            iy = np.floor(y + shift)
            col0 = int(ix) + nodes[0]
            row0 = int(iy) + nodes[0]
            if not (0 <= col0 <= last_col and 0 <= row0 <= last_row):
                if x >= -0.5 and x <= nx - 0.5 and y >= -0.5 and y <= ny - 0.5:
                    _edge_pixel(in_shape, x, y, shift, nodes, scales, threshold, planes, data,
                                variance, mask, out_data, out_variance, out_mask, origins, r, c,
                                fracs, wx, wy, values, inside)
                c += 1
                continue
            # The run: the following pixels with the same offsets and every tap inside.
            most = min(_CHUNK, out_cols - c, last_col - col0 + 1)
            for p in range(most):
                same[p] = (np.floor(m00 * (c + p) + rest_x + shift) == ix + p
                           and np.floor(m10 * (c + p) + rest_y + shift) == iy)
            n = 1
            while n < most and same[n]:
                n += 1
            for p in range(n):
                fracs[p] = (m00 * (c + p) + rest_x) - (ix + p)
            _weights(fracs, n, nodes, scales, wx)
            for p in range(n):
                fracs[p] = (m10 * (c + p) + rest_y) - iy
            _weights(fracs, n, nodes, scales, wy)
            if do_data:
                start = origins[1] + c
                _tap_sums(data, row0, col0, wx, wy, n, nodes, False,
                          out_data[origins[0] + r, start:start + n], total)
            if do_variance:
                start = origins[3] + c
                _tap_sums(variance, row0, col0, wx, wy, n, nodes, True,
                          out_variance[origins[2] + r, start:start + n], total)
            if do_mask:
                start = origins[5] + c
                _run_bits(mask, row0, col0, wx, wy, n, nodes, threshold, anyset, values, inside,
                          out_mask[origins[4] + r, start:start + n], column_any, column_all)
            c += n


@njit(nogil=True, cache=True)
def nearest_flags(plane, matrix, offset, out, rows):
    """``out = 1`` where the input pixel nearest to an output pixel's position is nonzero.

    Parameters
    ----------
    plane : numpy.ndarray
        2-D input (e.g. a uint8 OBJMASK).
    matrix, offset : numpy.ndarray
        The map ``p_in = matrix @ p_out + offset`` between (x, y) pixels.
    out : numpy.ndarray
        uint8 output, written where the output pixel's centre maps inside the
        input (the nearest pixel of a centre within half a pixel beyond the
        last row or column is that row or column).
    rows : tuple of int
        ``(first, stop)``: the output rows to do.

    Notes
    -----
    Positions are computed as in :func:`lagrange_resample`, so the result is
    that of its ``nearest`` interpolant on the plane followed by ``> 0.5``.
    For a map near a translation (``x`` advancing by 1 and ``y`` by less than
    ``_RUN_SLOPE`` per output column) each output row is cut into runs of pixels
    whose nearest input pixels are consecutive pixels of one input row, copied in
    one loop; the other pixels (within half a pixel beyond the input's edges), and
    every pixel of other maps (runs of a pixel or two), are handled one by one.
    """
    ny, nx = plane.shape
    out_rows, out_cols = out.shape
    m00, m01, m10, m11 = matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1]
    o0, o1 = offset[0], offset[1]
    runs = abs(m00 - 1.0) < _RUN_SLOPE and abs(m10) < _RUN_SLOPE
    same = np.empty(_CHUNK, np.bool_)
    for r in range(max(rows[0], 0), min(rows[1], out_rows)):
        rest_x = m01 * r + o0
        rest_y = m11 * r + o1
        c = 0
        while c < out_cols:
            x = m00 * c + rest_x
            y = m10 * c + rest_y
            ix = np.floor(x + 0.5)
            iy = np.floor(y + 0.5)
            col = int(ix)
            row = int(iy)
            if not (runs and 0 <= col < nx and 0 <= row < ny):
                if x >= -0.5 and x <= nx - 0.5 and y >= -0.5 and y <= ny - 0.5:
                    col = min(max(col, 0), nx - 1)
                    row = min(max(row, 0), ny - 1)
                    out[r, c] = 1 if plane[row, col] != 0 else 0
                c += 1
                continue
            # The run: the following pixels whose nearest input pixel is the next one.
            most = min(_CHUNK, out_cols - c, nx - col)
            for p in range(most):
                same[p] = (np.floor(m00 * (c + p) + rest_x + 0.5) == ix + p
                           and np.floor(m10 * (c + p) + rest_y + 0.5) == iy)
            n = 1
            while n < most and same[n]:
                n += 1
            source = plane[row, col:col + n]
            target = out[r, c:c + n]
            for p in range(n):
                target[p] = 1 if source[p] != 0 else 0
            c += n


def scale_by_correlation(variance, matrix, offset, boxes, maps, table, steps):
    """Multiply each pixel of ``variance`` by the correlation factor of a second resampling.

    In bands of rows on every core (:func:`~gmoswidgets.executor.map_bands`);
    each row is computed alone, so the result does not depend on the bands.

    Parameters
    ----------
    variance : numpy.ndarray
        float32 VAR of the second resampling's output, scaled in place.
    matrix, offset : numpy.ndarray
        The second resampling's map (output pixel -> input pixel).
    boxes : numpy.ndarray, shape (n, 4)
        ``x0, x1, y0, y1`` of each input placed by the earlier resampling (a pixel
        in several boxes belongs to the last one).
    maps : numpy.ndarray, shape (n, 6)
        ``m00, m01, m10, m11, o0, o1`` of each box's map to its input's pixels.
    table : numpy.ndarray
        ``R(f1, f2)`` at fractional offsets ``i / steps``.
    steps : int
    """
    from ..executor import map_bands
    map_bands(lambda first, stop: _scale_rows(variance, matrix, offset, boxes, maps, table,
                                              steps, first, stop), variance.shape[0])


@njit(nogil=True, cache=True)
def _scale_rows(variance, matrix, offset, boxes, maps, table, steps, first, stop):
    """:func:`scale_by_correlation` of the rows ``first`` to ``stop`` (excluded)."""
    out_rows, out_cols = variance.shape
    xs = np.empty(out_cols)
    ys = np.empty(out_cols)
    owner = np.empty(out_cols, np.int64)
    first_x = np.empty(out_cols, np.int64)
    first_y = np.empty(out_cols, np.int64)
    for r in range(max(first, 0), min(stop, out_rows)):
        # Row by row, each loop without branches (vectorised by the compiler).
        for c in range(out_cols):
            xs[c] = matrix[0, 0] * c + matrix[0, 1] * r + offset[0]
            ys[c] = matrix[1, 0] * c + matrix[1, 1] * r + offset[1]
            owner[c] = -1
        for b in range(boxes.shape[0]):
            x0, x1, y0, y1 = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3]
            m00, m01, m10, m11, o0, o1 = (maps[b, 0], maps[b, 1], maps[b, 2], maps[b, 3],
                                          maps[b, 4], maps[b, 5])
            for c in range(out_cols):
                xi = np.rint(xs[c])
                yi = np.rint(ys[c])
                tx = m00 * xi + m01 * yi + o0
                ty = m10 * xi + m11 * yi + o1
                inside = (x0 <= xi) & (xi < x1) & (y0 <= yi) & (yi < y1)
                owner[c] = b if inside else owner[c]
                first_x[c] = int(np.rint((tx - np.floor(tx)) * steps)) if inside else first_x[c]
                first_y[c] = int(np.rint((ty - np.floor(ty)) * steps)) if inside else first_y[c]
        target = variance[r]
        for c in range(out_cols):
            if owner[c] >= 0:
                second_x = int(np.rint((xs[c] - np.floor(xs[c])) * steps))
                second_y = int(np.rint((ys[c] - np.floor(ys[c])) * steps))
                factor = np.float32(table[first_x[c], second_x] * table[first_y[c], second_y])
                target[c] = target[c] * factor
