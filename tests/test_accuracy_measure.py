"""The astrometry measurement of tests/accuracy.py on a small image with known stars.

Stars are drawn with the simulator's PSF and found by the pipeline's own
detectSources code (``find_sources``); the measurement must count the clean,
isolated stars only.  Found on the GMOS-S Hamamatsu 4x4 stack (issue 10):
a faint star 1.2 pixels from a brighter one was matched to the pair's
catalogue entry (0.30"), and a star cut by the illuminated field's edge
had its centroid pulled 1.2 pixels inwards (0.38"); together with an
unresolved pair they took the rms over the 0.05" limit.
"""
from types import SimpleNamespace

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from accuracy import Measured, astrometry
from gmoswidgets import dq
from gmoswidgets.data.sky import PSF_FWHM_ARCSEC, render_stars
from gmoswidgets.primitives.photometry import DETECTION_PARAMS, add_world_columns, find_sources

PIXEL_SCALE = 0.16
SKY = 200.0


def _wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [100.0, 100.0]
    wcs.wcs.crval = [150.0, -30.0]
    wcs.wcs.cd = [[-PIXEL_SCALE / 3600, 0.0], [0.0, PIXEL_SCALE / 3600]]
    return wcs


def _measured(x, y, flux, *, unlit_rows=None):
    """Render true stars on sky with Poisson noise, detect them, and wrap them as accuracy.measure does."""
    rng = np.random.default_rng(4)
    wcs = _wcs()
    image = np.zeros((240, 240), np.float32)
    render_stars(image, x, y, flux, PSF_FWHM_ARCSEC / PIXEL_SCALE)
    expected = image + SKY
    data = rng.poisson(expected).astype(np.float32) - np.float32(SKY)
    mask = np.zeros(image.shape, dq.DTYPE)
    if unlit_rows is not None:
        mask[unlit_rows] = dq.UNILLUMINATED
        data[unlit_rows] = 0.0
    defaults = {p.name: p.default for p in DETECTION_PARAMS}
    table, _ = find_sources(data, expected, mask, **defaults)
    ext = SimpleNamespace(objcat=add_world_columns(table, wcs.to_header()), data=data, mask=mask)
    ra, dec = wcs.all_pix2world(x, y, 0)
    stars = Table({"ra": ra, "dec": dec, "flux_e": np.asarray(flux, float),
                   "saturated": np.zeros(len(x), bool)})
    truth = SimpleNamespace(stars=stars, pixel_scale=PIXEL_SCALE, psf_fwhm_arcsec=PSF_FWHM_ARCSEC)
    return Measured(ext, truth, wcs, np.asarray(x, float), np.asarray(y, float))


#: Four clean, isolated stars (sub-pixel positions).
CLEAN = ([40.3, 190.6, 60.8, 170.2], [50.7, 60.1, 120.4, 130.9], [30000.0] * 4)


def test_clean_isolated_stars_measure_the_wcs():
    rms, count = astrometry(_measured(*CLEAN))
    assert count == 4
    assert rms < 0.01


def test_blended_and_truncated_stars_are_left_out():
    x, y, flux = (list(v) for v in CLEAN)
    # a faint star 1.2 pixels from a bright one: one catalogue entry at their light centroid
    x += [120.0, 121.2]
    y += [60.0, 60.0]
    flux += [60000.0, 20000.0]
    # a star 2 pixels inside the unlit rows at the top of the image
    x += [110.4]
    y += [205.5]
    flux += [30000.0]
    m = _measured(x, y, flux, unlit_rows=slice(208, None))
    rms, count = astrometry(m)
    assert count == 4, "only the four clean, isolated stars count"
    assert rms < 0.01
