"""DQ through resampling: a pixel is flagged where a flagged input contributes to its value.

Truth: the weight of one input pixel in each output pixel is the resampled
image of a delta function at that pixel; with ``dq_threshold`` t, an output
pixel must carry the input's bits exactly where that weight's magnitude
exceeds t (for poly3 the negative lobes too, which a 2x2 bilinear footprint
misses: there a cosmic ray leaks 3-4 % of its value into unflagged pixels).
"""
import numpy as np
import pytest

from gmoswidgets import dq
from gmoswidgets.numerics.interpolate import AffineMap, resample, resample_dq

SHIFTS = [(0.5, 0.5), (0.3, 0.1), (0.25, 0.7), (-1.3, 2.6)]


@pytest.mark.parametrize("interpolant", ["linear", "poly3", "poly5"])
@pytest.mark.parametrize("shift", SHIFTS, ids=str)
def test_flagged_exactly_where_the_flagged_input_contributes(interpolant, shift):
    shape = (40, 40)
    delta = np.zeros(shape, np.float32)
    delta[20, 20] = 1.0
    mask = np.zeros(shape, dq.DTYPE)
    mask[20, 20] = dq.COSMIC_RAY
    amap = AffineMap.translation(*shift)
    [weight] = resample([delta], amap, shape, interpolant)
    flags = resample_dq(mask, amap, shape, 0.001, interpolant=interpolant)
    assert np.array_equal((flags & dq.COSMIC_RAY) != 0, np.abs(weight) > 0.001)


def test_poly3_leak_is_flagged_where_bilinear_is_not():
    """A 10000 e- hit at a half-pixel shift: poly3 puts -3.5 % of it into unflagged pixels
    of a bilinear footprint; with the poly3 footprint no pixel contaminated above 0.1 % is good."""
    shape = (40, 40)
    data = np.zeros(shape, np.float32)
    data[20, 20] = 10000.0
    mask = np.zeros(shape, dq.DTYPE)
    mask[20, 20] = dq.COSMIC_RAY
    amap = AffineMap.translation(0.5, 0.5)
    [out] = resample([data], amap, shape, "poly3")
    bilinear = resample_dq(mask, amap, shape, 0.001, interpolant="linear") != 0
    poly3 = resample_dq(mask, amap, shape, 0.001, interpolant="poly3") != 0
    assert np.abs(out[~bilinear]).max() > 300           # 3.5 % of 10000 e- left unflagged
    assert np.abs(out[~poly3]).max() < 10.0             # < 0.1 %
