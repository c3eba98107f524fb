"""The seed's whole tutorial on simulated 2x2 data, checked against the simulator's truth.

Bias, flat and science are reduced with the seed's Python API (``Reduce``,
a calibration service, ``caldb.add_cal``); the ``_stack`` is then measured
independently of the pipeline's own catalogue: stars are located with the
stack's WCS from the *true* catalogue and photometered in large apertures.
"""
import numpy as np
import pytest

from accuracy import (astrometry, measure, photometry, reduce_tutorial, sky_noise_ratio, sky_pixels,
                      usable_fraction)
from gmoswidgets import dq
from gmoswidgets.frame import read_frame
from gmoswidgets.gmos.keywords import BUNIT_ELECTRON_ALIASES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tutorial_run(tutorial2, tmp_path_factory):
    """Run the API chapter of the seed in a fresh playground; return (stack path, dataset)."""
    stack, red = reduce_tutorial(tutorial2, tmp_path_factory.mktemp("playground2"))
    return stack, tutorial2, red


@pytest.fixture(scope="module")
def measured(tutorial_run):
    """Stack pixels and true stars projected with the stack's WCS."""
    path, dataset, _ = tutorial_run
    m = measure(path, dataset.truth)
    return read_frame(path), m.ext, m.truth, m.wcs, m.x, m.y, m


def test_stack_name_units_and_planes(tutorial_run):
    path, _, red = tutorial_run
    assert path.name == "N20170614S0201_stack.fits"
    stack = read_frame(path)
    assert len(stack) == 1
    ext = stack[0]
    assert str(stack.phu["BUNIT"]).lower() in BUNIT_ELECTRON_ALIASES
    assert ext.variance is not None and ext.mask is not None and ext.mask.dtype == np.uint16
    assert ext.objcat is not None and len(ext.objcat) > 100
    assert "PROCESSED_SCIENCE" in stack.tags
    # the calibrations were found through the database and recorded
    used = {str(name) for name in stack.tables["PROVENANCE"]["filename"]}
    assert {"N20170613S0180_bias.fits", "N20170702S0178_flat.fits"} <= used


def test_photometry_against_truth(measured):
    ratio, noise = photometry(measured[-1])
    assert ratio.size >= 30
    median = np.median(ratio)
    scatter = 1.4826 * np.median(np.abs(ratio - median))
    print(f"photometry: {ratio.size} stars, median ratio {median:.4f}, scatter {scatter:.4f}, "
          f"noise {noise:.4f}")
    assert abs(median - 1.0) < 0.01
    assert scatter < 2.0 * noise + 0.005   # noise-limited, plus flat-field residuals


def test_astrometry_against_truth(measured):
    rms, count = astrometry(measured[-1])
    print(f"astrometry: {count} stars, rms {rms:.4f} arcsec")
    assert count >= 30
    assert rms < 0.05


def test_sky_noise_matches_variance(measured):
    ratio, empirical, predicted = sky_noise_ratio(measured[-1])
    print(f"sky noise {empirical:.3f} e-, sqrt(VAR) {predicted:.3f} e-")
    assert abs(ratio - 1) < 0.10


def test_illuminated_sky_usable(measured):
    """At least 99 % of the truly illuminated sky (truth, not DQ) is usable (DQ 0) in the stack."""
    fraction, count = usable_fraction(measured[-1], stride=3)
    print(f"usable: {fraction:.4f} of {count} truly illuminated stack pixels (every 3rd)")
    assert count > 10000
    assert fraction >= 0.99


def test_no_cosmic_ray_survives(tutorial_run, measured):
    """No truth cosmic-ray hit on usable sky rises 5 sigma above the stack's background."""
    _, dataset, _ = tutorial_run
    stack, ext, truth, wcs, *_ = measured
    sky, residual = sky_pixels(ext)
    z = residual / np.sqrt(np.maximum(ext.variance, 1e-6))
    hits = 0
    worst = 0.0
    for name in truth.science_names():
        crs = truth.cosmic_rays(name)
        for amp in np.unique(crs["ext"]):
            rows = crs[crs["ext"] == amp]
            ra, dec = truth.wcs(name, int(amp)).all_pix2world(rows["x"], rows["y"], 0)
            sx, sy = wcs.all_world2pix(ra, dec, 0)
            ix, iy = np.round(sx).astype(int), np.round(sy).astype(int)
            ok = (ix >= 1) & (iy >= 1) & (ix < z.shape[1] - 1) & (iy < z.shape[0] - 1)
            ix, iy = ix[ok], iy[ok]
            ok = sky[iy, ix]
            hits += int(ok.sum())
            if ok.any():
                worst = max(worst, float(z[iy[ok], ix[ok]].max()))
    print(f"{hits} cosmic-ray pixels on usable sky; worst residual {worst:.2f} sigma")
    assert hits > 100
    assert worst < 5.0


def test_gaps_and_off_field_flagged(measured):
    stack, ext, truth, wcs, *_ = measured
    mask = ext.mask
    # the grid's corners lie outside every input, and the outer amplifiers are dark
    assert mask[0, 0] & (dq.NO_DATA | dq.UNILLUMINATED)
    assert np.mean((mask & dq.UNILLUMINATED) != 0) > 0.2
    # pixels with no good input never carry signal without a flag
    assert np.all(ext.data[(mask & dq.NO_DATA) != 0] == 0) or np.all(mask[ext.data == 0] != 0)
