"""resampleToCommonFrame and the resampling kernel on hand-built images.

Stars are drawn at known sky positions through each image's own WCS, so
the expected output positions come from the reference WCS, not from the
code under test.
"""
import gc
import logging
import weakref

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from gmoswidgets import dq
from gmoswidgets.errors import GmosError, ParameterError
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.primitives.base import StepContext
from gmoswidgets.primitives.resample import resampleToCommonFrame
from gmoswidgets.numerics.interpolate import (AffineMap, INTERPOLANTS, fit_affine, resample,
                                             resample_dq)
from helpers import centroid
from resampling_reference import brute_force

SCALE = 0.1614 / 3600.0
SIGMA = 1.5
SHAPE = (300, 400)
STARS_SKY = [(150.0 + dx * SCALE, 2.0 + dy * SCALE, flux) for dx, dy, flux in
             [(-120.3, -80.2, 4e4), (-30.7, 60.4, 6e4), (50.2, -20.9, 5e4),
              (140.6, 100.3, 7e4), (10.1, 5.5, 3e4)]]


def ctx():
    return StepContext(logger=logging.getLogger("test"))


def make_image(name, dx=0.0, dy=0.0, rotation=0.0, scale=1.0, bad=(), background=50.0):
    """A mosaic-like frame whose pointing is offset by (dx, dy) pixels, rotated, rescaled."""
    t = np.deg2rad(rotation)
    cd = SCALE * scale * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0,
                          "CRVAL2": 2.0, "CRPIX1": SHAPE[1] / 2 + dx, "CRPIX2": SHAPE[0] / 2 + dy,
                          "CD1_1": cd[0, 0], "CD1_2": cd[0, 1], "CD2_1": cd[1, 0],
                          "CD2_2": cd[1, 1], "DATASEC": f"[1:{SHAPE[1]},1:{SHAPE[0]}]"})
    wcs = WCS(header)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    image = np.full(SHAPE, background, dtype=np.float64)
    rows = []
    for ra, dec, flux in STARS_SKY:
        x, y = wcs.all_world2pix(ra, dec, 0)
        s = SIGMA / scale
        r2 = ((xx - x) ** 2 + (yy - y) ** 2) / s ** 2
        image += flux / (2 * np.pi * s ** 2) * np.exp(-0.5 * r2)
        rows.append((float(x) + 1, float(y) + 1, ra, dec, flux))
    mask = np.zeros(SHAPE, dtype=np.uint16)
    for x, y in bad:
        mask[y, x] = dq.BAD_PIXEL
    objcat = Table(rows=[r[:2] + r[:2] + r[2:] for r in rows],
                   names=("X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE", "X_WORLD", "Y_WORLD",
                          "FLUX_AUTO"))
    phu = fits.Header({"INSTRUME": "GMOS-N", "EXPTIME": 60.0})
    frame = Frame(phu, [Extension(image.astype(np.float32), header,
                                  np.full(SHAPE, 9.0, np.float32), mask, objcat)])
    frame.filename = name
    return frame


@pytest.fixture(scope="module")
def aligned():
    frames = [make_image("ref.fits"), make_image("b.fits", dx=12.4, dy=-7.7),
              make_image("c.fits", dx=-20.2, dy=15.6, rotation=0.3, bad=[(100, 120)]),
              make_image("d.fits", dx=3.3, dy=4.1, scale=1.05)]
    out = resampleToCommonFrame(frames, ctx())
    return frames, out


def test_union_grid_and_shared_wcs(aligned):
    frames, out = aligned
    shapes = {f.exts[0].data.shape for f in out}
    assert len(shapes) == 1
    ny, nx = shapes.pop()
    assert nx == pytest.approx(SHAPE[1] + 12.4 + 20.2, abs=3)
    assert ny == pytest.approx(SHAPE[0] + 7.7 + 15.6, abs=3)
    crpix = {(f.exts[0].header["CRPIX1"], f.exts[0].header["CRPIX2"]) for f in out}
    assert len(crpix) == 1
    for frame in out:
        assert frame.exts[0].header["AREATYPE"] == "POLYGON"


def test_stars_land_on_reference_grid(aligned):
    _, out = aligned
    wcs = WCS(out[0].exts[0].header)
    for frame in out:
        for ra, dec, flux in STARS_SKY:
            x, y = wcs.all_world2pix(ra, dec, 0)
            cx, cy, total = centroid(frame.exts[0].data, x, y)
            assert abs(cx - x) < 0.05 and abs(cy - y) < 0.05, (frame.filename, cx - x, cy - y)
            assert total == pytest.approx(flux, rel=0.01)  # flux conserved, also at scale 1.05


def test_reference_pixels_are_copied_exactly(aligned):
    frames, out = aligned
    ref_in, ref_out = frames[0].exts[0], out[0].exts[0]
    ys, xs = np.nonzero(ref_out.mask == 0)
    y0, x0 = ys.min(), xs.min()
    assert np.array_equal(ref_out.data[y0:y0 + SHAPE[0], x0:x0 + SHAPE[1]], ref_in.data)
    assert ref_out.header["JFACTOR"] == 1.0


def test_dq_variance_and_no_data(aligned):
    frames, out = aligned
    c = out[2].exts[0]
    in_wcs, out_wcs = WCS(frames[2].exts[0].header), WCS(c.header)
    x, y = out_wcs.all_world2pix(*in_wcs.all_pix2world(100, 120, 0), 0)
    ys, xs = np.nonzero(c.mask & dq.BAD_PIXEL)
    # the bad pixel is flagged wherever poly3 (the data's interpolant) takes it: up to 4 x 4 pixels
    assert 4 <= xs.size <= 16
    assert np.all(np.abs(xs - x) < 2) and np.all(np.abs(ys - y) < 2)
    nodata = (c.mask & dq.NO_DATA) != 0
    covered = ~nodata
    # VAR 9 through the squared poly3 weights of each pixel's own fractional position
    expected = 9.0 * _poly3_variance_factor(frames[2].exts[0], c)
    assert np.allclose(c.variance[covered], expected[covered], rtol=2e-3)
    assert 0.4 * 9 < c.variance[covered].min() and c.variance[covered].max() <= 9.0 + 1e-3
    outside = nodata & (c.variance == 0)
    assert np.all(c.data[outside] == 0)
    assert outside.sum() > 0.05 * c.data.size
    d = out[3].exts[0]
    assert d.header["JFACTOR"] == pytest.approx(1 / 1.05 ** 2, rel=1e-4)
    good = d.mask == 0
    expected = 9.0 / 1.05 ** 4 * _poly3_variance_factor(frames[3].exts[0], d)
    assert np.allclose(d.variance[good], expected[good], rtol=2e-3)


def _poly3_variance_factor(ext_in, ext_out):
    """Sum of the squared 2-D cubic Lagrange weights at each output pixel's input position.

    A resampled pixel sum(w_i x_i) of independent inputs has variance sum(w_i^2) var.
    """
    ny, nx = ext_out.data.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    world = WCS(ext_out.header).all_pix2world(xx.ravel(), yy.ravel(), 0)
    xi, yi = WCS(ext_in.header).all_world2pix(*world, 0)

    def power(u):
        f = u - np.floor(u)
        w = [-f * (f - 1) * (f - 2) / 6, (f + 1) * (f - 1) * (f - 2) / 2,
             -(f + 1) * f * (f - 2) / 2, (f + 1) * f * (f - 1) / 6]
        return sum(wk ** 2 for wk in w)
    return (power(xi) * power(yi)).reshape(ny, nx)


def test_objcat_positions_follow(aligned):
    _, out = aligned
    for frame in out:
        cat = frame.exts[0].objcat
        wcs = WCS(frame.exts[0].header)
        x, y = wcs.all_world2pix(np.asarray(cat["X_WORLD"]), np.asarray(cat["Y_WORLD"]), 1)
        for xcol, ycol in (("X_IMAGE", "Y_IMAGE"), ("XWIN_IMAGE", "YWIN_IMAGE")):
            assert np.allclose(cat[xcol], x, atol=0.01) and np.allclose(cat[ycol], y, atol=0.01)


def test_trim_data_and_reference_choice():
    frames = [make_image("a.fits"), make_image("b.fits", dx=12.0, dy=-7.0)]
    out = resampleToCommonFrame(frames, ctx(), trim_data=True)
    assert all(f.exts[0].data.shape == SHAPE for f in out)
    assert np.array_equal(out[0].exts[0].data, frames[0].exts[0].data)
    out = resampleToCommonFrame(frames, ctx(), trim_data=True, reference="b.fits")
    assert np.array_equal(out[1].exts[0].data, frames[1].exts[0].data)
    # b's pointing is a whole-pixel shift: a is shifted exactly.
    assert np.array_equal(out[0].exts[0].data[20:-20, 20:-20],
                          frames[0].exts[0].data[27:-13, 8:-32])
    with pytest.raises(ParameterError):
        resampleToCommonFrame(frames, ctx(), reference="nothere.fits")


def test_needs_single_extension_images():
    frame = make_image("a.fits")
    frame.exts.append(frame.exts[0].copy())
    with pytest.raises(GmosError, match="mosaicDetectors"):
        resampleToCommonFrame([frame], ctx())


def test_inputs_not_modified():
    frames = [make_image("a.fits"), make_image("b.fits", dx=1.5, dy=2.5)]
    copies = [f.exts[0].data.copy() for f in frames]
    headers = [f.exts[0].header.copy() for f in frames]
    resampleToCommonFrame(frames, ctx(), clean_data=True)
    for frame, data, header in zip(frames, copies, headers):
        assert np.array_equal(frame.exts[0].data, data)
        assert frame.exts[0].header == header


def test_inputs_handed_over_go_as_they_are_resampled():
    """Given frames nothing else holds (the engine's hand-over under keep='last'), each input
    is freed once resampled: the grid needs them all, their planes only their own frame."""
    def images():
        frames = [make_image("a.fits"), make_image("b.fits", dx=12.4, dy=-7.7),
                  make_image("c.fits", dx=-20.2, dy=15.6)]
        for frame in frames:
            frame.exts[0].objmask = (frame.exts[0].data > 500).astype(np.uint8)
        return frames

    frames = images()
    refs = [weakref.ref(f) for f in frames]
    alive = []

    def progress(fraction, message):
        gc.collect()
        alive.append([ref() is not None for ref in refs])

    step = StepContext(logger=logging.getLogger("test"), progress_callback=progress)
    out = resampleToCommonFrame.func(frames, step, **resampleToCommonFrame.arguments({}))
    assert frames == [] and alive == [[False, True, True], [False, False, True], [False] * 3]
    for got, want in zip(out, resampleToCommonFrame(images(), ctx())):   # the same result
        for plane in ("data", "variance", "mask", "objmask"):
            np.testing.assert_array_equal(getattr(got.exts[0], plane),
                                          getattr(want.exts[0], plane))
        assert got.exts[0].objmask.dtype == np.uint8 and got.exts[0].objmask.any()


# -- the kernel -----------------------------------------------------------------------

def _smooth(x, y):
    return np.sin(x / 7.0) * np.cos(y / 9.0) + 0.01 * x


@pytest.mark.parametrize("interpolant,tol", [("nearest", 0.08), ("linear", 5e-3), ("poly3", 5e-5),
                                             ("poly5", 5e-6), ("spline3", 5e-5),
                                             ("spline5", 5e-5)])
@pytest.mark.parametrize("matrix", [np.eye(2), [[0.99999, -0.0001], [0.0001, 0.99999]],
                                    [[0.8, -0.5], [0.5, 0.8]]])
def test_kernel_accuracy(interpolant, tol, matrix):
    ny, nx = 120, 150
    yy, xx = np.mgrid[0:ny, 0:nx]
    amap = AffineMap(np.asarray(matrix, float), np.array([3.3, -2.6]))
    out = resample([_smooth(xx, yy).astype(np.float32)], amap, (ny, nx), interpolant)[0]
    x, y = amap(xx, yy)
    inner = (x > 8) & (x < nx - 9) & (y > 8) & (y < ny - 9)
    assert np.abs(out - _smooth(x, y))[inner].max() < tol
    e = 1e-6
    outside = (x < -0.5 - e) | (x > nx - 0.5 + e) | (y < -0.5 - e) | (y > ny - 0.5 + e)
    assert np.all(out[outside] == 0)


def test_kernel_polynomials_pass_through_samples():
    data = np.random.default_rng(1).normal(size=(40, 50)).astype(np.float32)
    out = resample([data], AffineMap.translation(2, -3), (40, 50), "poly3")[0]
    assert np.array_equal(out[3:, :48], data[:37, 2:])
    half = resample([data], AffineMap.translation(0.5, 0), (40, 50), "linear")[0]
    assert np.allclose(half[:, :48], 0.5 * (data[:, :48] + data[:, 1:49]), atol=1e-6)


def test_resample_dq_threshold_and_no_data():
    mask = np.zeros((20, 20), np.uint16)
    mask[10, 10] = dq.BAD_PIXEL | dq.SATURATED
    out = resample_dq(mask, AffineMap.translation(0.3, 0.0), (20, 20), interpolant="linear")
    assert out[10, 10] == dq.BAD_PIXEL | dq.SATURATED and out[10, 9] == out[10, 10]
    assert out[10, 11] == 0 and out[9, 10] == 0
    strict = resample_dq(mask, AffineMap.translation(0.3, 0.0), (20, 20), threshold=0.5,
                         interpolant="linear")
    assert strict[10, 10] == mask[10, 10] and strict[10, 9] == 0
    # beyond the input edge (x > 19.5) no_data; the last covered column takes the edge copy
    assert np.all(out[:, 19] == 0) and np.array_equal(out[:, 19], out[:, 18])
    beyond = resample_dq(mask, AffineMap.translation(0.6, 0.0), (20, 20), interpolant="linear")
    assert np.all(beyond[:, 19] == dq.NO_DATA) and not (beyond[:, :19] & dq.NO_DATA).any()


def test_fit_affine_recovers_translation_exactly():
    amap, residual = fit_affine(lambda x, y: (x + 3.0 + 1e-9 * y, y - 2.0), (100, 100))
    assert np.array_equal(amap.matrix, np.eye(2)) and np.array_equal(amap.offset, [3.0, -2.0])
    assert residual < 1e-6
    assert set(INTERPOLANTS) == {"nearest", "linear", "poly3", "poly5", "spline3", "spline5"}


def test_kernel_exact_integer_crossings():
    """Maps whose input x is an exact integer on some rows (block boundaries) stay exact."""
    ny, nx = 200, 120
    yy, xx = np.mgrid[0:ny, 0:nx]
    amap = AffineMap(np.array([[1.0, 1 / 64], [0.0, 1.0]]), np.array([3.0, 0.0]))
    out = resample([_smooth(xx, yy).astype(np.float32)], amap, (ny, nx), "poly3")[0]
    x, y = amap(xx, yy)
    inner = (x > 4) & (x < nx - 5) & (y > 4) & (y < ny - 5)
    assert np.abs(out - _smooth(x, y))[inner].max() < 5e-5


@pytest.mark.parametrize("matrix,offset,out_shape", [
    (np.eye(2), (-3.25, 2.5), (36, 50)),                      # translation, partly outside
    ([[0.9999, -0.003], [0.003, 0.9999]], (4.6, -5.2), (45, 60)),  # rotation, larger output
    ([[1.0, 1 / 64], [0.0, 1.0]], (3.0, 0.0), (40, 44)),        # shear hitting exact integers
    ([[0.7, -0.7], [0.7, 0.7]], (20.3, -10.1), (40, 50)),       # far from identity: gathers
])
@pytest.mark.parametrize("interpolant", ["linear", "poly3", "poly5"])
def test_kernel_matches_brute_force_everywhere(matrix, offset, out_shape, interpolant):
    data = np.random.default_rng(7).normal(size=(30, 40)).astype(np.float32)
    amap = AffineMap(np.asarray(matrix, float), np.asarray(offset, float))
    out = resample([data], amap, out_shape, interpolant)[0]
    assert np.allclose(out, brute_force(data, amap, out_shape, interpolant), atol=2e-5)


