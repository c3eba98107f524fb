"""The compiled resampling kernels (numerics/kernels.py) against brute-force references.

SCI, VAR and DQ of every Lagrange interpolant, resampled in one pass by
``resample_planes``, are compared with per-pixel float64 loops written from
the definitions (tests/resampling_reference.py), on random data and maps
that cross the input's edges, rotate, shear onto exact integers and go far
from the identity.
"""
import subprocess
import sys

import numpy as np
import pytest

from gmoswidgets import dq
from gmoswidgets.numerics import covariance
from gmoswidgets.numerics.covariance import PriorResampling, correlation_factor
from gmoswidgets import executor
from gmoswidgets.numerics.interpolate import (AffineMap, covered, resample, resample_dq,
                                             resample_flags, resample_planes, resample_variance)
from resampling_reference import brute_force, brute_force_dq

MAPS = [   # on a 20 x 26 input
    (np.eye(2), (-3.25, 2.5), (24, 32)),                            # translation, partly outside
    ([[0.9999, -0.003], [0.003, 0.9999]], (4.6, -5.2), (30, 36)),   # rotation, larger output
    ([[1.0, 1 / 64], [0.0, 1.0]], (3.0, 0.0), (26, 28)),            # shear hitting exact integers
    ([[0.7, -0.7], [0.7, 0.7]], (13.31, -8.13), (30, 36)),          # far from identity (no ties)
]


def _planes(shape=(20, 26), seed=5):
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 10.0, shape).astype(np.float32)
    var = rng.uniform(1.0, 5.0, shape).astype(np.float32)
    mask = (rng.random(shape) < 0.05).astype(np.uint16) * dq.BAD_PIXEL
    mask[rng.random(shape) < 0.03] |= dq.SATURATED
    mask[:, 21:] |= dq.UNILLUMINATED                      # an extended region: weights partly cancel
    return data, var, mask


@pytest.mark.parametrize("matrix,offset,out_shape", MAPS)
@pytest.mark.parametrize("interpolant", ["nearest", "linear", "poly3", "poly5"])
def test_one_pass_matches_brute_force(matrix, offset, out_shape, interpolant):
    data, var, mask = _planes()
    amap = AffineMap(np.asarray(matrix, float), np.asarray(offset, float))
    sci, out_var, out_dq = resample_planes(data, var, mask, amap, out_shape, interpolant)
    assert sci.dtype == out_var.dtype == np.float32 and out_dq.dtype == np.uint16
    # float32 weights and sums: within a few float32 roundings of values ~100 (var ~5)
    assert np.abs(sci - brute_force(data, amap, out_shape, interpolant)).max() < 1e-4
    assert np.abs(out_var - brute_force(var, amap, out_shape, interpolant, squared=True)).max() < 1e-5
    assert np.array_equal(out_dq, brute_force_dq(mask, amap, out_shape, interpolant))


@pytest.mark.parametrize("interpolant", ["nearest", "linear", "poly3", "poly5", "spline3"])
def test_one_pass_equals_plane_by_plane_into_windows(interpolant):
    """mosaicDetectors writes into windows of larger arrays: the same values, the rest untouched."""
    data, var, mask = _planes()
    amap = AffineMap(np.array([[0.9999, -0.003], [0.003, 0.9999]]), np.array([1.3, -0.6]))
    shape = (32, 36)
    box = (slice(5, 37), slice(7, 43))       # the output reaches beyond the input on the right
    big = [np.full((45, 50), -7.0, np.float32), np.full((45, 50), -7.0, np.float32),
           np.full((45, 50), 999, np.uint16)]
    resample_planes(data, var, mask, amap, shape, interpolant, out=[b[box] for b in big])
    written = np.zeros((45, 50), bool)       # the output pixels whose centre maps into the input
    written[box] = covered(amap, data.shape, shape)
    assert 0 < written.sum() < written[box].size
    assert np.all(big[0][~written] == -7.0) and np.all(big[1][~written] == -7.0)
    assert np.all(big[2][~written] == 999)
    inside = written[box]
    assert np.array_equal(big[0][box][inside], resample([data], amap, shape, interpolant)[0][inside])
    assert np.array_equal(big[1][box][inside],
                          resample_variance(var, amap, shape, interpolant)[inside])
    assert np.array_equal(big[2][box][inside],
                          resample_dq(mask, amap, shape, interpolant=interpolant)[inside])
    sci, none_var, none_dq = resample_planes(data, None, None, amap, shape, interpolant)
    assert none_var is None and none_dq is None
    assert np.array_equal(sci[inside], big[0][box][inside]) and np.all(sci[~inside] == 0)


@pytest.mark.parametrize("matrix,offset,out_shape", MAPS + [(np.eye(2), (-3.0, 2.0), (24, 32))])
def test_flags_are_the_nearest_pixel_above_half(matrix, offset, out_shape):
    """OBJMASK's resampling: 1 where the nearest input pixel is set (edge pixels repeated
    within half a pixel of the input), 0 elsewhere; as the float nearest resampling > 0.5."""
    rng = np.random.default_rng(3)
    plane = (rng.random((20, 26)) < 0.3).astype(np.uint8)
    amap = AffineMap(np.asarray(matrix, float), np.asarray(offset, float))
    flags = resample_flags(plane, amap, out_shape)
    assert flags.dtype == np.uint8
    expected = brute_force(plane.astype(float), amap, out_shape, "nearest") > 0.5
    assert np.array_equal(flags, expected.astype(np.uint8))
    old = resample([plane], amap, out_shape, "nearest")[0] > 0.5
    assert np.array_equal(flags, old.astype(np.uint8))
    assert np.array_equal(resample_flags(plane.astype(bool), amap, out_shape), flags)


@pytest.mark.parametrize("interpolant", ["nearest", "poly3", pytest.param("poly5", marks=pytest.mark.slow)])
def test_long_runs_of_a_near_translation_match_brute_force(interpolant):
    """Rows longer than the kernels' chunks of 256 pixels, a map near a translation (the
    runs of SCI/VAR/DQ and of the OBJMASK flags, cut where y crosses an integer)."""
    rng = np.random.default_rng(11)
    shape = (12, 600)
    data = rng.normal(100.0, 10.0, shape).astype(np.float32)
    var = rng.uniform(1.0, 5.0, shape).astype(np.float32)
    mask = (rng.random(shape) < 0.05).astype(np.uint16) * dq.BAD_PIXEL
    flags = (rng.random(shape) < 0.3).astype(np.uint8)
    amap = AffineMap(np.array([[1 - 2e-4, -3e-4], [4e-4, 1 - 2e-4]]), np.array([-2.3, 0.37]))
    out_shape = (14, 610)
    sci, out_var, out_dq = resample_planes(data, var, mask, amap, out_shape, interpolant)
    assert np.abs(sci - brute_force(data, amap, out_shape, interpolant)).max() < 1e-4
    assert np.abs(out_var - brute_force(var, amap, out_shape, interpolant, squared=True)).max() < 1e-5
    assert np.array_equal(out_dq, brute_force_dq(mask, amap, out_shape, interpolant))
    expected = brute_force(flags.astype(float), amap, out_shape, "nearest") > 0.5
    assert np.array_equal(resample_flags(flags, amap, out_shape), expected.astype(np.uint8))


def test_row_bands_on_threads_equal_one_call(monkeypatch):
    """The kernels run in bands of rows on every core: bit for bit the result of one call."""
    rng = np.random.default_rng(8)
    shape = (301, 97)
    data = rng.normal(100.0, 10.0, shape).astype(np.float32)
    var = rng.uniform(1.0, 5.0, shape).astype(np.float32)
    mask = (rng.random(shape) < 0.05).astype(np.uint16) * dq.BAD_PIXEL
    flags = (rng.random(shape) < 0.2).astype(np.uint8)
    amap = AffineMap(np.array([[0.9999, -0.003], [0.003, 0.9999]]), np.array([1.37, -2.61]))
    calls = []
    real = executor.map_bands

    def counted(func, nrows, **kwargs):
        calls.append(nrows)
        real(func, nrows, min_rows=8)
    monkeypatch.setattr(executor, "map_bands", counted)
    prior = PriorResampling("poly3", ((0, 50, 0, 300), (55, 97, 0, 300)),
                            ((0.9999, -0.003, 0.003, 0.9999, 0.37, -0.61),
                             (1.0, 0.0, 0.0, 1.0, -55.3, 0.2)))

    def run():
        return resample_planes(data, var, mask, amap, (310, 100), "poly3") + (
            resample_flags(flags, amap, (310, 100)), correlation_factor(prior, amap, (310, 100),
                                                                        "poly3"))
    banded = run()
    monkeypatch.setattr(executor, "map_bands", lambda func, nrows, **kwargs: func(0, nrows))
    whole = run()
    assert [n for n in calls if n > 1] == [310, 310, 310]   # (1-row: the tabulated kernels)
    assert np.any(whole[-1] > 1.05)
    for a, b in zip(banded, whole):
        assert a.tobytes() == b.tobytes()


def test_map_bands_covers_every_row_once_and_propagates_errors():
    seen = []
    executor.map_bands(lambda first, stop: seen.extend(range(first, stop)), 1000, min_rows=10)
    assert sorted(seen) == list(range(1000))
    seen.clear()
    executor.map_bands(lambda first, stop: seen.append((first, stop)), 30, min_rows=32)
    assert seen == [(0, 30)]                      # too few rows: one call, in this thread

    def fail(first, stop):
        raise ValueError(f"band {first}")
    with pytest.raises(ValueError, match="band"):
        executor.map_bands(fail, 1000, min_rows=10)


def test_output_must_be_a_window_of_a_contiguous_array():
    data, var, mask = _planes()
    target = np.zeros((40, 30), np.float32).T           # Fortran order: not a row-major window
    with pytest.raises(ValueError, match="C-contiguous"):
        resample([data], AffineMap.translation(0.5, 0.5), (30, 40), "poly3", out=[target])


def test_correlation_factor_in_place_and_brute_force():
    """The compiled factor: each pixel's earlier fractional offsets from the last recorded box
    holding its nearest input pixel, 1 outside every box; ``scale=`` multiplies in place."""
    boxes = ((0, 30, 0, 40), (20, 50, 5, 35))                 # overlapping: the second one wins
    maps = ((0.9999, -0.003, 0.003, 0.9999, 0.37, -0.61), (1.0, 0.0, 0.0, 1.0, -19.55, -4.2))
    prior = PriorResampling("poly3", boxes, maps)
    amap = AffineMap(np.array([[1.00002, 0.0004], [-0.0004, 1.00002]]), np.array([-2.41, 1.63]))
    shape = (42, 56)
    factor = correlation_factor(prior, amap, shape, "poly3")
    table, steps = covariance._table("poly3", "poly3"), covariance._TABLE_STEPS
    expected = np.ones(shape, np.float32)
    for r in range(shape[0]):
        for c in range(shape[1]):
            x, y = amap(c, r)
            xi, yi = np.rint(x), np.rint(y)
            owners = [b for b, (x0, x1, y0, y1) in enumerate(boxes) if x0 <= xi < x1 and y0 <= yi < y1]
            if not owners:
                continue
            m = maps[owners[-1]]
            tx, ty = m[0] * xi + m[1] * yi + m[4], m[2] * xi + m[3] * yi + m[5]
            index = [int(np.rint((v - np.floor(v)) * steps)) for v in (tx, x, ty, y)]
            expected[r, c] = table[index[0], index[1]] * table[index[2], index[3]]
    assert np.array_equal(factor, expected)
    assert np.any(factor == 1.0) and np.any(factor > 1.05)
    var = np.full(shape, 3.0, np.float32)
    assert correlation_factor(prior, amap, shape, "poly3", scale=var) is var
    assert np.array_equal(var, np.float32(3.0) * factor)


def test_numba_is_imported_only_when_resampling():
    """The bias and flat stages import the primitives but never resample: no numba for them."""
    code = ("import sys, numpy as np; import gmoswidgets.primitives, gmoswidgets.gmos.geometry; "
            "assert 'numba' not in sys.modules, 'numba imported at start-up'; "
            "from gmoswidgets.numerics.interpolate import AffineMap, resample; "
            "resample([np.ones((5, 5), np.float32)], AffineMap.translation(0.5, 0), (5, 5)); "
            "assert 'numba' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
