"""DQ through resampling: each bit plane through the data's interpolant, DRAGONS' dq_threshold rule."""
import numpy as np
import pytest

from gmoswidgets import dq
from gmoswidgets.numerics.interpolate import AffineMap, resample, resample_dq
from resampling_reference import brute_force_dq


@pytest.mark.parametrize("matrix,offset,out_shape", [
    (np.eye(2), (-3.25, 2.5), (36, 50)),                           # translation, partly outside
    ([[0.9999, -0.003], [0.003, 0.9999]], (4.6, -5.2), (45, 60)),  # rotation, larger output
    ([[0.7, -0.7], [0.7, 0.7]], (20.3, -10.1), (40, 50)),          # far from identity: gathers
])
@pytest.mark.parametrize("interpolant", ["linear", "poly3", "poly5"])
def test_dq_bit_planes_match_brute_force(matrix, offset, out_shape, interpolant):
    rng = np.random.default_rng(3)
    mask = (rng.random((30, 40)) < 0.04).astype(np.uint16) * dq.BAD_PIXEL
    mask[rng.random((30, 40)) < 0.02] |= dq.SATURATED
    mask[:, 31:] |= dq.UNILLUMINATED                    # an extended region: weights partly cancel
    amap = AffineMap(np.asarray(matrix, float), np.asarray(offset, float))
    out = resample_dq(mask, amap, out_shape, interpolant=interpolant)
    expected = brute_force_dq(mask, amap, out_shape, interpolant)
    assert np.array_equal(out, expected)


def test_poly3_flags_every_pixel_a_flagged_input_reaches():
    """An output pixel is flagged exactly where the flagged pixel's value leaks into it."""
    mask = np.zeros((40, 40), np.uint16)
    mask[20, 20] = dq.BAD_PIXEL
    amap = AffineMap.translation(0.37, -0.21)
    out = resample_dq(mask, amap, (40, 40), interpolant="poly3")
    spike = np.zeros((40, 40), np.float32)
    spike[20, 20] = 1.0
    leak = np.abs(resample([spike], amap, (40, 40), "poly3")[0])
    assert np.array_equal(out == dq.BAD_PIXEL, leak > 0.001)
    assert (out == dq.BAD_PIXEL).sum() == 16               # the whole 4x4 footprint
    linear = resample_dq(mask, amap, (40, 40), interpolant="linear")
    assert (linear == dq.BAD_PIXEL).sum() == 4


def test_spline_dq_and_unknown_interpolant():
    mask = np.zeros((30, 30), np.uint16)
    mask[15, 15] = dq.SATURATED
    out = resample_dq(mask, AffineMap.translation(0.6, 0.6), (30, 30), interpolant="spline3")
    assert out[15, 15] & dq.SATURATED and out[14, 14] & dq.SATURATED
    # the last row and column map beyond the input: no_data; nothing else is
    assert np.all(out[:, -1] == dq.NO_DATA) and np.all(out[-1] == dq.NO_DATA)
    assert not np.any(out[:-1, :-1] & dq.NO_DATA)
    with pytest.raises(ValueError, match="unknown interpolant"):
        resample_dq(mask, AffineMap.translation(0.5, 0.5), (30, 30), interpolant="cubic")


def _sky(x, y):
    """The true scene: sky with a gradient and two broad stars (electrons per pixel)."""
    stars = sum(a * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * 3.0 ** 2))
                for x0, y0, a in ((30.0, 40.0, 8000.0), (70.0, 25.0, 3000.0)))
    return 1000.0 + 2.0 * x - 1.5 * y + stars


def _defective_frame(shape=(80, 100)):
    """The scene sampled at pixel centres with flagged defects whose values are wrong:
    a hot column (+3000 e-), an unilluminated corner (0) and a no-data gap (0)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    data = _sky(xx, yy).astype(np.float32)
    mask = np.zeros(shape, np.uint16)
    data[10:70, 45] += 3000.0
    mask[10:70, 45] |= dq.BAD_PIXEL
    data[60:, 80:] = 0.0
    mask[60:, 80:] |= dq.UNILLUMINATED
    data[:, 60:63] = 0.0
    mask[:, 60:63] |= dq.NO_DATA
    return data, mask


def _contamination(interpolant):
    """Resample the defective frame with poly3 (DQ through ``interpolant``); return the
    largest |data - truth| / sqrt(truth) of the DQ-0 pixels, the DQ plane and the
    pixels whose poly3 taps are all unflagged (truly clean)."""
    data, mask = _defective_frame()
    amap = AffineMap(np.array([[0.9999, -0.004], [0.004, 0.9999]]), np.array([0.37, -0.42]))
    shape = data.shape
    sci = resample([data], amap, shape, "poly3")[0]
    dqo = resample_dq(mask, amap, shape, interpolant=interpolant)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    x, y = amap(xx, yy)
    truth = _sky(x, y)
    inner = (x > 2) & (x < shape[1] - 3) & (y > 2) & (y < shape[0] - 3)   # taps inside the input
    flagged = mask != 0
    ix, iy = np.floor(x).astype(int), np.floor(y).astype(int)
    clean = inner.copy()
    for j in (-1, 0, 1, 2):
        for i in (-1, 0, 1, 2):
            clean[inner] &= ~flagged[iy[inner] + j, ix[inner] + i]
    good = (dqo == 0) & inner
    worst = float(np.max(np.abs(sci - truth)[good] / np.sqrt(truth[good])))
    return worst, dqo, clean


def test_good_pixels_carry_no_flagged_input_against_truth():
    """DQ-0 pixels after a poly3 resampling are within 0.3 sigma of the true scene, and every
    pixel whose poly3 taps are all unflagged stays DQ 0; the bilinear footprint lets the
    defects leak into pixels it calls good (measured on simulated tutorials: benchmarks/README.md)."""
    worst, dqo, clean = _contamination("poly3")
    assert worst < 0.3
    assert np.all(dqo[clean] == 0)
    assert clean.sum() > 0.6 * clean.size
    worst_linear, _, _ = _contamination("linear")
    assert worst_linear > 2.0
