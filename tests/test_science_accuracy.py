"""The seed's whole tutorial on simulated 2x2 data, checked against the simulator's truth.

Bias, flat and science are reduced with the seed's Python API (``Reduce``,
a calibration service, ``caldb.add_cal``); the ``_stack`` is then measured
independently of the pipeline's own catalogue: stars are located with the
stack's WCS from the *true* catalogue and photometered in large apertures.
"""
import os

import numpy as np
import pytest
import sep
from astropy.wcs import WCS
from scipy import ndimage
from scipy.spatial import cKDTree

from gmoswidgets import dq
from gmoswidgets.caldb import CalibrationService, set_calservice
from gmoswidgets.caldb import service as caldb_service
from gmoswidgets.frame import read_frame
from gmoswidgets.gmos.keywords import BUNIT_ELECTRON_ALIASES
from gmoswidgets.reduce import Reduce
from gmoswidgets.select import expr_parser, select_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tutorial_run(tutorial2, tmp_path_factory):
    """Run the API chapter of the seed in a fresh playground; return (stack path, dataset)."""
    playground = tmp_path_factory.mktemp("playground2")
    old, saved = os.getcwd(), caldb_service._DEFAULT["service"]
    os.chdir(playground)
    try:
        caldb = CalibrationService(database_dir=playground)
        caldb.init()
        set_calservice(caldb)
        files = sorted(str(p) for p in tutorial2.files)
        biases = select_data(files, ["BIAS"], [])
        flats = select_data(files, ["FLAT"], [], expr_parser('filter_name=="i"'))
        science = select_data(files, [], ["CAL"],
                              expr_parser('(observation_class=="science" and filter_name=="i")'))
        assert (len(biases), len(flats), len(science)) == (10, 5, 5)
        for selection in (biases, flats):
            red = Reduce()
            red.files.extend(selection)
            red.runr()
            caldb.add_cal(red.output_filenames[0])
        red = Reduce()
        red.files.extend(science)
        red.runr()
        stack = playground / red.output_filenames[0]
    finally:
        caldb_service._DEFAULT["service"] = saved
        os.chdir(old)
    return stack, tutorial2, red


@pytest.fixture(scope="module")
def measured(tutorial_run):
    """Stack pixels and true stars projected with the stack's WCS."""
    path, dataset, _ = tutorial_run
    stack = read_frame(path)
    ext = stack[0]
    truth = dataset.truth
    wcs = WCS(ext.header)
    x, y = wcs.all_world2pix(truth.stars["ra"], truth.stars["dec"], 0)
    return stack, ext, truth, wcs, x, y


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
    stack, ext, truth, wcs, x, y = measured
    sci = ext.data.astype(np.float64)
    var = ext.variance.astype(np.float64)
    bad = (ext.mask & dq.FAIL) != 0
    radius = 3.0 / truth.pixel_scale          # 3" radius: > 99.5 % of the Moffat PSF
    inside = (x > 3 * radius) & (y > 3 * radius) & (x < sci.shape[1] - 3 * radius) \
        & (y < sci.shape[0] - 3 * radius)
    flux, err, flag = sep.sum_circle(sci, x[inside], y[inside], radius, var=var, mask=bad,
                                     bkgann=(1.4 * radius, 2.0 * radius))
    # true flux in the stack's units: electrons per 10 s frame, divided by the flat's normalisation
    true = truth.stars["flux_e"][inside] * truth.flat_normalisation()
    # isolated, unsaturated, clean stars with S/N > 50
    tree = cKDTree(np.c_[x, y])
    neighbours = np.array([len(tree.query_ball_point(p, 2.0 * radius)) for p in np.c_[x, y][inside]])
    snr = flux / err
    use = (~truth.stars["saturated"][inside]) & (snr > 50) & (flag == 0) & (neighbours == 1)
    assert use.sum() >= 30
    ratio = flux[use] / true[use]
    median = np.median(ratio)
    scatter = 1.4826 * np.median(np.abs(ratio - median))
    noise = np.median(1.0 / snr[use])
    print(f"photometry: {use.sum()} stars, median ratio {median:.4f}, scatter {scatter:.4f}, "
          f"noise {noise:.4f}")
    assert abs(median - 1.0) < 0.01
    assert scatter < 2.0 * noise + 0.005   # noise-limited, plus flat-field residuals


def test_astrometry_against_truth(measured):
    stack, ext, truth, wcs, x, y = measured
    cat = ext.objcat
    cx = np.asarray(cat["XWIN_IMAGE"] if "XWIN_IMAGE" in cat.colnames else cat["X_IMAGE"]) - 1
    cy = np.asarray(cat["YWIN_IMAGE"] if "YWIN_IMAGE" in cat.colnames else cat["Y_IMAGE"]) - 1
    dist, index = cKDTree(np.c_[cx, cy]).query(np.c_[x, y])
    bright = (~truth.stars["saturated"]) & (dist < 1.5) & (np.asarray(cat["FLUX_AUTO"])[index]
                                                          > 50 * np.asarray(cat["FLUXERR_AUTO"])[index])
    assert bright.sum() >= 30
    ra, dec = wcs.all_pix2world(cx[index[bright]], cy[index[bright]], 0)
    dra = (ra - truth.stars["ra"][bright]) * np.cos(np.radians(truth.stars["dec"][bright])) * 3600
    ddec = (dec - truth.stars["dec"][bright]) * 3600
    rms = float(np.sqrt(np.mean(dra ** 2 + ddec ** 2)))
    print(f"astrometry: {bright.sum()} stars, rms {rms:.4f} arcsec")
    assert rms < 0.05


def _sky(ext):
    """Sky pixels (no sources, good DQ) and the background-subtracted image."""
    data = ext.data.astype(np.float32)
    good = ext.mask == 0
    objects = np.zeros(data.shape, bool)
    segmap = sep.extract(np.ascontiguousarray(data - sep.Background(data, mask=~good).back()), 3.0,
                         err=np.sqrt(np.maximum(ext.variance, 1e-6)).astype(np.float32),
                         mask=~good, segmentation_map=True)[1]
    objects = ndimage.binary_dilation(segmap > 0, iterations=6)
    sky = good & ~objects
    back = sep.Background(data, mask=~sky).back()
    return sky, data - back


def test_sky_noise_matches_variance(measured):
    stack, ext, *_ = measured
    sky, residual = _sky(ext)
    values = residual[sky]
    empirical = 1.4826 * np.median(np.abs(values - np.median(values)))
    predicted = float(np.sqrt(np.median(ext.variance[sky])))
    print(f"sky noise {empirical:.3f} e-, sqrt(VAR) {predicted:.3f} e-")
    assert abs(empirical / predicted - 1) < 0.10


def test_no_cosmic_ray_survives(tutorial_run, measured):
    """No truth cosmic-ray hit on usable sky rises 5 sigma above the stack's background."""
    _, dataset, _ = tutorial_run
    stack, ext, truth, wcs, *_ = measured
    sky, residual = _sky(ext)
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
