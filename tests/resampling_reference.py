"""Brute-force references for the resampling kernels (shared by several test modules).

One output pixel at a time, in float64, straight from the definitions: the
input position from the affine map, the separable Lagrange weights through
the nodes, SCI through the weights (edge pixels repeated beyond the input),
VAR through their squares, DQ bit by bit with DRAGONS' threshold rule (taps
beyond the input carry no bit); output pixels whose centre maps outside the
input are left as ``fill``.
"""
import math

import numpy as np

from gmoswidgets import dq

#: Tap offsets of each Lagrange interpolant from floor(x) (nearest: from floor(x + 0.5)).
NODES = {"nearest": [0], "linear": [0, 1], "poly3": [-1, 0, 1, 2], "poly5": [-2, -1, 0, 1, 2, 3]}


def _taps(amap, c, r, in_shape, interpolant):
    """None if output pixel (c, r) maps outside the input, else [(dy, dx, weight)] of its taps."""
    ny, nx = in_shape
    x, y = amap(c, r)
    x, y = float(x), float(y)
    if not (-0.5 <= x <= nx - 0.5 and -0.5 <= y <= ny - 0.5):
        return None
    nodes = NODES[interpolant]
    shift = 0.5 if interpolant == "nearest" else 0.0
    ix, iy = int(np.floor(x + shift)), int(np.floor(y + shift))

    def weight(frac, k):
        return math.prod((frac - m) / (k - m) for m in nodes if m != k)
    return [(iy + j, ix + i, weight(x - ix, i) * weight(y - iy, j)) for j in nodes for i in nodes]


def brute_force(data, amap, out_shape, interpolant, *, squared=False, fill=0.0):
    """SCI (or, with ``squared``, VAR through the squared weights) resampled pixel by pixel."""
    ny, nx = data.shape
    out = np.full(out_shape, fill, float)
    for r in range(out_shape[0]):
        for c in range(out_shape[1]):
            taps = _taps(amap, c, r, data.shape, interpolant)
            if taps is None:
                continue
            out[r, c] = sum((w * w if squared else w) * data[min(max(yy, 0), ny - 1),
                                                               min(max(xx, 0), nx - 1)]
                            for yy, xx, w in taps)
    return out


def brute_force_dq(mask, amap, out_shape, interpolant, threshold=0.001):
    """DQ resampled pixel by pixel: bit k is set where |sum of the weights of the taps
    carrying it| > threshold; pixels whose centre maps outside the input are no_data."""
    ny, nx = mask.shape
    out = np.full(out_shape, dq.NO_DATA, np.uint16)
    for r in range(out_shape[0]):
        for c in range(out_shape[1]):
            taps = _taps(amap, c, r, mask.shape, interpolant)
            if taps is None:
                continue
            totals = np.zeros(16)
            for yy, xx, w in taps:
                value = int(mask[yy, xx]) if 0 <= yy < ny and 0 <= xx < nx else 0
                if not value:
                    continue
                for k in range(16):
                    if value & (1 << k):
                        totals[k] += w
            out[r, c] = sum(1 << k for k in range(16) if abs(totals[k]) > threshold)
    return out
