"""numerics.stats.clipped_median against astropy's sigma_clipped_stats (the same number)."""
import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats

from gmoswidgets.numerics.stats import clipped_median


def _samples():
    rng = np.random.default_rng(13)
    yield "sky", rng.normal(300, 10, 200_000).astype(np.float32)
    yield "sky and stars", np.concatenate([rng.normal(300, 10, 150_000),
                                           rng.uniform(300, 60_000, 8_000)]).astype(np.float32)
    yield "integers", rng.poisson(50, 100_001).astype(np.float32)
    yield "heavy tails", (rng.standard_cauchy(50_000) * 5 + 100).astype(np.float32)
    yield "float64", rng.normal(1e4, 1, 30_000)
    yield "tiny", np.array([5.0], np.float32)
    yield "pair", np.array([1.0, 2.0], np.float32)
    yield "constant", np.full(40, 7.5, np.float32)
    yield "not finite", np.array([1, 2, np.nan, 4, np.inf, 3, -np.inf], np.float32)


@pytest.mark.parametrize("sigma, maxiters", [(3.0, 10), (2.0, 1), (2.5, 3), (1.5, 2)])
@pytest.mark.parametrize("name, values", list(_samples()), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_clipped_median_is_astropys_median(name, values, sigma, maxiters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # astropy warns about the non-finite values
        expected = float(sigma_clipped_stats(values, sigma=sigma, maxiters=maxiters)[1])
    assert clipped_median(values, sigma=sigma, maxiters=maxiters) == expected


def test_clipped_median_of_nothing_finite_is_nan():
    assert np.isnan(clipped_median(np.array([np.nan, np.inf], np.float32)))
    assert np.isnan(clipped_median(np.zeros(0, np.float32)))


@pytest.mark.parametrize("name, values", [s for s in _samples() if np.isfinite(s[1]).all()],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_std_is_numpys_nanstd_to_the_bit(name, values):
    from gmoswidgets.numerics.stats import _std
    # clipped_median never asks for the width of nothing
    for kept in (values, values[::3].copy(), values[values >= np.median(values)]):
        expected = np.nanstd(kept)
        got = _std(kept, np.empty_like(kept))
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
