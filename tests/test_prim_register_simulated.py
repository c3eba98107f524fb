"""detectSources + adjustWCSToReference on the simulated tutorial (4x4), against the truth.

The science frames go through the real primitives up to mosaicDetectors
(no bias or flat: the overscan level is removed, which is enough to find
stars), then sources are detected on the mosaics and the WCS of frames 2-5,
deliberately spoiled by a few arcsec, is corrected against frame 1.
"""
import logging

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from gmoswidgets.frame import read_frame
from gmoswidgets.gmos.keywords import TIMESTAMP_KEYWORDS
from gmoswidgets.primitives import StepContext, get_primitive
from gmoswidgets.primitives.photometry import add_world_columns


def _run(name, frames, **params):
    """Run a primitive as the engine does (outputs stamped with its timestamp keyword)."""
    prim = get_primitive(name)
    outputs = prim(frames, StepContext(logging.getLogger("test.simulated")), **params)
    for frame in outputs:
        frame.phu[TIMESTAMP_KEYWORDS[name]] = "2026-01-01T00:00:00"
    return outputs


@pytest.fixture(scope="module")
def mosaics(tutorial4):
    frames = [read_frame(path) for path in tutorial4.science]
    frames = _run("prepare", frames)
    frames = _run("addDQ", frames)
    frames = _run("addVAR", frames, read_noise=True)
    frames = _run("overscanCorrect", frames)
    frames = _run("ADUToElectrons", frames)
    frames = _run("addVAR", frames, poisson_noise=True)
    frames = _run("mosaicDetectors", frames)
    return _run("detectSources", frames), tutorial4.truth


def _offsets_to_truth(frame, truth):
    """Matched unflagged sources: count and median (dRA cos Dec, dDec) to the truth, arcsec."""
    cat = frame.exts[0].objcat
    found = SkyCoord(cat["X_WORLD"], cat["Y_WORLD"], unit="deg")
    stars = SkyCoord(truth.stars["ra"], truth.stars["dec"], unit="deg")
    idx, sep, _ = found.match_to_catalog_sky(stars)
    ok = (sep.arcsec < 1.0) & (np.asarray(cat["FLAGS"]) == 0)
    dra, ddec = stars[idx[ok]].spherical_offsets_to(found[ok])
    return int(ok.sum()), np.median(dra.arcsec), np.median(ddec.arcsec)


def test_sources_on_mosaic_match_truth(mosaics):
    frames, truth = mosaics
    # the PSF's FWHM broadened by the pixel (a box of variance 1/12) and the mosaic's interpolation
    fwhm_pix = np.hypot(truth.psf_fwhm_arcsec / truth.pixel_scale, np.sqrt(8 * np.log(2) / 12))
    for frame in frames:
        cat = frame.exts[0].objcat
        nmatch, dra, ddec = _offsets_to_truth(frame, truth)
        assert nmatch > 150
        assert abs(dra) < 0.01 and abs(ddec) < 0.01          # header WCS = truth
        good = np.asarray(cat["FLAGS"]) == 0
        assert np.median(cat["FWHM_IMAGE"][good]) == pytest.approx(fwhm_pix, rel=0.08)
        assert frame.exts[0].objmask.any()


def test_alignment_recovers_spoiled_wcs(mosaics, caplog):
    frames, truth = mosaics
    spoiled = [frames[0]]
    rng = np.random.default_rng(3)
    for frame in frames[1:]:
        bad = frame.copy()
        hdr = bad.exts[0].header
        hdr["CRPIX1"] += rng.uniform(-12, 12)        # up to ~3.9" at 0.32"/pix: within first_pass
        hdr["CRPIX2"] += rng.uniform(-12, 12)
        add_world_columns(bad.exts[0].objcat, hdr)
        spoiled.append(bad)
    assert max(np.hypot(*_offsets_to_truth(f, truth)[1:]) for f in spoiled[1:]) > 0.5
    with caplog.at_level(logging.INFO):
        aligned = _run("adjustWCSToReference", spoiled)
    assert caplog.text.count("sources matched") == 4
    ref = _offsets_to_truth(aligned[0], truth)
    for frame in aligned[1:]:
        nmatch, dra, ddec = _offsets_to_truth(frame, truth)
        assert nmatch > 150
        assert abs(dra - ref[1]) < 0.01 and abs(ddec - ref[2]) < 0.01
