"""VAR through resampling: the propagated variance equals the noise of resampled white noise.

An output pixel ``sum(w_i x_i)`` of independent inputs has variance
``sum(w_i**2 var_i)``.  The truth here is the empirical variance of
resampled Gaussian noise of known variance; DRAGONS' way (VAR through a
linear interpolant, ``sum(w_i var_i)`` = the input variance) is shown for
comparison in the failure message.
"""
import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets.numerics.covariance import (clear_resampling, correlation_factor, prior_resampling,
                                             record_resampling)
from gmoswidgets.numerics.interpolate import INTERPOLANTS, AffineMap, resample, resample_variance

SHIFTS = [(0.5, 0.5), (0.3, 0.0), (0.25, 0.7), (-1.3, 2.6)]


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(7)
    return rng.normal(0.0, 2.0, (500, 500)).astype(np.float32)     # variance 4


@pytest.mark.parametrize("interpolant", INTERPOLANTS)
@pytest.mark.parametrize("shift", SHIFTS, ids=str)
def test_resampled_variance_equals_the_noise(noise, interpolant, shift):
    amap = AffineMap.translation(*shift)
    [out] = resample([noise], amap, noise.shape, interpolant)
    var = resample_variance(np.full(noise.shape, 4.0, np.float32), amap, noise.shape, interpolant)
    inner = (slice(10, -10), slice(10, -10))
    empirical = float(out[inner].var())
    assert float(var[inner].mean()) == pytest.approx(empirical, rel=0.03), (
        f"DRAGONS-style linear VAR would say 4.0 (ratio {empirical / 4.0:.3f})")
    assert var.min() >= 0


def test_rotation_and_varying_variance():
    """A rotated map and a VAR that changes across the image: locally right."""
    rng = np.random.default_rng(3)
    sigma = np.linspace(1.0, 3.0, 400, dtype=np.float32)[None, :] * np.ones((400, 1), np.float32)
    data = rng.normal(0.0, 1.0, sigma.shape).astype(np.float32) * sigma
    theta = np.deg2rad(0.7)
    amap = AffineMap(np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]),
                     np.array([3.4, -2.2]))
    [out] = resample([data], amap, data.shape, "poly3")
    var = resample_variance(sigma ** 2, amap, data.shape, "poly3")
    for cols in (slice(40, 80), slice(320, 360)):
        box = (slice(40, 360), cols)
        assert float(var[box].mean()) == pytest.approx(float(out[box].var()), rel=0.05)


def test_integer_shift_copies_the_variance():
    var = np.arange(100, dtype=np.float32).reshape(10, 10)
    out = resample_variance(var, AffineMap.translation(2, 1), (10, 10), "poly3")
    assert np.array_equal(out[:9, :8], var[1:, 2:])


@pytest.mark.parametrize("first, second", [((0.5, 0.5), (0.39, 0.39)), ((0.3, 0.1), (0.75, 0.5)),
                                           ((0.5, 0.5), (0.0, 0.0))], ids=str)
def test_twice_resampled_variance_equals_the_noise(noise, first, second):
    """A resampled image resampled again (mosaic, then dither alignment): its pixels covary.

    sum(w^2) VAR alone understates the noise (poly3 (0.5, 0.5) then (0.39, 0.39): 1.66x
    in variance); the earlier resampling recorded in the header corrects it.
    """
    shape = noise.shape
    maps = AffineMap.translation(*first), AffineMap.translation(*second)
    [once] = resample([noise], maps[0], shape, "poly3")
    [twice] = resample([once], maps[1], shape, "poly3")
    var = resample_variance(resample_variance(np.full(shape, 4.0, np.float32), maps[0], shape,
                                              "poly3"), maps[1], shape, "poly3")
    header = fits.Header()
    record_resampling(header, "poly3", [((0, shape[1], 0, shape[0]), maps[0])])
    var *= correlation_factor(prior_resampling(header), maps[1], shape, "poly3")
    inner = (slice(10, -10), slice(10, -10))
    assert float(var[inner].mean()) == pytest.approx(float(twice[inner].var()), rel=0.03)
    clear_resampling(header)
    assert prior_resampling(header) is None
