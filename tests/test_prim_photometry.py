"""detectSources on synthetic images with Gaussian stars at known positions.

Also home of the small synthetic-image helpers used by the register and
fringe tests (imported from there).
"""
import logging

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy.special import erf
from scipy.spatial import cKDTree

from gmoswidgets import dq
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.primitives import StepContext, get_primitive
from gmoswidgets.primitives.photometry import MASK_DEFAULTS, find_sources, object_mask

PIXSCALE = 0.0807 * 2  # GMOS-N Hamamatsu, 2x2 binning (arcsec)


def gaussian_stars(shape, xs, ys, fluxes, fwhm):
    """Noise-free image of pixel-integrated Gaussian stars at 0-based (x, y)."""
    image = np.zeros(shape)
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    half = int(6 * sigma) + 2
    for x, y, flux in zip(xs, ys, fluxes):
        x0, x1 = max(0, int(x) - half), min(shape[1], int(x) + half + 1)
        y0, y1 = max(0, int(y) - half), min(shape[0], int(y) + half + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        edges_x = (np.arange(x0, x1 + 1) - 0.5 - x) / (np.sqrt(2) * sigma)
        edges_y = (np.arange(y0, y1 + 1) - 0.5 - y) / (np.sqrt(2) * sigma)
        image[y0:y1, x0:x1] += flux * np.outer(np.diff(erf(edges_y)), np.diff(erf(edges_x))) / 4
    return image


def observe(expected, rng, read_noise=4.0):
    """Poisson + read noise realisation of ``expected`` (electrons) and its variance."""
    data = rng.poisson(np.clip(expected, 0, None)) + rng.normal(0.0, read_noise, expected.shape)
    variance = np.clip(expected, 0, None) + read_noise ** 2
    return data.astype(np.float32), variance.astype(np.float32)


def tan_header(shape, crval=(150.0, 2.0), pixscale=PIXSCALE, rotation_deg=0.0):
    """Extension header with a TAN WCS (CD matrix, north up, east left) centred on the image."""
    angle = np.radians(rotation_deg)
    scale = pixscale / 3600.0
    cd = scale * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    hdr = fits.Header()
    hdr["CCDSUM"] = "2 2"
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["CRPIX1"], hdr["CRPIX2"] = (shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0
    hdr["CRVAL1"], hdr["CRVAL2"] = crval
    for i in (1, 2):
        for j in (1, 2):
            hdr[f"CD{i}_{j}"] = cd[i - 1, j - 1]
    return hdr


def gmos_phu(**extra):
    """A minimal GMOS-N Hamamatsu imaging PHU."""
    phu = fits.Header()
    phu["INSTRUME"] = "GMOS-N"
    phu["DETTYPE"] = "S10892-N"
    phu["INPORT"] = 1
    phu["PA"] = 0.0
    phu["POFFSET"], phu["QOFFSET"] = 0.0, 0.0
    phu["FILTER1"], phu["FILTER2"] = "open1-6", "z_G0304"
    phu["BUNIT"] = "electron"
    for key, value in extra.items():
        phu[key] = value
    return phu


def make_frame(data, variance, header, phu=None, mask=None, name="synthetic.fits"):
    """A single-extension Frame from arrays."""
    if mask is None:
        mask = np.zeros(data.shape, dtype=np.uint16)
    frame = Frame(phu if phu is not None else gmos_phu(), [Extension(data, header, variance, mask)])
    frame.filename = name
    return frame


def star_field(rng, shape, nstars, margin=25, spacing=14.0):
    """Random star positions (0-based) at least ``spacing`` pixels apart."""
    xs, ys = [], []
    while len(xs) < nstars:
        x, y = rng.uniform(margin, shape[1] - margin), rng.uniform(margin, shape[0] - margin)
        if all((x - a) ** 2 + (y - b) ** 2 > spacing ** 2 for a, b in zip(xs, ys)):
            xs.append(x)
            ys.append(y)
    return np.array(xs), np.array(ys)


@pytest.fixture(scope="module")
def field():
    rng = np.random.default_rng(42)
    shape = (360, 420)
    xs, ys = star_field(rng, shape, 50)
    away = np.abs(ys - 201) > 12                 # keep stars off the bad-pixel block
    xs, ys = xs[away], ys[away]
    fluxes = 10 ** rng.uniform(4.0, 5.3, len(xs))
    fwhm = 4.0
    expected = gaussian_stars(shape, xs, ys, fluxes, fwhm) + 300.0
    data, var = observe(expected, rng)
    mask = np.zeros(shape, dtype=np.uint16)
    mask[:, :12] = dq.NO_DATA          # a no-data strip, as in a mosaic's edges
    data[:, :12] = 0.0
    mask[200:203, 100:300] = dq.BAD_PIXEL
    data[200:203, 100:300] = 60000.0   # hot bad column block: must not be detected
    frame = make_frame(data, var, tan_header(shape), mask=mask)
    return frame, xs, ys, fluxes, fwhm


def _run_detect(frame, **params):
    prim = get_primitive("detectSources")
    ctx = StepContext(logging.getLogger("test"))
    return prim([frame], ctx, **params)[0]


def test_positions_fluxes_fwhm(field):
    frame, xs, ys, fluxes, fwhm = field
    before = frame.exts[0].data.copy()
    out = _run_detect(frame)
    assert np.array_equal(frame.exts[0].data, before) and frame.exts[0].objcat is None
    cat = out.exts[0].objcat
    # every star found once, no spurious detection (the bad block is ignored)
    dist, idx = cKDTree(np.c_[xs + 1, ys + 1]).query(np.c_[cat["X_IMAGE"], cat["Y_IMAGE"]])
    assert np.all(dist < 1.0), "spurious detection"
    assert sorted(idx) == list(range(len(xs)))
    good = np.asarray(cat["FLAGS"]) == 0
    assert good.sum() >= 35
    dx = np.asarray(cat["X_IMAGE"])[good] - (xs[idx[good]] + 1)
    dy = np.asarray(cat["Y_IMAGE"])[good] - (ys[idx[good]] + 1)
    assert np.sqrt(np.mean(dx ** 2 + dy ** 2)) < 0.03      # isophotal barycentres
    xwin = np.asarray(cat["XWIN_IMAGE"])[good] - (xs[idx[good]] + 1)
    ywin = np.asarray(cat["YWIN_IMAGE"])[good] - (ys[idx[good]] + 1)
    snr = np.asarray(cat["FLUX_AUTO"] / cat["FLUXERR_AUTO"])[good]
    assert np.sqrt(np.mean(xwin ** 2 + ywin ** 2)) < 0.02       # windowed centroids
    assert np.max(np.hypot(xwin, ywin)[snr > 100]) < 0.05
    ratio = np.asarray(cat["FLUX_AUTO"])[good] / fluxes[idx[good]]
    flux = np.asarray(cat["FLUX_AUTO"])[good]
    pulls = (flux - fluxes[idx[good]]) / np.asarray(cat["FLUXERR_AUTO"])[good]
    assert abs(np.median(ratio) - 1) < 0.02      # Kron aperture: ~1% missed at most
    assert np.median(np.abs(pulls)) < 2.0
    # Gaussian FWHM, broadened by the pixel (box of variance 1/12)
    expected_fwhm = np.sqrt(fwhm ** 2 + 8 * np.log(2) / 12)
    assert np.median(cat["FWHM_IMAGE"][good]) == pytest.approx(expected_fwhm, rel=0.05)
    assert np.allclose(cat["FWHM_WORLD"] * 3600, cat["FWHM_IMAGE"] * PIXSCALE, rtol=1e-6)
    assert np.all(cat["MAG_AUTO"][good] == pytest.approx(-2.5 * np.log10(cat["FLUX_AUTO"][good])))


def test_world_coordinates(field):
    frame, xs, ys, _, _ = field
    cat = _run_detect(frame).exts[0].objcat
    wcs = WCS(frame.exts[0].header)
    ra, dec = wcs.all_pix2world(cat["X_IMAGE"], cat["Y_IMAGE"], 1)
    assert np.allclose(cat["X_WORLD"], ra, atol=1e-9)
    assert np.allclose(cat["Y_WORLD"], dec, atol=1e-9)


def test_objmask_and_columns(field):
    frame, *_ = field
    ext = _run_detect(frame).exts[0]
    assert ext.objmask.dtype == np.uint8 and ext.objmask.shape == ext.data.shape
    cat = ext.objcat
    iy = np.round(cat["Y_IMAGE"] - 1).astype(int)
    ix = np.round(cat["X_IMAGE"] - 1).astype(int)
    assert np.all(ext.objmask[iy, ix] == 1)
    assert ext.objmask[ext.mask != 0].sum() == 0     # flagged pixels never belong to objects
    for col in ("NUMBER", "X_WORLD", "Y_WORLD", "FLUXERR_AUTO", "A_IMAGE", "B_IMAGE",
                "THETA_IMAGE", "FLAGS", "ISOAREA_IMAGE"):
        assert col in cat.colnames
    assert np.all(cat["ISOAREA_IMAGE"] >= 8)


@pytest.mark.parametrize("mask", [False, True])
def test_planes_sep_cannot_take_give_the_same_sources_and_stay_unchanged(field, mask):
    """Read-only (spilled) and big-endian planes are copied, and the copy holds the
    subtracted image: same catalogue and segmentation as from writable planes."""
    frame, *_ = field
    ext = frame.exts[0]
    params = dict(get_primitive("detectSources").defaults(), mask=mask)
    table, segmap = find_sources(ext.data, ext.variance, ext.mask, **params)
    read_only = ext.data.copy()
    read_only.flags.writeable = False
    for data in (read_only, ext.data.astype(">f4")):
        before = data.copy()
        other, other_segmap = find_sources(data, ext.variance, ext.mask, **params)
        assert np.array_equal(data, before)
        assert np.array_equal(other_segmap, segmap)
        for name in table.colnames:
            assert np.array_equal(other[name], table[name], equal_nan=True), name
        masked = object_mask(data, ext.variance, ext.mask, **dict(MASK_DEFAULTS, mask=mask))
        assert np.array_equal(masked, segmap > 0)    # sep's in-place subtraction: same detections


def test_threshold_controls_number_of_detections(field):
    frame, *_ = field
    loose = _run_detect(frame).exts[0].objcat
    strict = _run_detect(frame, detect_thresh=50.0).exts[0].objcat
    assert 0 < len(strict) < len(loose)


def test_empty_and_fully_masked_images():
    rng = np.random.default_rng(1)
    data, var = observe(np.full((100, 120), 100.0), rng)
    out = _run_detect(make_frame(data, var, tan_header(data.shape)))
    assert len(out.exts[0].objcat) <= 1
    mask = np.full(data.shape, dq.NO_DATA, dtype=np.uint16)
    out = _run_detect(make_frame(data, var, tan_header(data.shape), mask=mask))
    assert len(out.exts[0].objcat) == 0 and out.exts[0].objmask.sum() == 0


def test_find_sources_without_variance():
    rng = np.random.default_rng(5)
    shape = (200, 200)
    xs, ys = star_field(rng, shape, 10, spacing=30)
    data, _ = observe(gaussian_stars(shape, xs, ys, np.full(10, 3e4), 3.5) + 200.0, rng)
    table, segmap = find_sources(data, **get_primitive("detectSources").defaults())
    assert len(table) == 10
    assert segmap.max() == 10


def test_saturated_sources_flagged_on_request():
    rng = np.random.default_rng(9)
    shape = (150, 150)
    data, var = observe(gaussian_stars(shape, [50.0, 100.0], [75.0, 75.0], [2e5, 2e4], 4.0) + 100.0,
                        rng)
    mask = np.zeros(shape, dtype=np.uint16)
    mask[74:77, 49:52] = dq.SATURATED            # the bright star's core
    frame = make_frame(data, var, tan_header(shape), mask=mask)
    plain = _run_detect(frame).exts[0].objcat
    flagged = _run_detect(frame, set_saturation=True).exts[0].objcat
    bright = np.argmin(np.hypot(flagged["X_IMAGE"] - 51, flagged["Y_IMAGE"] - 76))
    assert flagged["FLAGS"][bright] & 4 and not plain["FLAGS"][bright] & 4
    assert flagged["IMAFLAGS_ISO"][bright] & dq.SATURATED
    assert np.count_nonzero(flagged["FLAGS"] & 4) == 1
