"""adjustWCSToReference on synthetic star fields with injected WCS errors."""
import logging

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from gmoswidgets.errors import GmosError
from gmoswidgets.primitives import StepContext, get_primitive
from gmoswidgets.primitives.register import AffineFit, apply_affine_to_header, match_catalogs
from test_prim_photometry import PIXSCALE, gaussian_stars, gmos_phu, make_frame, observe, tan_header

SHAPE = (400, 440)
CENTRE = (150.0, 2.0)


def _sky_stars(rng, n):
    """Random star sky positions covering the field (deg) and fluxes."""
    half = 0.5 * np.array(SHAPE[::-1]) * PIXSCALE / 3600.0
    ra = CENTRE[0] + rng.uniform(-half[0], half[0], n) / np.cos(np.radians(CENTRE[1]))
    dec = CENTRE[1] + rng.uniform(-half[1], half[1], n)
    return ra, dec, 10 ** rng.uniform(4.0, 5.0, n)


def _exposure(rng, stars, true_header, header, phu=None, name="x.fits"):
    """Frame drawn with the WCS of ``true_header``, carrying ``header``; sources detected."""
    ra, dec, flux = stars
    x, y = WCS(true_header).all_world2pix(ra, dec, 0)
    data, var = observe(gaussian_stars(SHAPE, x, y, flux, 4.5) + 300.0, rng)
    frame = make_frame(data, var, header, phu=phu, name=name)
    detect = get_primitive("detectSources")
    return detect([frame], StepContext())[0]


def _shifted(header, dra_arcsec, ddec_arcsec, rotation_deg=0.0):
    """A header pointing (dra, ddec) arcsec away from ``header``, optionally rotated."""
    crval = (header["CRVAL1"] + dra_arcsec / 3600 / np.cos(np.radians(CENTRE[1])),
             header["CRVAL2"] + ddec_arcsec / 3600)
    return tan_header(SHAPE, crval=crval, rotation_deg=rotation_deg)


def _max_error_arcsec(header, true_header):
    """Largest sky distance over the image between the WCS of two headers."""
    yy, xx = np.mgrid[0:SHAPE[0]:40j, 0:SHAPE[1]:40j]
    a = SkyCoord(*WCS(header).all_pix2world(xx.ravel(), yy.ravel(), 0), unit="deg")
    b = SkyCoord(*WCS(true_header).all_pix2world(xx.ravel(), yy.ravel(), 0), unit="deg")
    return a.separation(b).arcsec.max()


def _align(frames, **params):
    prim = get_primitive("adjustWCSToReference")
    return prim(frames, StepContext(logging.getLogger("test.register")), **params)


@pytest.fixture(scope="module")
def stars():
    return _sky_stars(np.random.default_rng(7), 60)


def test_recovers_injected_shift(stars, caplog):
    rng = np.random.default_rng(1)
    ref_hdr = tan_header(SHAPE, crval=CENTRE)
    ref = _exposure(rng, stars, ref_hdr, ref_hdr.copy(), name="ref.fits")
    true_in = _shifted(ref_hdr, 12.0, -8.0)                 # the dither
    wrong_in = _shifted(true_in, 1.7, -2.3)                  # pointing error in the header
    frame = _exposure(rng, stars, true_in, wrong_in, name="in.fits")
    assert _max_error_arcsec(frame.exts[0].header, true_in) > 2.5
    with caplog.at_level(logging.INFO):
        out = _align([ref, frame])
    assert out[0].exts[0].header == ref.exts[0].header
    assert frame.exts[0].header == wrong_in                   # input untouched
    assert _max_error_arcsec(out[1].exts[0].header, true_in) < 0.01
    assert "sources matched" in caplog.text
    # OBJCAT sky positions were updated: matched stars agree with the reference's
    cat, rcat = out[1].exts[0].objcat, ref.exts[0].objcat
    a = SkyCoord(cat["X_WORLD"], cat["Y_WORLD"], unit="deg")
    b = SkyCoord(rcat["X_WORLD"], rcat["Y_WORLD"], unit="deg")
    _, sep, _ = a.match_to_catalog_sky(b)
    assert np.median(sep.arcsec) < 0.02


def test_culled_sources_give_the_same_answer(stars):
    rng = np.random.default_rng(8)
    ref_hdr = tan_header(SHAPE, crval=CENTRE)
    ref = _exposure(rng, stars, ref_hdr, ref_hdr.copy())
    true_in = _shifted(ref_hdr, 3.0, 4.0)
    frame = _exposure(rng, stars, true_in, _shifted(true_in, -2.0, 1.0))
    out = _align([ref, frame], cull_sources=True)[1]
    assert _max_error_arcsec(out.exts[0].header, true_in) < 0.01


def test_fits_rotation_when_asked(stars):
    rng = np.random.default_rng(2)
    ref_hdr = tan_header(SHAPE, crval=CENTRE)
    ref = _exposure(rng, stars, ref_hdr, ref_hdr.copy())
    true_in = _shifted(ref_hdr, -6.0, 5.0, rotation_deg=0.15)
    wrong_in = _shifted(true_in, 1.0, 1.5)                    # rotation missing from the header
    frame = _exposure(rng, stars, true_in, wrong_in)
    shift_only = _align([ref, frame])[1]
    rotated = _align([ref, frame], rotate=True)[1]
    assert _max_error_arcsec(shift_only.exts[0].header, true_in) > 0.05
    assert _max_error_arcsec(rotated.exts[0].header, true_in) < 0.01


def test_too_few_sources_falls_back_to_offsets(caplog):
    rng = np.random.default_rng(3)
    few = _sky_stars(rng, 2)
    ref_hdr = tan_header(SHAPE, crval=CENTRE)
    ref = _exposure(rng, few, ref_hdr, ref_hdr.copy(), phu=gmos_phu(POFFSET=0.0, QOFFSET=0.0))
    # DRAGONS' GMOS convention: detector x offset = POFFSET / pixscale, flipped on GMOS-N
    # bottom port (INPORT=1); y offset = QOFFSET / pixscale.  Input pixel = ref pixel + offset.
    poff, qoff = 4.0, -3.0
    true_in = ref_hdr.copy()
    true_in["CRPIX1"] += -poff / PIXSCALE
    true_in["CRPIX2"] += qoff / PIXSCALE
    wrong_in = _shifted(true_in, 20.0, 20.0)
    frame = _exposure(rng, few, true_in, wrong_in, phu=gmos_phu(POFFSET=poff, QOFFSET=qoff))
    with caplog.at_level(logging.INFO):
        out = _align([ref, frame])
    assert any(r.levelname == "WARNING" and "matched" in r.message for r in caplog.records)
    assert _max_error_arcsec(out[1].exts[0].header, true_in) < 0.01

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        out = _align([ref, frame], fallback=None)
    assert "left unchanged" in caplog.text
    assert out[1].exts[0].header == frame.exts[0].header


def test_offsets_method_uses_pa_rotation():
    ref_hdr = tan_header(SHAPE, crval=CENTRE)
    data = np.zeros(SHAPE, np.float32)
    ref = make_frame(data, data, ref_hdr, phu=gmos_phu(PA=0.0))
    frame = make_frame(data, data, tan_header(SHAPE, crval=(10, 10)), phu=gmos_phu(PA=0.5))
    out = _align([ref, frame], method="offsets")[1]
    cd_ref = WCS(ref_hdr).wcs.cd
    cd_out = WCS(out.exts[0].header).wcs.cd
    rel = np.linalg.solve(cd_ref, cd_out)            # pixel rotation in -> ref
    angle = np.degrees(np.arctan2(rel[1, 0], rel[0, 0]))
    assert angle == pytest.approx(0.0 - 0.5, abs=1e-9)   # DRAGONS: Rotation2D(PA_ref - PA_in)
    centre = WCS(out.exts[0].header).all_pix2world([[ref_hdr["CRPIX1"], ref_hdr["CRPIX2"]]], 1)[0]
    assert np.allclose(centre, CENTRE, atol=1e-9)


def test_match_catalogs_with_outliers():
    rng = np.random.default_rng(4)
    dst = rng.uniform(0, 500, (80, 2))
    src = dst - np.array([7.3, -4.1]) + rng.normal(0, 0.02, dst.shape)
    src = np.vstack([src[:60], rng.uniform(0, 500, (30, 2))])   # 20 lost, 30 spurious
    fit, pairs = match_catalogs(src, dst, first_pass=31.0, match_radius=3.0)
    assert fit.nmatched >= 58
    assert np.allclose(fit.shift, [7.3, -4.1], atol=0.02)


def test_apply_affine_is_exact():
    hdr = tan_header(SHAPE, crval=CENTRE, rotation_deg=20.0)
    angle = np.radians(0.3)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    fit = AffineFit(1.001 * rotation, np.array([3.2, -1.7]))
    new = hdr.copy()
    apply_affine_to_header(new, fit)
    pix = np.array([[1.0, 1.0], [100.0, 300.0], [440.0, 10.0]])
    expected = WCS(hdr).all_pix2world(fit(pix), 1)
    assert np.allclose(WCS(new).all_pix2world(pix, 1), expected, atol=1e-10)


def test_needs_single_extension_frames(stars):
    rng = np.random.default_rng(5)
    hdr = tan_header(SHAPE, crval=CENTRE)
    ref = _exposure(rng, stars, hdr, hdr.copy())
    two = ref.copy()
    two.exts.append(two.exts[0].copy())
    with pytest.raises(GmosError, match="single-extension"):
        _align([ref, two])
