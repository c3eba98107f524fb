"""flagCosmicRaysByStacking and scaleCountsToReference on hand-built aligned images."""
import logging

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from gmoswidgets import dq
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.primitives.base import StepContext
from gmoswidgets.primitives.crs import (flagCosmicRaysByStacking, flux_scaling,
                                        scaleCountsToReference)

SHAPE = (220, 300)
BRIGHT = [(60.3, 50.7, 4e6), (200.2, 150.4, 2e6), (150.0, 100.0, 8e5)]
FAINT = [(30.5, 180.2, 3e3), (250.7, 40.3, 5e3)]
READ_VAR = 16.0


def ctx():
    return StepContext(logger=logging.getLogger("test"))


def make_stack(n=5, seed=0):
    """Aligned frames with different sky levels and seeing; cosmic rays in each.

    Returns the frames and, per frame, a boolean map of the injected cosmic-ray pixels.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    frames, truths = [], []
    for i in range(n):
        sky = 200.0 + 15.0 * i
        sigma = 1.6 + 0.15 * i  # seeing changes from frame to frame
        model = np.full(SHAPE, sky)
        for x, y, flux in BRIGHT + FAINT:
            model += flux / (2 * np.pi * sigma ** 2) * np.exp(
                -0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma ** 2)
        var = model + READ_VAR
        data = model + rng.normal(size=SHAPE) * np.sqrt(var)
        truth = np.zeros(SHAPE, bool)
        for _ in range(25):
            x, y = rng.integers(5, SHAPE[1] - 5), rng.integers(5, SHAPE[0] - 5)
            if min((x - bx) ** 2 + (y - by) ** 2 for bx, by, _ in BRIGHT) < 15 ** 2:
                continue
            length = rng.integers(1, 4)
            data[y, x:x + length] += rng.uniform(800, 5000)
            truth[y, x:x + length] = True
        mask = np.zeros(SHAPE, np.uint16)
        mask[:, 0] = dq.BAD_PIXEL
        header = fits.Header({"DATASEC": f"[1:{SHAPE[1]},1:{SHAPE[0]}]"})
        frame = Frame(fits.Header({"INSTRUME": "GMOS-N", "EXPTIME": 100.0}),
                      [Extension(data.astype(np.float32), header, var.astype(np.float32), mask)])
        frame.filename = f"f{i}.fits"
        frames.append(frame)
        truths.append(truth)
    return frames, truths


@pytest.fixture(scope="module")
def flagged():
    frames, truths = make_stack()
    masks = [f.exts[0].mask.copy() for f in frames]
    out = flagCosmicRaysByStacking(frames, ctx())
    for frame, mask in zip(frames, masks):
        assert np.array_equal(frame.exts[0].mask, mask), "input DQ modified"
    return frames, truths, out


def test_cosmic_rays_are_flagged(flagged):
    _, truths, out = flagged
    for frame, truth in zip(out, truths):
        cr = (frame.exts[0].mask & dq.COSMIC_RAY) != 0
        assert cr[truth].all()


def test_stars_and_sky_are_not_flagged(flagged):
    _, truths, out = flagged
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    near_star = np.zeros(SHAPE, bool)
    for x, y, _ in BRIGHT + FAINT:
        near_star |= (xx - x) ** 2 + (yy - y) ** 2 < 12 ** 2
    for frame, truth in zip(out, truths):
        cr = (frame.exts[0].mask & dq.COSMIC_RAY) != 0
        grown = truth.copy()
        grown[1:] |= truth[:-1]
        grown[:-1] |= truth[1:]
        grown[:, 1:] |= truth[:, :-1]
        grown[:, :-1] |= truth[:, 1:]
        assert not (cr & near_star & ~grown).any()
        assert (cr & ~grown).sum() <= 2  # at most a stray noise pixel
        assert (frame.exts[0].mask[:, 0] == dq.BAD_PIXEL).all()  # bad column kept, not a CR


def test_dilation_is_a_disk():
    frames, truths = make_stack(n=3, seed=3)
    plain = flagCosmicRaysByStacking(frames, ctx(), dilation=0)
    grown = flagCosmicRaysByStacking(frames, ctx(), dilation=1)
    for a, b, truth in zip(plain, grown, truths):
        cra = (a.exts[0].mask & dq.COSMIC_RAY) != 0
        crb = (b.exts[0].mask & dq.COSMIC_RAY) != 0
        assert np.array_equal(cra, truth)
        ys, xs = np.nonzero(truth)
        for y, x in zip(ys, xs):
            assert crb[y - 1, x] and crb[y + 1, x] and crb[y, x - 1] and crb[y, x + 1]
        assert crb.sum() < 5 * cra.sum()  # a plus-shaped disk, not a 3x3 square


def test_hit_tail_flagged_where_one_image_covers_the_sky():
    """Where only one image is lit, a hit's faint tail (6 sigma, diagonal to its core) is flagged too."""
    frames, truths = make_stack(n=3, seed=5)
    for frame in frames[1:]:
        frame.exts[0].mask[:, :90] |= dq.UNILLUMINATED
    ext = frames[0].exts[0]
    y, x = 120, 40  # on sky, away from the stars at (60, 51) and (30, 180)
    sigma = float(np.sqrt(ext.variance[y, x]))
    ext.data[y, x] += 3000.0
    ext.data[y + 1, x + 1] += 6 * sigma
    truth = truths[0].copy()
    truth[y, x] = truth[y + 1, x + 1] = True
    cr = (flagCosmicRaysByStacking(frames, ctx(), dilation=0)[0].exts[0].mask & dq.COSMIC_RAY) != 0
    assert cr[y, x] and cr[y + 1, x + 1]
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    near_star = np.zeros(SHAPE, bool)
    for sx, sy, _ in BRIGHT + FAINT:
        near_star |= (xx - sx) ** 2 + (yy - sy) ** 2 < 12 ** 2
    assert not (cr & near_star & ~truth).any()


def test_faint_streak_flagged_from_its_core():
    """A streak 6 sigma above the sky, with a 30 sigma core at one end, is flagged all along."""
    frames, truths = make_stack(n=5, seed=7)
    ext = frames[2].exts[0]
    y, x0 = 150, 230  # on sky, away from the stars
    sky = 200.0 + 15.0 * 2  # make_stack's sky level of the third frame
    sigma = np.sqrt(ext.variance[y, x0:x0 + 8])
    ext.data[y, x0:x0 + 8] = sky + np.r_[30.0, [6.0] * 7] * sigma
    cr = (flagCosmicRaysByStacking(frames, ctx(), dilation=0)[2].exts[0].mask & dq.COSMIC_RAY) != 0
    assert cr[y, x0:x0 + 8].all()
    assert (cr & ~truths[2]).sum() <= 8 + 2


def test_single_frame_is_passed_through():
    frames, _ = make_stack(n=1)
    assert flagCosmicRaysByStacking(frames, ctx())[0] is frames[0]


# -- scaleCountsToReference ------------------------------------------------------------

def make_image(name, exptime, fluxes, ra0=150.0, dec0=2.0, jitter=0.0):
    rng = np.random.default_rng(len(name))
    n = len(fluxes)
    ra = ra0 + np.arange(n) * 3e-4 + rng.normal(scale=jitter, size=n)
    dec = dec0 + np.arange(n) * 2e-4
    cat = Table({"X_WORLD": ra, "Y_WORLD": dec, "FLUX_AUTO": np.asarray(fluxes, float),
                 "FLUXERR_AUTO": np.sqrt(np.asarray(fluxes, float))})
    ext = Extension(np.full((10, 10), 100.0, np.float32), fits.Header(),
                    np.full((10, 10), 4.0, np.float32), np.zeros((10, 10), np.uint16), cat)
    frame = Frame(fits.Header({"INSTRUME": "GMOS-N", "EXPTIME": exptime}), [ext])
    frame.filename = name
    return frame


FLUXES = np.array([1e4, 2e4, 5e4, 8e4, 1.5e5, 3e5])


def test_scale_by_exposure_time_by_default():
    a, b = make_image("a.fits", 60.0, FLUXES), make_image("b.fits", 30.0, FLUXES)
    out = scaleCountsToReference([a, b], ctx())
    assert out[0] is a
    assert out[1].exts[0].data[0, 0] == pytest.approx(200.0)
    assert out[1].exts[0].variance[0, 0] == pytest.approx(16.0)
    assert out[1].phu["EXPTIME"] == 60.0 and out[1].phu["ORIGTEXP"] == 30.0
    assert b.phu["EXPTIME"] == 30.0 and b.exts[0].data[0, 0] == 100.0  # input untouched
    again = scaleCountsToReference([make_image("c.fits", 15.0, FLUXES), out[1]], ctx())
    assert again[1].phu["ORIGTEXP"] == 30.0  # never overwritten


def test_scale_by_source_fluxes_within_tolerance():
    a = make_image("a.fits", 60.0, FLUXES)
    b = make_image("b.fits", 60.0, 0.95 * FLUXES)
    out = scaleCountsToReference([a, b], ctx(), tolerance=0.1)
    assert out[1].exts[0].data[0, 0] == pytest.approx(100.0 / 0.95, rel=1e-4)
    far = make_image("far.fits", 60.0, 0.5 * FLUXES)
    out = scaleCountsToReference([a, far], ctx(), tolerance=0.1)
    assert out[1] is far  # falls back to the exposure-time ratio, 1
    unmatched = make_image("u.fits", 60.0, 0.95 * FLUXES, ra0=151.0)
    assert scaleCountsToReference([a, unmatched], ctx(), tolerance=0.1)[1] is unmatched


def test_use_common_sources_only():
    a = make_image("a.fits", 60.0, FLUXES)
    b = make_image("b.fits", 60.0, 0.9 * FLUXES)
    # c lacks the last three sources; the others in b are brighter (variable) there.
    c = make_image("c.fits", 60.0, 0.9 * FLUXES[:3])
    b.exts[0].objcat["FLUX_AUTO"][3:] *= 1.5
    common = scaleCountsToReference([a, b, c], ctx(), tolerance=0.5)
    assert common[1].exts[0].data[0, 0] == pytest.approx(100.0 / 0.9, rel=1e-3)


def test_flux_scaling_rejects_outliers():
    x = np.array([1e4, 2e4, 4e4, 8e4, 1.6e5, 3.2e5, 5e4])
    y = 1.25 * x
    y[-1] *= 3  # a variable star
    assert flux_scaling(x, y, np.sqrt(x), np.sqrt(y)) == pytest.approx(1.25, rel=1e-6)
    assert flux_scaling(x[:-1], y[:-1]) == pytest.approx(1.25)


def test_object_mask_growth_is_scipys_binary_dilation():
    from scipy import ndimage

    from gmoswidgets.primitives.crs import _grow
    rng = np.random.default_rng(5)
    objects = rng.random((61, 47)) > 0.97
    objects[0, 5] = objects[-1, -1] = objects[30, 0] = True     # at the edges
    for times in (1, 2, 3):
        assert np.array_equal(_grow(objects, times),
                              ndimage.binary_dilation(objects, iterations=times))


def test_sharpness_windows_repeat_the_edge_pixels():
    """_sharp's 5x5 windows are those of the image padded with its edge pixels."""
    from numpy.lib.stride_tricks import sliding_window_view

    from gmoswidgets.primitives.crs import _sharp
    rng = np.random.default_rng(6)
    data = rng.normal(100, 5, (40, 30)).astype(np.float32)
    index = np.arange(data.size)
    data.flat[rng.choice(data.size, 60, replace=False)] += 400   # hits, some at the edges
    threshold = np.full(index.size, 30, np.float32)
    ys, xs = np.unravel_index(index, data.shape)
    windows = sliding_window_view(np.pad(data, 2, mode="edge"), (5, 5))[ys, xs]
    m5 = np.median(windows.reshape(-1, 25), axis=1)
    m3 = np.median(windows[:, 1:4, 1:4].reshape(-1, 9), axis=1)
    excess = data.flat[index] - m5
    expected = ((excess > threshold) & (excess > 5.0 * np.maximum(m3 - m5, 0))
                & (excess > 0.5 * (data.flat[index] - 100.0)))
    assert expected.sum() > 20
    assert np.array_equal(_sharp(data, index, threshold, 100.0), expected)


def test_threads_flag_the_same_pixels_as_one_thread(monkeypatch):
    """The frames and row chunks on two threads give the sequential run's DQ, bit for bit
    (a frame without DQ and one without VAR included)."""
    from gmoswidgets.executor import ThreadExecutor
    from gmoswidgets.primitives import crs
    monkeypatch.setattr(crs, "_CHUNK_ROWS", 32)   # several chunks per thread
    frames, _ = make_stack(n=5, seed=7)
    frames[1].exts[0].mask = None
    frames[3].exts[0].variance = None
    serial = flagCosmicRaysByStacking(frames, ctx())
    with ThreadExecutor(max_workers=2) as executor:
        threads = flagCosmicRaysByStacking(frames, StepContext(executor=executor))
    for a, b in zip(serial, threads):
        assert np.array_equal(a.exts[0].mask, b.exts[0].mask)
    assert sum(((f.exts[0].mask & dq.COSMIC_RAY) != 0).sum() for f in serial) > 50


def test_median_stack_is_numpys_median_of_the_usable_pixels():
    """The stack median, count and variance against numpy on the usable pixels (bad_pixel,
    no_data and unilluminated left out; a frame without DQ; NaN pixels)."""
    from gmoswidgets.primitives.crs import median_stack
    rng = np.random.default_rng(11)
    shape = (300, 70)   # more rows than a chunk
    frames, planes, variances = [], [], []
    for i, bits in enumerate((dq.BAD_PIXEL, dq.NO_DATA, dq.UNILLUMINATED, None)):
        data = rng.normal(100 + 10 * i, 5, shape).astype(np.float32)
        data[rng.random(shape) < 0.02] = np.nan
        var = rng.uniform(20, 30, shape).astype(np.float32)
        mask = None
        usable = np.ones(shape, bool)
        if bits is not None:
            mask = np.where(rng.random(shape) < 0.3, bits, dq.SATURATED).astype(dq.DTYPE)
            mask[:, :5] = bits      # columns no image covers
            usable = mask != bits
        else:
            data[:, :5] = np.nan
        frame = Frame(fits.Header(), [Extension(data, fits.Header(), var, mask)])
        frames.append(frame)
        planes.append(np.where(usable, data - np.float32(10 * i), np.nan))
        variances.append(np.where(usable & np.isfinite(data), var, 0))
    offsets = [-10.0 * i for i in range(len(frames))]
    median, variance, count = median_stack(frames, offsets)
    stack = np.array(planes, np.float32)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(stack, axis=0)
    assert np.array_equal(median, expected, equal_nan=True)
    expected_count = np.isfinite(stack).sum(axis=0)
    assert np.array_equal(count, expected_count)
    assert (count[:, :5] == 0).all() and np.isnan(median[:, :5]).all()
    covered = expected_count > 0
    expected_var = np.pi / 2 * np.sum(variances, axis=0)[covered] / expected_count[covered] ** 2
    assert np.allclose(variance[covered], expected_var, rtol=1e-5)
    assert np.isinf(variance[~covered]).all()


def test_stack_median_orders_infinities_and_nan_as_numpy_sorts_them():
    """The sorting network's median, count and variance on values with +-inf and NaN: the
    mean of the two middle finite-count ranks of the values numpy sorts before the NaNs."""
    from gmoswidgets.numerics.combine import sorting_network
    from gmoswidgets.primitives import crs_kernels
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 8):
        stack = rng.integers(-3, 4, (n, 3, 301)).astype(np.float32)
        draw = rng.random(stack.shape)
        stack[draw < 0.2] = np.nan
        stack[(draw >= 0.2) & (draw < 0.25)] = np.inf
        stack[(draw >= 0.25) & (draw < 0.3)] = -np.inf
        var = rng.random(stack.shape).astype(np.float32)
        median = np.empty(stack.shape[1:], np.float32)
        variance, counts = np.empty_like(median), np.empty(stack.shape[1:], np.uint8)
        crs_kernels.stack_median(stack, var, True, sorting_network(n), median, variance, counts)
        ordered = np.sort(stack, axis=0)
        finite = np.isfinite(stack)
        count = finite.sum(axis=0)
        assert np.array_equal(counts, count)
        low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[None] // 2, axis=0)[0]
        high = np.take_along_axis(ordered, count[None] // 2, axis=0)[0]
        with np.errstate(invalid="ignore"):
            expected = np.where(count > 0, np.float32(0.5) * (low + high), np.nan)
        assert np.array_equal(median, expected, equal_nan=True)
        total = np.where(finite, var, 0).sum(axis=0, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            expected_var = np.where(count > 0, np.pi / 2 * total / count ** 2, np.inf)
        assert np.allclose(variance, expected_var, rtol=1e-6)
