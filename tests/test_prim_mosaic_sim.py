"""mosaicDetectors -> resampleToCommonFrame -> flagCosmicRaysByStacking on simulated data.

The tutorial science frames (4x4 binning) are brought to the primitives'
input state with a minimal, independent reduction (per-row overscan level,
trim, gain, division by the *true* flat), then checked against the
simulator's ground truth: star positions through the output WCS, and the
cosmic rays it deposited.
"""
import logging

import numpy as np
import pytest
import sep
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from gmoswidgets import dq
from gmoswidgets.frame import Extension, read_frame
from gmoswidgets.primitives.base import StepContext
from gmoswidgets.primitives.crs import flagCosmicRaysByStacking
from gmoswidgets.primitives.mosaic import mosaicDetectors
from gmoswidgets.primitives.resample import resampleToCommonFrame
from gmoswidgets.sections import Section

UNBINNED_SCALE = 0.0807


def ctx():
    return StepContext(logger=logging.getLogger("test"))


def minimal_reduction(path, truth):
    """Raw file -> trimmed float32 electrons, flat-fielded with the true flat, VAR and DQ."""
    frame = read_frame(path)
    exts = []
    for index, ext in enumerate(frame.exts):
        raw = ext.data.astype(np.float32)
        biassec = Section.from_string(ext.header["BIASSEC"])
        datasec = Section.from_string(ext.header["DATASEC"])
        level = raw[biassec.slices].mean(axis=1)[datasec.y1:datasec.y2, None]
        gain = np.float32(ext.header["GAIN"])
        sci = (raw[datasec.slices] - level) * gain
        var = np.maximum(sci, 0) + np.float32(ext.header["RDNOISE"]) ** 2
        flat = truth.true_flat(index).astype(np.float32)
        dark = flat < 0.05
        flat = np.where(dark, 1.0, flat)
        header = ext.header.copy()
        header["DATASEC"] = Section(0, sci.shape[1], 0, sci.shape[0]).to_string()
        header["CRPIX1"] -= datasec.x1
        header["CRPIX2"] -= datasec.y1
        mask = np.where(dark, dq.UNILLUMINATED, 0).astype(np.uint16)
        exts.append(Extension(sci / flat, header, var / flat ** 2, mask))
    frame.exts = exts
    return frame


def good_stars(truth, name, wcs, ext, fluxmin=2e4, margin=60):
    """Indices and pixel positions of bright, isolated, unsaturated, illuminated stars."""
    stars = truth.stars
    x, y = wcs.all_world2pix(np.asarray(stars["ra"]), np.asarray(stars["dec"]), 0)
    ny, nx = ext.data.shape
    pointing = truth.frame(name).pointing
    radius = SkyCoord(stars["ra"] * u.deg, stars["dec"] * u.deg).separation(
        SkyCoord(pointing[0] * u.deg, pointing[1] * u.deg)).arcsec / UNBINNED_SCALE
    flux = np.asarray(stars["flux_e"]) * truth.frame(name).exptime / 10.0
    dist = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(dist, np.inf)
    ok = ((radius < truth.meta["illuminated_radius_unbinned"] - margin)
          & ~np.asarray(stars["saturated"]) & (flux > fluxmin) & (dist.min(axis=1) > 12)
          & (x > 10) & (x < nx - 11) & (y > 10) & (y < ny - 11))
    keep = [i for i in np.flatnonzero(ok)
            if not (ext.mask[int(y[i]) - 8:int(y[i]) + 9, int(x[i]) - 8:int(x[i]) + 9]
                    & dq.NO_DATA).any()]
    return np.array(keep), x[keep], y[keep]


def cosmic_ray_positions(truth, name, wcs, min_electrons=0.0):
    """Output-pixel (x, y) of the cosmic-ray hits the simulator deposited in a frame."""
    hits = truth.cosmic_rays(name)
    hits = hits[hits["electrons"] > min_electrons]
    xs, ys = [], []
    for ext_index in np.unique(hits["ext"]):
        rows = hits[hits["ext"] == ext_index]
        ra, dec = truth.wcs(name, ext_index).all_pix2world(rows["x"], rows["y"], 0)
        x, y = wcs.all_world2pix(ra, dec, 0)
        xs.append(x)
        ys.append(y)
    return (np.concatenate(xs), np.concatenate(ys)) if xs else (np.zeros(0), np.zeros(0))


def clean_stars(truth, name, wcs, ext, **kwargs):
    """good_stars without those a cosmic ray fell near (their centroids are not the PSF's)."""
    index, x, y = good_stars(truth, name, wcs, ext, **kwargs)
    crx, cry = cosmic_ray_positions(truth, name, wcs)
    if crx.size:
        near = np.hypot(x[:, None] - crx[None, :], y[:, None] - cry[None, :]).min(axis=1) < 8
        index, x, y = index[~near], x[~near], y[~near]
    return index, x, y


def measured_positions(ext, x, y, fwhm):
    data = np.ascontiguousarray(ext.data, dtype=np.float32)
    sub = data - sep.Background(data, mask=ext.mask != 0).back()
    xw, yw, _ = sep.winpos(sub, x, y, fwhm / 2.355)
    return xw, yw


@pytest.fixture(scope="module")
def chain(tutorial4):
    truth = tutorial4.truth
    names = truth.science_names()
    frames = [minimal_reduction(p, truth) for p in tutorial4.science]
    mosaics = mosaicDetectors(frames, ctx())
    aligned = resampleToCommonFrame(mosaics, ctx())
    return truth, names, frames, mosaics, aligned


def test_mosaic_star_positions_match_truth(chain):
    truth, names, _, mosaics, _ = chain
    fwhm = truth.psf_fwhm_arcsec / truth.pixel_scale
    ext = mosaics[0].exts[0]
    wcs = WCS(ext.header)
    _, x, y = clean_stars(truth, names[0], wcs, ext)
    xw, yw = measured_positions(ext, x, y, fwhm)
    nx = ext.data.shape[1]
    ccd = np.digitize(x, [nx / 3, 2 * nx / 3])
    assert set(ccd) == {0, 1, 2} and len(x) > 20  # stars on all three CCDs
    assert np.max(np.abs(xw - x)) < 0.1 and np.max(np.abs(yw - y)) < 0.1
    for c in range(3):  # no systematic offset of a CCD
        assert abs(np.mean(xw[ccd == c] - x[ccd == c])) < 0.02
        assert abs(np.mean(yw[ccd == c] - y[ccd == c])) < 0.02


def test_aligned_frames_share_star_positions(chain):
    truth, names, _, _, aligned = chain
    fwhm = truth.psf_fwhm_arcsec / truth.pixel_scale
    ref = aligned[0].exts[0]
    wcs = WCS(ref.header)
    assert len({f.exts[0].data.shape for f in aligned}) == 1
    for name, frame in zip(names, aligned):
        ext = frame.exts[0]
        _, x, y = clean_stars(truth, name, wcs, ext)
        assert len(x) > 20
        xw, yw = measured_positions(ext, x, y, fwhm)
        assert np.max(np.abs(xw - x)) < 0.1 and np.max(np.abs(yw - y)) < 0.1, name


def test_cosmic_rays_flagged_and_stars_spared(chain):
    truth, names, _, _, aligned = chain
    flagged = flagCosmicRaysByStacking(aligned, ctx())
    out_wcs = WCS(aligned[0].exts[0].header)
    found = total = 0
    for name, frame in zip(names, flagged):
        ext = frame.exts[0]
        cr = (ext.mask & dq.COSMIC_RAY) != 0
        x, y = cosmic_ray_positions(truth, name, out_wcs, min_electrons=3000)
        for xi, yi in zip(np.round(x).astype(int), np.round(y).astype(int)):
            if ext.mask[yi, xi] & (dq.UNILLUMINATED | dq.NO_DATA):
                continue
            total += 1
            found += bool(cr[yi, xi])
        _, sx, sy = good_stars(truth, name, out_wcs, ext, fluxmin=1e5)
        for xi, yi in zip(np.round(sx).astype(int), np.round(sy).astype(int)):
            assert not cr[yi - 2:yi + 3, xi - 2:xi + 3].any(), (name, xi, yi)
    assert total > 20
    # Hits on sources (inside the object mask) or where only one or two frames overlap
    # cannot be found by comparison with the median; they are a few per cent.
    assert found >= 0.85 * total
