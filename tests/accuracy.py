"""Reduce a simulated tutorial and measure its stack against the simulator's truth.

Shared by the 2x2 accuracy test (tests/test_science_accuracy.py) and the
configuration matrix (tests/test_configurations.py).  The stack is measured
independently of the pipeline's own catalogue where possible: stars are
located with the stack's WCS from the *true* catalogue and photometered in
large apertures; illuminated pixels come from the truth, not from DQ.
"""
import os
from dataclasses import dataclass, field

import numpy as np
import sep
from astropy.wcs import WCS
from scipy import ndimage
from scipy.spatial import cKDTree

from gmoswidgets import dq
from gmoswidgets.caldb import CalibrationService, set_calservice
from gmoswidgets.caldb import service as caldb_service
from gmoswidgets.data.instrument import facts
from gmoswidgets.frame import read_frame
from gmoswidgets.reduce import Reduce
from gmoswidgets.select import expr_parser, select_data


def needs_fringe_frame(truth) -> bool:
    """Whether DRAGONS fringe-corrects this data set's filter on its detector (JSON fringe table)."""
    table = facts()["fringe"]["needs_correction_by_pretty_detector"]
    return truth.filter_name in table[truth.configuration["detector_name"]]


def reduce_tutorial(dataset, playground):
    """Run the API chapter of the seed (bias, flat, science) in ``playground``.

    Where DRAGONS fringe-corrects the filter on the data set's detector
    (i band on EEV and e2vDD), a processed fringe is made from the science
    frames first (``makeProcessedFringe``) and added to the database, as
    DRAGONS' tutorial does for such data.

    Returns
    -------
    stack : pathlib.Path
    reduce : Reduce
        The science reduction.
    """
    old, saved = os.getcwd(), caldb_service._DEFAULT["service"]
    os.chdir(playground)
    try:
        caldb = CalibrationService(database_dir=playground)
        caldb.init()
        set_calservice(caldb)
        files = sorted(str(p) for p in dataset.files)
        filt = dataset.truth.filter_name
        biases = select_data(files, ["BIAS"], [])
        flats = select_data(files, ["FLAT"], [], expr_parser(f'filter_name=="{filt}"'))
        science = select_data(files, [], ["CAL"],
                              expr_parser(f'(observation_class=="science" and filter_name=="{filt}")'))
        assert (len(biases), len(flats), len(science)) == (10, 5, 5)
        for selection in (biases, flats):
            red = Reduce()
            red.files.extend(selection)
            red.runr()
            caldb.add_cal(red.output_filenames[0])
        if needs_fringe_frame(dataset.truth):
            red = Reduce(files=science, recipename="makeProcessedFringe")
            red.runr()
            caldb.add_cal(red.output_filenames[0])
        red = Reduce()
        red.files.extend(science)
        red.runr()
        return playground / red.output_filenames[0], red
    finally:
        caldb_service._DEFAULT["service"] = saved
        os.chdir(old)


@dataclass
class Measured:
    """A stack's science extension with the true stars projected by its WCS."""

    ext: object
    truth: object
    wcs: WCS
    x: np.ndarray
    y: np.ndarray
    #: results of :func:`truly_illuminated` by (margin, stride): several measures share them
    illuminated: dict = field(default_factory=dict, repr=False, compare=False)


def measure(stack_path, truth) -> Measured:
    """Read a stack and project the true catalogue with its WCS."""
    ext = read_frame(stack_path)[0]
    wcs = WCS(ext.header)
    x, y = wcs.all_world2pix(truth.stars["ra"], truth.stars["dec"], 0)
    return Measured(ext, truth, wcs, x, y)


#: Radius, in PSF FWHM, within which another true star blends with a star for astrometry: it
#: merges into the star's detection or pulls its windowed centroid (whose Gaussian weight,
#: sigma = FWHM / 2.355, has fallen to exp(-25) at this distance).
BLEND_RADIUS_FWHM = 3.0


def isolated(m: Measured, radius: float) -> np.ndarray:
    """Whether each true star has no other true star within ``radius`` stack pixels."""
    xy = np.c_[m.x, m.y]
    return np.array([len(near) for near in cKDTree(xy).query_ball_point(xy, radius)]) == 1


def photometry(m: Measured, *, min_snr=50.0):
    """Aperture photometry of isolated, unsaturated true stars (3" radius).

    Returns
    -------
    ratio : numpy.ndarray
        Measured / true flux (true flux x the flat's normalisation) per star used.
    noise : float
        Median 1/SNR of those stars.
    """
    ext, truth = m.ext, m.truth
    sci = ext.data.astype(np.float64)
    var = ext.variance.astype(np.float64)
    bad = (ext.mask & dq.FAIL) != 0
    radius = 3.0 / truth.pixel_scale          # 3" radius: > 99.5 % of the Moffat PSF
    x, y = m.x, m.y
    inside = (x > 3 * radius) & (y > 3 * radius) & (x < sci.shape[1] - 3 * radius) \
        & (y < sci.shape[0] - 3 * radius)
    # only stars whose background annulus is mostly usable (not in a gap or off the field)
    good = np.ascontiguousarray((~bad).astype(np.float64))
    usable, _, _ = sep.sum_circann(good, x[inside], y[inside], 1.4 * radius, 2.0 * radius, subpix=1)
    inside[np.flatnonzero(inside)] = usable > 0.5 * np.pi * ((2.0 * radius) ** 2 - (1.4 * radius) ** 2)
    flux, err, flag = sep.sum_circle(sci, x[inside], y[inside], radius, var=var, mask=bad,
                                     bkgann=(1.4 * radius, 2.0 * radius))
    true = np.asarray(truth.stars["flux_e"])[inside] * truth.flat_normalisation()
    snr = flux / err
    use = ((~np.asarray(truth.stars["saturated"])[inside]) & (snr > min_snr) & (flag == 0)
           & isolated(m, 2.0 * radius)[inside])
    return flux[use] / true[use], float(np.median(1.0 / snr[use])) if use.any() else np.nan


def astrometry(m: Measured, *, min_snr=50.0):
    """rms (arcsec) of clean, isolated bright catalogue stars against the truth; (rms, count).

    The stars an astronomer would check a WCS with: unsaturated, isolated
    (no other true star within ``BLEND_RADIUS_FWHM`` FWHM: a blend's position
    is its light centroid, not the star's), whose catalogue entry lies
    within 1.5 pixels, has S/N > ``min_snr`` and ``FLAGS`` 0 (not deblended,
    not truncated by the field's edge, no flagged pixel in its aperture, as
    detectSources' own FWHM statistics select).  A defect the pipeline
    leaves in a clean star (a cosmic ray it did not flag) still counts.
    """
    ext, truth, wcs = m.ext, m.truth, m.wcs
    cat = ext.objcat
    cx = np.asarray(cat["XWIN_IMAGE"] if "XWIN_IMAGE" in cat.colnames else cat["X_IMAGE"]) - 1
    cy = np.asarray(cat["YWIN_IMAGE"] if "YWIN_IMAGE" in cat.colnames else cat["Y_IMAGE"]) - 1
    dist, index = cKDTree(np.c_[cx, cy]).query(np.c_[m.x, m.y])
    clean = np.asarray(cat["FLAGS"])[index] == 0
    bright = np.asarray(cat["FLUX_AUTO"])[index] > min_snr * np.asarray(cat["FLUXERR_AUTO"])[index]
    alone = isolated(m, BLEND_RADIUS_FWHM * truth.psf_fwhm_arcsec / truth.pixel_scale)
    use = (~np.asarray(truth.stars["saturated"])) & (dist < 1.5) & bright & clean & alone
    ra, dec = wcs.all_pix2world(cx[index[use]], cy[index[use]], 0)
    dra = (ra - truth.stars["ra"][use]) * np.cos(np.radians(truth.stars["dec"][use])) * 3600
    ddec = (dec - truth.stars["dec"][use]) * 3600
    return float(np.sqrt(np.mean(dra ** 2 + ddec ** 2))), int(use.sum())


def sky_pixels(ext):
    """Sky pixels (no sources, good DQ) and the background-subtracted image."""
    data = ext.data.astype(np.float32)
    good = ext.mask == 0
    segmap = sep.extract(np.ascontiguousarray(data - sep.Background(data, mask=~good).back()), 3.0,
                         err=np.sqrt(np.maximum(ext.variance, 1e-6)).astype(np.float32),
                         mask=~good, segmentation_map=True)[1]
    objects = ndimage.binary_dilation(segmap > 0, iterations=6)
    sky = good & ~objects
    back = sep.Background(data, mask=~sky).back()
    return sky, data - back


def sky_noise_ratio(m: Measured, *, stride=2):
    """Robust rms of the sky residual in units of each pixel's own sqrt(VAR); (ratio, noise, sqrt VAR).

    The pixels are sky (good DQ, away from detected sources: :func:`sky_pixels`)
    that the truth says is illuminated in every science frame
    (:func:`truly_illuminated`, sampled every ``stride`` pixels).  Each
    background-subtracted residual is divided by its own pixel's sqrt(VAR)
    before the robust rms (1.4826 x MAD) is taken, so the ratio asks whether
    VAR describes each pixel's noise.  The rms of all residuals over sqrt of
    the *median* VAR would not: a stack's VAR changes 5x between the
    one-frame edges of the dither pattern and chip gaps and its five-frame
    centre (GMOS-N Hamamatsu 4x4, seed 11: 1.078 that way with a correct
    VAR, 1.001 per pixel), and on EEV/e2vDD 4x4, where DRAGONS has no
    illumination mask, DQ-good unilluminated pixels (noise over a flat near
    0) would count as sky.

    Returns
    -------
    ratio : float
        Robust rms of residual / sqrt(VAR).
    noise, predicted : float
        Robust rms of the residuals and sqrt(median VAR) on the same pixels (for the log).
    """
    ext = m.ext
    sky, residual = sky_pixels(ext)
    rows, cols = truly_illuminated(m, stride=stride)
    use = sky[rows, cols] & (ext.variance[rows, cols] > 0)
    rows, cols = rows[use], cols[use]
    values, variance = residual[rows, cols], ext.variance[rows, cols].astype(np.float64)
    ratio = _robust_rms(values / np.sqrt(variance))
    return ratio, _robust_rms(values), float(np.sqrt(np.median(variance)))


def _robust_rms(values):
    """1.4826 x the median absolute deviation from the median."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def truly_illuminated(m: Measured, *, margin=2, stride=1):
    """Stack pixels the sky truly reaches in every science frame, away from unlit pixels and defects.

    A stack pixel counts when, in each science frame, it falls on a data
    pixel that the simulator lit (``truth.illuminated``) at least
    ``margin`` binned pixels from any unlit or off-detector pixel, and not
    within ``margin`` columns of a true bad column, nor within 5" of a
    saturated star.  Sampled every ``stride`` pixels.

    Returns
    -------
    rows, cols : numpy.ndarray
        Indices of those stack pixels.
    """
    if (margin, stride) not in m.illuminated:
        m.illuminated[margin, stride] = _truly_illuminated(m, margin, stride)
    return m.illuminated[margin, stride]


def _truly_illuminated(m: Measured, margin, stride):
    truth = m.truth
    ny, nx = m.ext.data.shape
    yy, xx = np.mgrid[0:ny:stride, 0:nx:stride]
    ra, dec = m.wcs.all_pix2world(xx.ravel(), yy.ravel(), 0)
    keep = np.ones(ra.size, bool)
    for name in truth.science_names():
        lit_somewhere = np.zeros(ra.size, bool)
        for index in range(len(truth.amps)):
            sec = truth.datasec(index)
            lit = ndimage.binary_erosion(truth.illuminated(index), iterations=margin, border_value=0)
            x, y = truth.wcs(name, index).all_world2pix(ra, dec, 0)
            ix, iy = np.rint(x).astype(int) - sec.x1, np.rint(y).astype(int) - sec.y1
            on = (ix >= 0) & (iy >= 0) & (ix < lit.shape[1]) & (iy < lit.shape[0])
            hit = np.zeros(ra.size, bool)
            hit[on] = lit[iy[on], ix[on]]
            for bad in truth.bad_columns:
                if bad["amp"] == _full_frame_key(truth, index):
                    hit[on] &= ~_near_bad_column(truth, index, bad, ix[on], iy[on], margin)
            lit_somewhere |= hit
        keep &= lit_somewhere
    saturated = truth.stars[np.asarray(truth.stars["saturated"])]
    if len(saturated):
        sx, sy = m.wcs.all_world2pix(saturated["ra"], saturated["dec"], 0)
        radius = 5.0 / truth.pixel_scale
        tree = cKDTree(np.c_[sx, sy])
        near = np.array([len(v) > 0 for v in tree.query_ball_point(np.c_[xx.ravel(), yy.ravel()], radius)])
        keep &= ~near
    return yy.ravel()[keep], xx.ravel()[keep]


def _full_frame_key(truth, index):
    """Left-to-right position of extension ``index``'s amplifier among all amplifiers."""
    detsec = truth.amps["detsec"][index]
    x1 = int(detsec.strip("[]").split(":")[0]) - 1
    per_ccd = truth.configuration["amps_per_ccd"]
    width = truth.configuration["ccd_shape_xy_unbinned"][0] // per_ccd
    return x1 // width


def _near_bad_column(truth, index, bad, ix, iy, margin):
    """Whether (ix, iy) data pixels lie within ``margin`` binned columns of a true bad column."""
    ccdsec = truth.amps["ccdsec"][index]
    x1 = int(ccdsec.strip("[]").split(":")[0]) - 1
    y1 = int(ccdsec.strip("[]").split(",")[1].split(":")[0]) - 1
    per_ccd = truth.configuration["amps_per_ccd"]
    width = truth.configuration["ccd_shape_xy_unbinned"][0] // per_ccd
    b = truth.binning
    amp_x = x1 % width + b * ix + (b - 1) / 2.0
    y = y1 + b * iy
    return (np.abs(amp_x - bad["column"]) < (margin + 0.5) * b) & (y >= bad["y1"] - margin * b) \
        & (y < bad["y2"] + margin * b)


def usable_fraction(m: Measured, *, stride=1):
    """Fraction of the truly illuminated stack pixels with DQ 0; (fraction, count)."""
    rows, cols = truly_illuminated(m, stride=stride)
    good = m.ext.mask[rows, cols] == 0
    return float(good.mean()) if good.size else np.nan, int(good.size)
