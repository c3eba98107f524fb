"""Compiled kernels of :mod:`.background` (numba): SExtractor's sky background.

The arithmetic follows SExtractor's (Bertin & Arnouts 1996) as ``sep``
1.4 computes it, operation by operation and in the same precision (double
sums for the mesh statistics, float32 for the histogram bins, the spline
and the map), so that the results equal sep's to the bit:

* :func:`mesh_statistics` -- per mesh, a 2-sigma clipped mean and sigma,
  a histogram of the unmasked pixels (bins of ``10 sigma / nlevels`` over
  ``mean +- 5 sigma``), the iterative 3-sigma clipped median of that
  histogram and the mode ``2.5 median - 1.5 mean`` (the median where the
  distribution is skewed, ``|mean - median| >= 0.3 sigma``).  A mesh with
  fewer than half its pixels unmasked is bad (:data:`BAD`).
* :func:`smooth_grids` -- a bad mesh takes the mean of its nearest good
  meshes (:func:`fill_bad_meshes`); the grids are median-filtered over
  ``filtersize x filtersize`` meshes, a window shrunk symmetrically at the
  edges (:func:`median_filter`); the second derivatives along y of the
  natural bicubic spline through the mesh centres (:func:`spline_columns`).
* :func:`row_nodes` and :func:`background_row` (:func:`map_rows`,
  :func:`map_points`) -- for an image row, the spline's nodes interpolated
  along y and their second derivatives along x, then the pixels.

Every kernel releases the GIL; :func:`mesh_statistics` and
:func:`map_rows` work on a band of rows given by the caller, so bands can
run on threads.  Compiled code is cached on disk; the entry points are
few (loading each one's cached code costs ~30 ms).
The image and mask are passed with read-only C-contiguous signatures (one
compiled version for read-only and writable planes; strided ones cost
half as much again), an absent mask as a ``(0, 0)`` array with its flag
false.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

__all__ = ["BAD", "SPLINE", "mesh_statistics", "smooth_grids", "column_table", "row_nodes",
           "background_row", "map_rows", "map_points"]

#: SExtractor's BIG: pixels at or below ``-BIG`` hold no data, and a bad mesh is ``-BIG``.
_BIG = 1e30
#: The value of a bad mesh (float32).
BAD = np.float32(-_BIG)
#: Fewest unmasked pixels of a good mesh, as a fraction of its pixels.
_MIN_GOOD_FRACTION = 0.5
#: The histogram spans ``mean +- _HIST_SIGMAS sigma``...
_HIST_SIGMAS = 5
#: ...in at most this many bins...
_MAX_LEVELS = 4096
#: ...with about this many bins per "mode pixel": ``nlevels = sqrt(2/pi) 5/4 npix + 1``.
_LEVEL_STEP = np.sqrt(2.0 / np.pi) * _HIST_SIGMAS / 4
#: The clipped median of a histogram is iterated at most this many times...
_MODE_ITERATIONS = 100
#: ...until sigma changes by less than this fraction (or falls below 0.1 bin).
_MODE_CONVERGENCE = 1e-4
#: A filtered mesh takes the median when it differs from it by at least this (sep's default).
_FILTER_THRESHOLD = 0.0

#: The lowest pixel value used.
_ABOVE_BAD = float(np.nextafter(-_BIG, 0.0))

_F32_2D = types.Array(types.float32, 2, "C", readonly=True)
_BOOL_2D = types.Array(types.boolean, 2, "C", readonly=True)
_I64 = types.int64
_F32_ROW = types.float32[::1]
_I64_ROW = types.int64[::1]
#: The types of :meth:`~gmoswidgets.numerics.background.SkyBackground.spline`'s arguments of the
#: map kernels: a grid and its second derivatives along y (read-only ``(ny, nx)``), the mesh
#: height, and :func:`column_table`'s five arrays.
SPLINE = (types.Array(types.float32, 2, "C", readonly=True),) * 2 + (_I64,) + (
    types.Array(types.int64, 1, "C", readonly=True),) + (
    types.Array(types.float32, 1, "C", readonly=True),) * 4


@njit(nogil=True, cache=True)
def _sums(image, bad, has_bad, y0, y1, x0, x1, low, high):
    """Sum, sum of squares (float64, row-major order) and count of the unmasked pixels
    of a mesh within ``[low, high]``."""
    total = 0.0
    squares = 0.0
    count = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            if has_bad and bad[y, x]:
                continue
            value = np.float64(image[y, x])
            if value >= low and value <= high:
                total += value
                squares += value * value
                count += 1
    return total, squares, count


@njit(nogil=True, cache=True, error_model="numpy")
def _mean_sigma(total, squares, count):
    mean = total / count
    variance = squares / count - mean * mean
    return mean, np.sqrt(variance) if variance > 0.0 else 0.0


@njit(nogil=True, cache=True)
def _first_above(cumulative, base, first, n, value, sign):
    """The smallest ``k`` in ``0 .. n`` with ``sign * (cumulative[first + sign * k] - base)
    > value`` (the partial sums grow with ``k``), or ``n + 1``."""
    low = 0
    high = n + 1
    while low < high:
        k = (low + high) // 2
        if sign * (cumulative[first + sign * k] - base) > value:
            high = k
        else:
            low = k + 1
    return low


@njit(nogil=True, cache=True)
def _meeting_point(cumulative, lcut, hcut):
    """Where the median walk of SExtractor over the bins ``lcut .. hcut`` stops.

    The walk takes ``n = hcut - lcut + 1`` steps in from both ends, each on
    the side whose running count is smaller (the high side on a tie).  It
    is a merge of the running counts from below, ``L(a)``, and from above,
    ``H(b)``: ``L(a)`` is taken at step ``a + #{b: H(b) <= L(a)}``, so the
    low side takes ``#{a: a + #{b: H(b) <= L(a)} < n}`` steps, found by
    bisection on the cumulative counts (``cumulative[k]``: the count of
    the bins below ``k``).

    Returns
    -------
    tuple of int
        The steps taken from below and from above, and the counts they covered.
    """
    n = hcut - lcut + 1
    top = cumulative[hcut + 1]
    low = 0
    high = n
    while low < high:  # the first a whose step is n or later
        a = (low + high) // 2
        below = cumulative[lcut + a] - cumulative[lcut]
        if a + _first_above(cumulative, top, hcut + 1, n, below, -1) < n:
            low = a + 1
        else:
            high = a
    steps_low = low
    steps_high = n - steps_low
    return (steps_low, steps_high, cumulative[lcut + steps_low] - cumulative[lcut],
            top - cumulative[hcut + 1 - steps_high])


@njit(nogil=True, cache=True, error_model="numpy")
def _histogram_mode(hist, nlevels, start_mean, qzero, qscale, cumulative, first_moment,
                    second_moment):
    """Background and sigma of a mesh from its histogram (bins ``hist[:nlevels]``).

    The median is found by walking in from both ends of the clipped range
    (:func:`_meeting_point`) and refined within its bin; the range is then
    clipped to the median +- 3 sigma of the bins and the whole repeated
    until sigma settles.  The moments of a range come from cumulative sums
    (int64): SExtractor's float64 sums of these integer terms are exact, so
    the result is the same.
    """
    cumulative[0] = 0
    first_moment[0] = 0
    second_moment[0] = 0
    for i in range(nlevels):
        n = hist[i]
        cumulative[i + 1] = cumulative[i] + n
        first_moment[i + 1] = first_moment[i] + n * i
        second_moment[i + 1] = second_moment[i] + n * i * i
    top = nlevels - 1
    lcut = 0
    hcut = top
    sig = 10.0 * top
    previous = 1.0
    mean = median = np.float64(start_mean)
    for _ in range(_MODE_ITERATIONS):
        if not (sig >= 0.1 and abs(sig / previous - 1.0) > _MODE_CONVERGENCE):
            break
        previous = sig
        if hcut >= lcut:
            steps_low, steps_high, below, above = _meeting_point(cumulative, lcut, hcut)
            count = cumulative[hcut + 1] - cumulative[lcut]
            mean = np.float64(first_moment[hcut + 1] - first_moment[lcut])
            sig = np.float64(second_moment[hcut + 1] - second_moment[lcut])
        else:
            steps_low = steps_high = below = above = count = 0
            mean = sig = 0.0
        lo = min(lcut + steps_low, _MAX_LEVELS - 1)
        hi = hcut - steps_high
        if hi >= 0:
            widest = max(hist[lo], hist[hi])
            median = hi + 0.5 + (np.float64(above) - np.float64(below)) / (2.0 * widest)
        else:
            median = 0.0
        if count:
            mean /= count
            sig = sig / count - mean * mean
        sig = np.sqrt(sig) if sig > 0.0 else 0.0
        # rounded to the nearest bin; the clamps (out of the histogram, an empty range
        # either way) keep the conversions defined
        low = median - 3.0 * sig
        lcut = np.int64(min(low + 0.5, nlevels)) if low > 0.0 else 0
        high = median + 3.0 * sig
        if high < top:
            hcut = np.int64(high + 0.5) if high > 0.0 else np.int64(max(high - 0.5, -2.0))
        else:
            hcut = top
    qzero = np.float64(qzero)
    qscale = np.float64(qscale)
    if abs(sig) > 0.0:
        if abs((mean - median) / sig) < 0.3:
            mode = qzero + (2.5 * median - 1.5 * mean) * qscale
        else:
            mode = qzero + median * qscale
    else:
        mode = qzero + mean * qscale
    return np.float32(mode), np.float32(sig * qscale)


@njit(nogil=True, cache=True, error_model="numpy")
def _mesh(image, bad, has_bad, y0, y1, x0, x1, hist, cumulative, first_moment, second_moment):
    """Background and sigma of one mesh (:data:`BAD` twice for a bad mesh)."""
    total, squares, count = _sums(image, bad, has_bad, y0, y1, x0, x1, _ABOVE_BAD, np.inf)
    area = (x1 - x0) * (y1 - y0)
    if np.float32(count) < np.float32(area * _MIN_GOOD_FRACTION):
        return BAD, BAD
    mean, sigma = _mean_sigma(total, squares, count)
    low = np.float32(mean - 2.0 * sigma)
    high = np.float32(mean + 2.0 * sigma)
    total, squares, count = _sums(image, bad, has_bad, y0, y1, x0, x1, low, high)
    mean, sigma = _mean_sigma(total, squares, count)
    nlevels = min(np.int64(_LEVEL_STEP * count + 1.0), _MAX_LEVELS)
    qscale = np.float32(2 * _HIST_SIGMAS * sigma / nlevels) if sigma > 0.0 else np.float32(1.0)
    qzero = np.float32(mean - _HIST_SIGMAS * sigma)
    offset = np.float32(0.499999 - np.float64(qzero / qscale))
    hist[:nlevels] = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            if has_bad and bad[y, x]:
                continue
            # the bin is the truncation of this float32 position: (-1, 0) falls in bin 0
            position = image[y, x] / qscale + offset
            if position > np.float32(-1.0) and position < nlevels:
                hist[np.int64(position)] += 1
    return _histogram_mode(hist, nlevels, np.float32(mean), qzero, qscale, cumulative,
                           first_moment, second_moment)


@njit(types.void(_F32_2D, _BOOL_2D, types.boolean, _I64, _I64, _I64, _I64,
                 types.float32[:, ::1], types.float32[:, ::1]), nogil=True, cache=True)
def mesh_statistics(image, bad, has_bad, width, height, first, stop, back, sigma):
    """Background and sigma (:data:`BAD` for bad meshes) of the meshes in mesh rows
    ``first .. stop``, into ``back`` and ``sigma`` (``(ny, nx)``); meshes are ``width`` x
    ``height`` pixels, the last of a row or column what is left of the image."""
    rows, cols = image.shape
    hist = np.empty(_MAX_LEVELS, np.int64)
    cumulative = np.empty(_MAX_LEVELS + 1, np.int64)
    first_moment = np.empty(_MAX_LEVELS + 1, np.int64)
    second_moment = np.empty(_MAX_LEVELS + 1, np.int64)
    for j in range(first, stop):
        y0 = j * height
        y1 = min(y0 + height, rows)
        for m in range(back.shape[1]):
            x0 = m * width
            back[j, m], sigma[j, m] = _mesh(image, bad, has_bad, y0, y1, x0,
                                            min(x0 + width, cols), hist, cumulative,
                                            first_moment, second_moment)


@njit(nogil=True, cache=True)
def _select(values, k):
    """Reorder the 1-D ``values`` so that ``values[k]`` is the ``k``-th smallest, none
    before it larger and none after it smaller (Hoare's selection; equal values split
    evenly)."""
    left = 0
    right = len(values) - 1
    while left < right:
        pivot = values[k]
        i = left
        j = right
        while i <= j:
            while values[i] < pivot:
                i += 1
            while pivot < values[j]:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if j < k:
            left = i
        if k < i:
            right = j


@njit(nogil=True, cache=True)
def median(values):
    """float32 median of a 1-D float32 array, which it reorders (SExtractor's: the mean of
    the two middle values, summed in float32, for an even count)."""
    n = len(values)
    half = n // 2
    _select(values, half)
    if n % 2:
        return values[half]
    below = values[0]
    for i in range(1, half):
        below = max(below, values[i])
    return np.float32(np.float64(below + values[half]) / 2.0)


@njit(nogil=True, cache=True)
def _isqrt(n):
    """The integer square root of a non-negative int."""
    root = np.int64(np.sqrt(np.float64(n)))
    while root * root > n:
        root -= 1
    while (root + 1) * (root + 1) <= n:
        root += 1
    return root


@njit(nogil=True, cache=True)
def _nearest_good(good):
    """Squared distance (in meshes) from each mesh to the nearest good one (-1 without any).

    The distance along each column to its nearest good mesh first (two
    sweeps), then for each bad mesh the columns outwards until they can
    no longer be nearer: exact integer arithmetic.
    """
    ny, nx = good.shape
    far = ny + nx + 1
    vertical = np.full((ny, nx), far, np.int64)
    for x in range(nx):
        last = -far
        for y in range(ny):
            if good[y, x]:
                last = y
            vertical[y, x] = y - last
        last = 2 * far
        for y in range(ny - 1, -1, -1):
            if good[y, x]:
                last = y
            vertical[y, x] = min(vertical[y, x], last - y)
    nearest = np.zeros((ny, nx), np.int64)
    for py in range(ny):
        for px in range(nx):
            if good[py, px]:
                continue
            best = -1
            for step in range(nx):
                if best >= 0 and step * step > best:
                    break
                for x in (px - step, px + step):
                    if 0 <= x < nx and vertical[py, x] < far:
                        d2 = step * step + vertical[py, x] ** 2
                        if best < 0 or d2 < best:
                            best = d2
            nearest[py, px] = best
    return nearest


@njit(nogil=True, cache=True)
def fill_bad_meshes(back, sigma):
    """Give each bad mesh (:data:`BAD` in ``back``) the mean background and sigma of its
    nearest good meshes, in place: those at the same least distance, summed in float32 in
    row-major order (0 and 1 without any good mesh)."""
    ny, nx = back.shape
    original = back.copy()
    nearest = _nearest_good(original > BAD)
    for py in range(ny):
        for px in range(nx):
            if original[py, px] > BAD:
                continue
            d2 = nearest[py, px]
            if d2 < 0:
                back[py, px] = 0.0
                sigma[py, px] = 1.0
                continue
            # the points of the circle of squared radius d2, row by row
            reach = _isqrt(d2)
            count = 0
            total = np.float32(0.0)
            total_sigma = np.float32(0.0)
            for y in range(max(py - reach, 0), min(py + reach, ny - 1) + 1):
                dx = _isqrt(d2 - (y - py) ** 2)
                if dx * dx != d2 - (y - py) ** 2:
                    continue
                for x in range(px - dx, px + dx + 1, max(2 * dx, 1)):  # one point or two
                    if 0 <= x < nx and original[y, x] > BAD:
                        total += original[y, x]
                        total_sigma += sigma[y, x]
                        count += 1
            back[py, px] = total / np.float32(count)
            sigma[py, px] = total_sigma / np.float32(count)


@njit(nogil=True, cache=True)
def median_filter(back, sigma, half_width, half_height, first, stop, out_back, out_sigma):
    """Rows ``first .. stop`` of the median-filtered mesh grids, into ``out_back`` and
    ``out_sigma``: the medians over ``2 half + 1`` meshes, a window shrunk symmetrically
    where it meets an edge."""
    ny, nx = back.shape
    window = np.empty((2 * half_width + 1) * (2 * half_height + 1), np.float32)
    for py in range(first, stop):
        hy = min(half_height, py, ny - 1 - py)
        for px in range(nx):
            hx = min(half_width, px, nx - 1 - px)
            n = 0
            for y in range(py - hy, py + hy + 1):
                for x in range(px - hx, px + hx + 1):
                    window[n] = back[y, x]
                    n += 1
            value = median(window[:n])
            if abs(value - back[py, px]) >= _FILTER_THRESHOLD:
                out_back[py, px] = value
                n = 0
                for y in range(py - hy, py + hy + 1):
                    for x in range(px - hx, px + hx + 1):
                        window[n] = sigma[y, x]
                        n += 1
                out_sigma[py, px] = median(window[:n])
            else:
                out_back[py, px] = back[py, px]
                out_sigma[py, px] = sigma[py, px]


@njit(nogil=True, cache=True)
def _second_derivatives(values, out, scratch):
    """float32 second derivatives of the natural cubic spline through equally spaced
    ``values`` (1-D), into ``out``: the tridiagonal system solved forwards then backwards."""
    n = len(values)
    out[0] = 0.0
    if n < 2:
        return
    scratch[0] = 0.0
    for k in range(1, n - 1):
        factor = np.float32(-1.0) / (out[k - 1] + np.float32(4.0))
        out[k] = factor
        curvature = (values[k + 1] + values[k - 1]) - np.float32(2.0) * values[k]
        scratch[k] = factor * (scratch[k - 1] - np.float32(6.0) * curvature)
    out[n - 1] = 0.0
    for k in range(n - 2, 0, -1):
        out[k] = np.float32(np.float64(out[k] * out[k + 1] + scratch[k]) / 6.0)


@njit(nogil=True, cache=True)
def spline_columns(values):
    """Second derivatives along y of the spline through each column of the mesh grid."""
    ny, nx = values.shape
    out = np.zeros((ny, nx), np.float32)
    if ny < 2:
        return out
    column = np.empty(ny, np.float32)
    derivatives = np.empty(ny, np.float32)
    scratch = np.empty(ny, np.float32)
    for x in range(nx):
        column[:] = values[:, x]
        _second_derivatives(column, derivatives, scratch)
        out[:, x] = derivatives
    return out


@njit(nogil=True, cache=True)
def column_table(width, mesh_width, nx):
    """For each image column, the mesh node to its left (``lo``; ``lo + 1`` to its right)
    and the float32 spline weights ``dx``, ``1 - dx``, ``(1 - dx)^2 - 1`` and ``dx^2 - 1``.

    ``dx`` (the column's offset from node ``lo``, in meshes) is accumulated in
    float32 from the first column, and the node changes in the middle of a
    mesh, as SExtractor does; columns left of the first node's centre, and
    right of the last's, extrapolate.
    """
    lo = np.zeros(width, np.int64)
    dx = np.zeros(width, np.float32)
    if nx > 1:
        step = np.float32(1.0 / mesh_width)
        offset = (step - np.float32(1.0)) / np.float32(2.0)
        restart = np.float32((mesh_width + 1) % 2) * step / np.float32(2.0)
        half = mesh_width // 2
        node = 0   # the mesh the column is in
        left = 0   # the node the column interpolates from
        i = 0      # the column's place within its mesh (the first mesh counts from 0)
        for col in range(width):
            if i == half and 0 < node < nx - 1:
                left += 1
                offset = restart
            lo[col] = left
            dx[col] = offset
            if i == mesh_width:
                node += 1
                i = 0
            i += 1
            offset += step
    cdx = np.float32(1.0) - dx
    return lo, dx, cdx, cdx * cdx - np.float32(1.0), dx * dx - np.float32(1.0)


_GRID_OUT = types.float32[:, ::1]


@njit(types.Tuple((_GRID_OUT, _GRID_OUT, _GRID_OUT, _GRID_OUT, types.float32, types.float32,
                   _I64_ROW, _F32_ROW, _F32_ROW, _F32_ROW, _F32_ROW))(
          types.float32[:, ::1], types.float32[:, ::1], _I64, _I64, _I64),
      nogil=True, cache=True)
def smooth_grids(back, sigma, half, mesh_size, width):
    """The mesh grids of :func:`mesh_statistics` made into the background model.

    Fills the bad meshes (in place), median-filters the grids over
    ``2 half + 1`` meshes, and takes their global medians (a non-positive
    rms median is replaced by the median of the positive values, or 1).

    Returns
    -------
    tuple
        The filtered background and rms grids, their second derivatives
        along y, the global background and rms, and the
        :func:`column_table` of an image ``width`` pixels wide.
    """
    ny, nx = back.shape
    fill_bad_meshes(back, sigma)
    filtered = np.empty_like(back)
    filtered_sigma = np.empty_like(sigma)
    median_filter(back, sigma, half, half, 0, ny, filtered, filtered_sigma)
    globalback = median(filtered.ravel().copy())
    values = np.sort(filtered_sigma.ravel())
    globalrms = median(values.copy())
    if globalrms <= 0:
        # the median of the sorted values after the last non-positive one, else 1
        tail = len(values)
        while tail > 0 and values[tail - 1] > 0:
            tail -= 1
        globalrms = median(values[tail:].copy()) if tail < len(values) else np.float32(1.0)
    lo, dx, cdx, ax, bx = column_table(width, mesh_size, nx)
    return (filtered, filtered_sigma, spline_columns(filtered), spline_columns(filtered_sigma),
            globalback, globalrms, lo, dx, cdx, ax, bx)


@njit(nogil=True, cache=True)
def row_nodes(values, dvalues, mesh_height, y, node, dnode, scratch):
    """The spline's nodes at image row ``y``: ``values`` interpolated along y into ``node``
    and their second derivatives along x into ``dnode`` (both of length nx).

    With one mesh row the nodes are that row and their second derivatives
    ``dvalues``' (zero: the map is then linear in x), as in SExtractor.
    """
    ny, nx = values.shape
    if ny < 2:
        node[:] = values[0]
        dnode[:] = dvalues[0]
        return
    dy = np.float32(np.float64(np.float32(y) / np.float32(mesh_height)) - 0.5)
    yl = np.int64(dy)
    dy = dy - np.float32(yl)
    if yl >= ny - 1:
        yl = ny - 2
        dy = np.float32(np.float64(dy) + 1.0)
    cdy = np.float32(1.0) - dy
    dy3 = dy * dy * dy - dy
    cdy3 = cdy * cdy * cdy - cdy
    for x in range(nx):
        node[x] = (cdy * values[yl, x] + dy * values[yl + 1, x] + cdy3 * dvalues[yl, x]
                   + dy3 * dvalues[yl + 1, x])
    if nx > 1:
        _second_derivatives(node, dnode, scratch)
    else:
        dnode[0] = 0.0


@njit(nogil=True, cache=True)
def background_row(node, dnode, lo, dx, cdx, ax, bx, out):
    """The map along a row whose nodes :func:`row_nodes` gave, at the columns that
    ``lo`` to ``bx`` (slices of :func:`column_table`'s) describe, into ``out``.

    Columns between the same two nodes are done together (a loop the
    compiler vectorises).
    """
    n = len(out)
    if len(node) < 2:
        out[:] = node[0]
        return
    start = 0
    while start < n:
        k = lo[start]
        stop = start + 1
        while stop < n and lo[stop] == k:
            stop += 1
        left, dleft, right, dright = node[k], dnode[k], node[k + 1], dnode[k + 1]
        for col in range(start, stop):
            out[col] = (cdx[col] * (left + ax[col] * dleft)
                        + dx[col] * (right + bx[col] * dright))
        start = stop


@njit(nogil=True, cache=True)
def map_rows(values, dvalues, mesh_height, lo, dx, cdx, ax, bx, first, stop, out):
    """Rows ``first .. stop`` of the background (or sigma) map into ``out``.

    Compiled on first use (detection never makes the map): each entry point
    compiled at import costs the loading of its cached code (~30 ms).
    """
    nx = values.shape[1]
    node = np.empty(nx, np.float32)
    dnode = np.empty(nx, np.float32)
    scratch = np.empty(nx, np.float32)
    for y in range(first, stop):
        row_nodes(values, dvalues, mesh_height, y, node, dnode, scratch)
        background_row(node, dnode, lo, dx, cdx, ax, bx, out[y])


@njit(_F32_ROW(*SPLINE, _I64_ROW, _I64_ROW), nogil=True, cache=True)
def map_points(values, dvalues, mesh_height, lo, dx, cdx, ax, bx, ys, xs):
    """The map at the pixels ``(ys[i], xs[i])`` (float32)."""
    nx = values.shape[1]
    node = np.empty(nx, np.float32)
    dnode = np.empty(nx, np.float32)
    scratch = np.empty(nx, np.float32)
    out = np.empty(len(ys), np.float32)
    for i in range(len(ys)):
        row_nodes(values, dvalues, mesh_height, ys[i], node, dnode, scratch)
        c = xs[i]
        background_row(node, dnode, lo[c:c + 1], dx[c:c + 1], cdx[c:c + 1], ax[c:c + 1],
                       bx[c:c + 1], out[i:i + 1])
    return out
