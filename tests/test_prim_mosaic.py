"""QECorrect and mosaicDetectors on hand-built 12-amplifier frames.

The frames are drawn independently of the package's geometry code: star
positions are defined in unbinned mosaic coordinates and every amplifier
pixel is placed with the GMOS-N Hamamatsu shifts and rotations written out
below, as in DRAGONS' ``geometry_conf.py``.
"""
import logging

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from gmoswidgets import dq
from gmoswidgets.errors import ParameterError
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.primitives.base import StepContext
from gmoswidgets.primitives.mosaic import QECorrect, mosaicDetectors
from helpers import centroid

DETID = "BI13-20-4k-1,BI12-09-4k-2,BI13-18-4k-2"
# (shift x, shift y) unbinned, rotation in degrees: CCD1, CCD2, CCD3.
PLACEMENT = [((-2115.95, -0.21739), -0.004), ((0.0, 0.0), 0.0), ((2115.48, 0.1727), -0.00537)]
CCD_W, CCD_H = 2048, 4224
CENTRE = ((CCD_W - 1) / 2.0, (CCD_H - 1) / 2.0)
SCALE = 0.0807 / 3600.0
SKY_WCS = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0,
           "CRPIX1": CENTRE[0] + 1, "CRPIX2": CENTRE[1] + 1,
           "CD1_1": -SCALE, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": SCALE}
SIGMA = 1.6  # binned pixels


def ctx():
    return StepContext(logger=logging.getLogger("test"))


def to_mosaic(ccd, x, y):
    """Unbinned CCD coordinates -> unbinned mosaic coordinates."""
    (sx, sy), rot = PLACEMENT[ccd]
    t = np.deg2rad(rot)
    dx, dy = x - CENTRE[0], y - CENTRE[1]
    return (np.cos(t) * dx - np.sin(t) * dy + CENTRE[0] + sx,
            np.sin(t) * dx + np.cos(t) * dy + CENTRE[1] + sy)


def make_frame(stars, binning=4, levels=(100.0, 100.0, 100.0), bad=(), dettype="S10892-N"):
    """A trimmed, float32, 12-amplifier GMOS-N frame with Gaussian stars.

    ``stars`` are (x, y, flux) in unbinned mosaic coordinates; ``bad`` is a list of
    (ccd, x, y) binned CCD pixels flagged bad_pixel.
    """
    b = binning
    phu = fits.Header({"INSTRUME": "GMOS-N", "DETTYPE": dettype, "DETID": DETID,
                       "EXPTIME": 100.0, "OBJECT": "starfield"})
    sky = WCS(fits.Header(SKY_WCS))
    exts = []
    for ccd in range(3):
        for amp in range(4):
            x1 = amp * 512
            ny, nx = CCD_H // b, 512 // b
            ux = x1 + b * np.arange(nx) + (b - 1) / 2.0
            uy = b * np.arange(ny) + (b - 1) / 2.0
            mx, my = to_mosaic(ccd, ux[None, :], uy[:, None])
            image = np.full((ny, nx), levels[ccd], dtype=np.float64)
            for sx, sy, flux in stars:
                r2 = ((mx - sx) ** 2 + (my - sy) ** 2) / (b * SIGMA) ** 2
                image += flux / (2 * np.pi * SIGMA ** 2) * np.exp(-0.5 * r2)
            detsec = f"[{ccd * CCD_W + x1 + 1}:{ccd * CCD_W + x1 + 512},1:{CCD_H}]"
            header = fits.Header({"CCDSUM": f"{b} {b}", "DATASEC": f"[1:{nx},1:{ny}]",
                                  "DETSEC": detsec, "CCDSEC": f"[{x1 + 1}:{x1 + 512},1:{CCD_H}]",
                                  "AMPNAME": f"amp{ccd}{amp}", "GAIN": 1.0,
                                  "RDNOISE": 4.0 + 0.1 * amp})
            # The WCS of an amplifier: binned pixel -> unbinned mosaic coordinates -> sky.
            # Exact for CCD2; CCD1/3 carry the CCD2-like approximation real files also have.
            header.update({k: v for k, v in SKY_WCS.items() if not k.startswith(("CRPIX", "CD"))})
            ox = PLACEMENT[ccd][0][0]
            header["CRPIX1"] = (SKY_WCS["CRPIX1"] - 1 - (x1 + ox) - (b - 1) / 2.0) / b + 1
            header["CRPIX2"] = (SKY_WCS["CRPIX2"] - 1 - (b - 1) / 2.0) / b + 1
            for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
                header[key] = SKY_WCS[key] * b
            mask = np.zeros((ny, nx), dtype=np.uint16)
            for bccd, bx, by in bad:
                if bccd == ccd and x1 // b <= bx < (x1 + 512) // b:
                    mask[by, bx - x1 // b] |= dq.BAD_PIXEL
            exts.append(Extension(image.astype(np.float32), header,
                                  np.full((ny, nx), 25.0, np.float32), mask))
    assert sky.wcs.ctype[0] == "RA---TAN"
    return Frame(phu, exts)


STARS = [(-1500.0, 1000.0, 5e4), (-900.3, 3100.7, 8e4), (300.2, 500.9, 6e4),
         (1200.6, 2500.4, 7e4), (2400.1, 1500.5, 5e4), (3300.7, 3800.2, 9e4),
         (1900.0, 40.0, 4e4)]


@pytest.fixture(scope="module")
def mosaicked():
    frame = make_frame(STARS, bad=[(0, 200, 300), (2, 100, 700)])
    before = [ext.data.copy() for ext in frame.exts]
    out = mosaicDetectors([frame], ctx())
    assert all(np.array_equal(a, ext.data) for a, ext in zip(before, frame.exts)), "input modified"
    return frame, out[0]


def test_mosaic_is_one_extension_with_gaps(mosaicked):
    _, mos = mosaicked
    assert len(mos.exts) == 1
    ext = mos.exts[0]
    ny, nx = ext.data.shape
    # Three CCDs of 512 binned columns plus two gaps of ~17 binned columns.
    assert nx == pytest.approx((2115.95 + 2115.48 + 2048) / 4, abs=2)
    assert ny in (CCD_H // 4, CCD_H // 4 + 1)
    assert ext.header["DATASEC"] == f"[1:{nx},1:{ny}]"
    assert ext.header["DETSEC"] == f"[1:{3 * CCD_W},1:{CCD_H}]"
    assert ext.header["RDNOISE"] == pytest.approx(4.15)
    column_nodata = (ext.mask & dq.NO_DATA).all(axis=0)
    gaps = np.flatnonzero(column_nodata[50:-50]) + 50
    assert 2 * 15 <= gaps.size <= 2 * 19
    assert np.all(ext.data[:, gaps] == 0)
    assert np.all(ext.variance[:, gaps] == 0)
    assert not (ext.mask[5:-5, gaps[0] - 3] & dq.NO_DATA).any()


def test_mosaic_star_positions_through_wcs(mosaicked):
    _, mos = mosaicked
    ext = mos.exts[0]
    out_wcs = WCS(ext.header)
    sky = WCS(fits.Header(SKY_WCS))
    for sx, sy, flux in STARS:
        ra, dec = sky.all_pix2world(sx, sy, 0)
        x, y = out_wcs.all_world2pix(ra, dec, 0)
        cx, cy, total = centroid(ext.data, x, y)
        assert abs(cx - x) < 0.05 and abs(cy - y) < 0.05, (sx, sy, cx - x, cy - y)
        assert total == pytest.approx(flux, rel=0.01)


def test_mosaic_background_variance_and_bad_pixels(mosaicked):
    _, mos = mosaicked
    ext = mos.exts[0]
    good = ext.mask == 0
    assert np.median(ext.data[good]) == pytest.approx(100.0, abs=0.01)
    # CCD2 is copied (VAR 25); CCD1 and CCD3 are interpolated with poly3, so their VAR is
    # 25 x the sum of the squared weights (< 1) at their nearly constant sub-pixel shift
    var = ext.variance[good]
    copied = var == 25.0
    assert 0.25 < copied.mean() < 0.40
    assert np.all((var[~copied] > 0.4 * 25.0) & (var[~copied] < 25.0))
    out_wcs, sky = WCS(ext.header), WCS(fits.Header(SKY_WCS))
    flagged = ext.mask & dq.BAD_PIXEL
    # each spreads over the pixels poly3 (the data's interpolant) takes it into: at most 4x4
    assert 8 <= np.count_nonzero(flagged) <= 32
    for ccd, bx, by in [(0, 200, 300), (2, 100, 700)]:
        mx, my = to_mosaic(ccd, 4 * bx + 1.5, 4 * by + 1.5)
        x, y = out_wcs.all_world2pix(*sky.all_pix2world(mx, my, 0), 0)
        ys, xs = np.nonzero(flagged[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4])
        assert xs.size >= 4
        assert np.all(np.abs(xs + int(x) - 3 - x) < 2) and np.all(np.abs(ys + int(y) - 3 - y) < 2)


def test_mosaic_sci_only_and_single_extension_passthrough():
    frame = make_frame([], binning=4)
    out = mosaicDetectors([frame], ctx(), sci_only=True)[0]
    assert out.exts[0].variance is None and out.exts[0].mask is None
    again = mosaicDetectors([out], ctx())[0]
    assert again is out


@pytest.mark.parametrize("interpolant", ["nearest", "linear", "spline3", "poly5"])
def test_mosaic_other_interpolants_place_stars(interpolant):
    stars = [(-1000.2, 2000.3, 5e4), (3000.6, 1000.1, 5e4)]
    ext = mosaicDetectors([make_frame(stars)], ctx(), interpolant=interpolant)[0].exts[0]
    out_wcs, sky = WCS(ext.header), WCS(fits.Header(SKY_WCS))
    tol = 0.3 if interpolant == "nearest" else 0.05
    for sx, sy, _ in stars:
        x, y = out_wcs.all_world2pix(*sky.all_pix2world(sx, sy, 0), 0)
        cx, cy, _ = centroid(ext.data, x, y)
        assert abs(cx - x) < tol and abs(cy - y) < tol


def test_qecorrect_matches_ccd_levels():
    frame = make_frame([], levels=(95.0, 100.0, 110.0))
    out = QECorrect([frame], ctx())[0]
    levels = [np.median(np.concatenate([out.exts[4 * c + a].data.ravel() for a in range(4)]))
              for c in range(3)]
    assert levels == pytest.approx([100.0, 100.0, 100.0], rel=1e-4)
    assert out.exts[0].variance[0, 0] == pytest.approx(25.0 * (100 / 95.0) ** 2, rel=1e-5)
    assert frame.exts[0].data[0, 0] == pytest.approx(95.0)  # input untouched


def test_qecorrect_common_factors_and_user_factors():
    a = make_frame([], levels=(90.0, 100.0, 110.0))
    b = make_frame([], levels=(110.0, 100.0, 90.0))
    common = QECorrect([a, b], ctx())
    f1 = np.mean([100 / 90.0, 100 / 110.0])
    for frame, level in zip(common, (90.0, 110.0)):
        assert frame.exts[0].data[5, 5] == pytest.approx(level * f1, rel=1e-4)
    separate = QECorrect([a, b], ctx(), common=False)
    assert separate[1].exts[0].data[5, 5] == pytest.approx(100.0, rel=1e-4)
    user = QECorrect([a], ctx(), factors=[2.0, 0.5])[0]
    assert user.exts[0].data[5, 5] == pytest.approx(180.0)
    assert user.exts[11].data[5, 5] == pytest.approx(55.0)
    assert user.exts[5].data[5, 5] == pytest.approx(100.0)
    with pytest.raises(ParameterError):
        QECorrect([a], ctx(), factors=[1.0])


def test_qecorrect_skips_other_detectors():
    frame = make_frame([], levels=(90.0, 100.0, 110.0))
    frame.phu["DETTYPE"] = "SDSU II CCD"
    assert QECorrect([frame], ctx())[0] is frame


def test_mosaic_without_variance_or_dq_still_flags_gaps():
    frame = make_frame([], binning=4)
    for ext in frame.exts:
        ext.variance = ext.mask = None
    ext = mosaicDetectors([frame], ctx())[0].exts[0]
    assert ext.variance is None
    gaps = (ext.mask & dq.NO_DATA).all(axis=0)
    assert 30 <= gaps.sum() <= 40 and np.all(ext.data[:, gaps] == 0)


def test_central_ccd_is_copied_verbatim():
    """CCD2 is placed by whole pixels: each amplifier's SCI, VAR and DQ appear unchanged in
    the mosaic, side by side, in one row (pasted straight from the extensions)."""
    frame = make_frame(STARS, bad=[(1, 10, 20), (1, 200, 700)])
    rng = np.random.default_rng(4)
    for ext in frame.exts:
        ext.data += rng.normal(0.0, 1.0, ext.data.shape).astype(np.float32)
        ext.variance += rng.uniform(0.0, 1.0, ext.variance.shape).astype(np.float32)
    out = mosaicDetectors([frame], ctx())[0].exts[0]
    amps = frame.exts[4:8]
    ny, nx = amps[0].data.shape
    (y, x), = [(y, x) for y, x in np.argwhere(out.data == amps[0].data[0, 0])
               if np.array_equal(out.data[y:y + ny, x:x + nx], amps[0].data)]
    for k, amp in enumerate(amps):
        window = (slice(y, y + ny), slice(x + k * nx, x + (k + 1) * nx))
        assert np.array_equal(out.data[window], amp.data)
        assert np.array_equal(out.variance[window], amp.variance)
        assert np.array_equal(out.mask[window], amp.mask)
    assert out.mask[y + 20, x + 10] == dq.BAD_PIXEL and out.mask[y + 700, x + 200] == dq.BAD_PIXEL


def test_tile_reuses_buffers_and_zeroes_what_no_extension_covers():
    """A CCD read without one amplifier is tiled (not pasted): the missing columns are 0, also
    in a reused buffer that held other values, and the mosaic has SCI 0 and DQ 0 there."""
    from gmoswidgets.gmos import geometry
    frame = make_frame(STARS)
    del frame.exts[5]                                    # CCD2's second amplifier
    group = geometry.ccd_groups(frame)[1]
    shape = geometry.tile_shape(group, 4, 4)
    assert not geometry.parts_cover(geometry.tile_parts(frame, group, "data"), shape)
    buffers = {"data": np.full(shape, 7.0, np.float32), "mask": np.full(shape, 7, np.uint16)}
    reused = geometry.tile_planes(frame, group, buffers=buffers)
    fresh = geometry.tile_planes(frame, group)
    assert reused["data"] is buffers["data"] and reused["mask"] is buffers["mask"]
    for plane in ("data", "variance", "mask"):
        assert np.array_equal(reused[plane], fresh[plane])
    assert np.all(fresh["data"][:, 128:256] == 0) and np.all(fresh["data"][:, :128] > 0)
    out = mosaicDetectors([frame], ctx())[0].exts[0]
    first = frame.exts[4].data
    (y, x), = [(y, x) for y, x in np.argwhere(out.data == first[0, 0])
               if np.array_equal(out.data[y:y + shape[0], x:x + 128], first)]
    missing = (slice(y, y + shape[0]), slice(x + 128, x + 256))
    assert np.all(out.data[missing] == 0) and np.all(out.mask[missing] == 0)
