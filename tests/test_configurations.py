"""The configuration matrix: the whole tutorial reduced for every simulated GMOS configuration.

For each configuration (site x detector set x binning, one ROI) the
simulator writes the tutorial (10 biases, 5 twilight flats, 5 dithered
science frames), the seed's Python API reduces it with a calibration
database in a temporary folder, and the stack is checked against the truth:

* bright-star flux within 1 % (median of isolated, unsaturated stars);
* astrometric rms < 0.05";
* sky noise / sqrt(VAR) within 10 %;
* at least 99 % of the truly illuminated sky (lit in every frame, away from
  true defects and saturated stars) usable (DQ 0) in the stack;
* the cores of the stars the simulator saturated (at DRAGONS' per-amplifier
  level) carry the saturated DQ bit in the stack.

Measurements: tests/accuracy.py (shared with test_science_accuracy.py).
"""
import numpy as np
import pytest

from accuracy import astrometry, measure, photometry, reduce_tutorial, sky_noise_ratio, usable_fraction
from gmoswidgets import dq
from gmoswidgets.data import make_tutorial_dataset

pytestmark = pytest.mark.slow

#: (instrument, detector, date, binning, roi, seed); GMOS-N Hamamatsu 2x2 is tests/test_science_accuracy.py
CASES = {
    "GMOS-N-hamamatsu-4x4": ("GMOS-N", "hamamatsu", None, 4, "Full Frame", 11),
    "GMOS-S-hamamatsu-2024-4x4": ("GMOS-S", "hamamatsu", None, 4, "Full Frame", 11),
    "GMOS-S-hamamatsu-2016-4x4": ("GMOS-S", "hamamatsu", "2016-03-14", 4, "Full Frame", 11),
    "GMOS-N-e2vdd-4x4": ("GMOS-N", "e2vdd", None, 4, "Full Frame", 11),
    "GMOS-N-eev-4x4": ("GMOS-N", "eev", None, 4, "Full Frame", 11),
    "GMOS-S-eev-4x4": ("GMOS-S", "eev", None, 4, "Full Frame", 11),
    "GMOS-S-hamamatsu-2024-2x2": ("GMOS-S", "hamamatsu", None, 2, "Full Frame", 11),
    "GMOS-N-e2vdd-2x2": ("GMOS-N", "e2vdd", None, 2, "Full Frame", 11),
    "GMOS-S-eev-2x2": ("GMOS-S", "eev", None, 2, "Full Frame", 11),
    "GMOS-S-hamamatsu-2024-2x2-central-spectrum": ("GMOS-S", "hamamatsu", None, 2, "Central Spectrum", 11),
    # 1x1: e2vDD saturates at 45-53k ADU (well depth / gain); seed 26 puts a saturating star in the band
    "GMOS-N-e2vdd-1x1-central-spectrum": ("GMOS-N", "e2vdd", None, 1, "Central Spectrum", 26),
    # the tutorial's detector unbinned, full frame (12 amplifiers of 512 x 4224). A star saturates at 1x1
    # from ~1.4e7 e- (seeds 1-20) and the brightest simulated star has 4e7: none is 3x the faintest
    # saturated one, so test_saturated_cores_flagged skips (the e2vDD 1x1 case covers saturation at 1x1)
    "GMOS-N-hamamatsu-1x1": ("GMOS-N", "hamamatsu", None, 1, "Full Frame", 11),
}
#: (test, case) pairs that fail for a known pipeline reason, with what was measured (strict).
#: None since stop 3: GMOS-N EEV 4x4's sky/sqrt(VAR) of 1.120 was mostly the measure (the rms of
#: all residuals over sqrt(median VAR) mixed 1- to 5-frame depths and unflagged unlit pixels):
#: 1.075 per pixel, and 1.026 once VAR keeps the covariance of the mosaic's interpolation.
XFAIL = {}


def _expect_failure_if_known(request):
    key = (request.node.originalname, request.node.callspec.id)
    if key in XFAIL:
        request.applymarker(pytest.mark.xfail(strict=True, reason=XFAIL[key]))


@pytest.fixture(scope="module", params=list(CASES.values()), ids=list(CASES))
def reduced(request, tmp_path_factory):
    """Simulate and reduce one configuration; returns the measured stack."""
    instrument, detector, date, binning, roi, seed = request.param
    folder = tmp_path_factory.mktemp(f"{instrument}-{detector}-{binning}")
    dataset = make_tutorial_dataset(folder / "raw", instrument=instrument, detector=detector, date=date,
                                    binning=binning, roi=roi, seed=seed)
    playground = folder / "playground"
    playground.mkdir()
    stack, _ = reduce_tutorial(dataset, playground)
    return measure(stack, dataset.truth)


def test_bright_star_flux(reduced, request):
    _expect_failure_if_known(request)
    ratio, noise = photometry(reduced)
    median = float(np.median(ratio))
    print(f"photometry: {ratio.size} stars, median ratio {median:.4f}, noise {noise:.4f}")
    assert ratio.size >= 10
    assert abs(median - 1.0) < 0.01


def test_astrometry(reduced, request):
    _expect_failure_if_known(request)
    rms, count = astrometry(reduced)
    print(f"astrometry: {count} stars, rms {rms:.4f} arcsec")
    assert count >= 10
    assert rms < 0.05


def _stride(reduced):
    """Every 2nd stack pixel each way, every 4th at 1x1 (still > 10^6 pixels, 4x less time)."""
    return 4 if reduced.truth.binning == 1 else 2


def test_sky_noise_matches_variance(reduced, request):
    _expect_failure_if_known(request)
    ratio, empirical, predicted = sky_noise_ratio(reduced, stride=_stride(reduced))
    print(f"sky noise {empirical:.3f}, sqrt(VAR) {predicted:.3f}, ratio {ratio:.3f}")
    assert abs(ratio - 1) < 0.10


def test_illuminated_sky_usable(reduced, request):
    _expect_failure_if_known(request)
    fraction, count = usable_fraction(reduced, stride=_stride(reduced))
    print(f"usable: {fraction:.4f} of {count} truly illuminated stack pixels (sampled)")
    assert count > 1000
    assert fraction >= 0.99


def test_saturated_cores_flagged(reduced, request):
    _expect_failure_if_known(request)
    m = reduced
    # the truth flags a star saturated in any frame; well above the faintest such star it is
    # saturated in every frame (sub-pixel centring alone changes a peak by up to ~2x at 4x4)
    saturated = np.asarray(m.truth.stars["saturated"])
    if not saturated.any():
        pytest.skip("no saturated star")
    flux = np.asarray(m.truth.stars["flux_e"])
    stars = saturated & (flux >= 3 * flux[saturated].min())
    ny, nx = m.ext.mask.shape
    ix, iy = np.rint(m.x[stars]).astype(int), np.rint(m.y[stars]).astype(int)
    inside = (ix >= 0) & (iy >= 0) & (ix < nx) & (iy < ny)
    ix, iy = ix[inside], iy[inside]
    covered = (m.ext.mask[iy, ix] & (dq.NO_DATA | dq.UNILLUMINATED)) == 0
    if not covered.any():
        pytest.skip("no saturated star on the stack")
    flagged = (m.ext.mask[iy[covered], ix[covered]] & dq.SATURATED) != 0
    print(f"saturated stars: {flagged.sum()} of {covered.sum()} cores flagged")
    assert flagged.all()
