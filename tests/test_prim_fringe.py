"""fringeCorrect and makeFringeFrame on small synthetic per-amplifier frames."""
import logging

import numpy as np
import pytest

from gmoswidgets import dq
from gmoswidgets.errors import CalibrationNotFoundError
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.gmos.keywords import FRINGEIM
from gmoswidgets.primitives import StepContext, get_primitive
from gmoswidgets.primitives.fringe import fringe_scale
from test_prim_photometry import gaussian_stars, gmos_phu, observe, star_field, tan_header

AMP_SHAPE = (256, 128)          # (rows, columns) of one trimmed 2x2-binned amplifier
NAMPS = 2
SKY = 800.0
FRINGE_AMPLITUDE = 40.0         # e-, peak of the unit pattern in the science frames


def fringe_pattern():
    """Unit-amplitude fringe pattern of each amplifier (fixed to the detector)."""
    yy, xx = np.mgrid[0:AMP_SHAPE[0], 0:AMP_SHAPE[1] * NAMPS].astype(float)
    full = np.sin(2 * np.pi * (xx / 23.0 + 0.4 * np.sin(2 * np.pi * yy / 97.0))) \
        * np.cos(2 * np.pi * yy / 41.0)
    return [full[:, i * AMP_SHAPE[1]:(i + 1) * AMP_SHAPE[1]] for i in range(NAMPS)]


def amp_header(index, crval):
    """Trimmed amplifier header: sections (unbinned DETSEC) and a WCS of the whole detector."""
    hdr = tan_header((AMP_SHAPE[0], AMP_SHAPE[1] * NAMPS), crval=crval)
    hdr["CRPIX1"] -= index * AMP_SHAPE[1]
    nx = AMP_SHAPE[1]
    hdr["DATASEC"] = f"[1:{nx},1:{AMP_SHAPE[0]}]"
    hdr["DETSEC"] = f"[{index * nx * 2 + 1}:{(index + 1) * nx * 2},1:{AMP_SHAPE[0] * 2}]"
    hdr["CCDSEC"] = hdr["DETSEC"]
    return hdr


def science_frame(rng, pattern, amplitude=FRINGE_AMPLITUDE, dither=(0.0, 0.0), nstars=12,
                  filter2="z_G0304", obsid="GN-2017A-Q-1-1", name="sci.fits"):
    """Per-amp frame in electrons: sky + fringes + stars (shifted with the dither) + noise."""
    crval = (150.0 + dither[0] / 3600.0, 2.0 + dither[1] / 3600.0)
    width = AMP_SHAPE[1] * NAMPS
    xs, ys = star_field(rng, (AMP_SHAPE[0], width), nstars, margin=10, spacing=20)
    stars = gaussian_stars((AMP_SHAPE[0], width), xs, ys, np.full(nstars, 4e4), 4.0)
    exts = []
    for i in range(NAMPS):
        cols = slice(i * AMP_SHAPE[1], (i + 1) * AMP_SHAPE[1])
        expected = SKY + 15.0 * i + amplitude * pattern[i] + stars[:, cols]
        data, var = observe(expected, rng)
        exts.append(Extension(data, amp_header(i, crval), var, np.zeros(AMP_SHAPE, dq.DTYPE)))
    frame = Frame(gmos_phu(FILTER2=filter2, OBSID=obsid), exts)
    frame.filename = name
    return frame, stars


def fringe_frame(pattern, scale=1.0, obsid="GN-2017A-Q-9-9"):
    exts = [Extension((scale * p).astype(np.float32), amp_header(i, (150.0, 2.0)),
                      np.full(AMP_SHAPE, 0.5, np.float32), np.zeros(AMP_SHAPE, dq.DTYPE))
            for i, p in enumerate(pattern)]
    frame = Frame(gmos_phu(OBSID=obsid, PROCFRNG="yes"), exts)
    frame.filename = "fringe_fringe.fits"
    return frame


def _ctx(fringe=None):
    def lookup(frame, caltype):
        assert caltype == "processed_fringe"
        if fringe is None:
            raise CalibrationNotFoundError(f"no processed_fringe for {frame.filename}")
        return fringe, None, "test"
    return StepContext(logging.getLogger("test.fringe"), calibration_lookup=lookup)


def _run(name, frames, ctx, **params):
    prim = get_primitive(name)
    return prim(frames, ctx, **params)


def fringe_amplitude(frame, pattern, stars):
    """Least-squares amplitude of ``pattern`` in ``frame``, away from the stars."""
    num = den = 0.0
    for i, ext in enumerate(frame.exts):
        cols = slice(i * AMP_SHAPE[1], (i + 1) * AMP_SHAPE[1])
        sky = stars[:, cols] < 1.0
        s = ext.data[sky] - ext.data[sky].mean()
        f = pattern[i][sky] - pattern[i][sky].mean()
        num += float(np.dot(s, f))
        den += float(np.dot(f, f))
    return num / den


@pytest.fixture(scope="module")
def pattern():
    return fringe_pattern()


def test_correction_removes_fringes(pattern):
    rng = np.random.default_rng(11)
    sci, stars = science_frame(rng, pattern)
    fringe = fringe_frame(pattern, scale=0.37)           # another observation: must be scaled
    before = fringe_amplitude(sci, pattern, stars)
    assert before == pytest.approx(FRINGE_AMPLITUDE, rel=0.05)
    out = _run("fringeCorrect", [sci], _ctx(fringe))[0]
    after = fringe_amplitude(out, pattern, stars)
    assert abs(after) < 0.1 * abs(before)
    assert abs(after) < 0.5                               # in fact close to the noise limit
    assert out.phu[FRINGEIM] == "fringe_fringe.fits"
    x = (before - after) / 0.37                           # scale used
    assert np.allclose(out.exts[0].variance, sci.exts[0].variance + x ** 2 * 0.5, rtol=1e-4)
    assert sci.exts[0].data is not out.exts[0].data and FRINGEIM not in sci.phu


def test_least_squares_scale_ignores_stars_and_flags(pattern):
    rng = np.random.default_rng(12)
    sci, stars = science_frame(rng, pattern, nstars=30)
    sci.exts[1].data[100:110, :] = 5e4                    # a flagged saturated block
    sci.exts[1].mask[100:110, :] = dq.SATURATED
    fringe = fringe_frame(pattern, scale=2.0)
    from gmoswidgets.primitives._calib import matched_planes
    scale, npix = fringe_scale(sci.exts, matched_planes(sci, fringe, "fringe"))
    assert scale == pytest.approx(FRINGE_AMPLITUDE / 2.0, rel=0.02)
    assert npix < NAMPS * AMP_SHAPE[0] * AMP_SHAPE[1] - 10 * AMP_SHAPE[1]


def test_same_observation_and_user_scale(pattern):
    rng = np.random.default_rng(13)
    sci, stars = science_frame(rng, pattern, obsid="GN-2017A-Q-9-9")
    fringe = fringe_frame(pattern, scale=FRINGE_AMPLITUDE, obsid="GN-2017A-Q-9-9")
    out = _run("fringeCorrect", [sci], _ctx(fringe))[0]     # same OBSID: scale 1
    assert np.allclose(out.exts[0].data, sci.exts[0].data - fringe.exts[0].data, atol=1e-3)
    out = _run("fringeCorrect", [sci], _ctx(fringe), scale_factor=[0.5])[0]
    assert np.allclose(out.exts[1].data, sci.exts[1].data - 0.5 * fringe.exts[1].data, atol=1e-3)


def test_skipped_when_not_needed(pattern, caplog):
    rng = np.random.default_rng(14)
    sci, _ = science_frame(rng, pattern, filter2="i_G0302")
    with caplog.at_level(logging.INFO):
        out = _run("fringeCorrect", [sci], _ctx(None))[0]
    assert "fringe correction not needed for Hamamatsu-N i; skipping" in caplog.text
    assert np.array_equal(out.exts[0].data, sci.exts[0].data) and FRINGEIM not in out.phu


def test_missing_fringe_frame_raises(pattern):
    rng = np.random.default_rng(15)
    sci, _ = science_frame(rng, pattern)
    with pytest.raises(CalibrationNotFoundError):
        _run("fringeCorrect", [sci], _ctx(None))


def _dithered(rng, pattern, offsets):
    return [science_frame(rng, pattern, dither=d, name=f"sci{i}.fits")
            for i, d in enumerate(offsets)]


@pytest.mark.parametrize("subtract_median_image", [False, True])
def test_make_fringe_frame_recovers_pattern(pattern, subtract_median_image):
    rng = np.random.default_rng(16)
    frames = _dithered(rng, pattern, [(0, 0), (10, 0), (0, 10), (-10, 0), (0, -10)])
    out = _run("makeFringeFrame", [f for f, _ in frames], _ctx(),
               subtract_median_image=subtract_median_image)
    assert len(out) == 1
    made = out[0]
    assert made.shapes == frames[0][0].shapes
    noise = np.sqrt(SKY + 16.0) / np.sqrt(len(frames))   # per-pixel noise of a 5-frame mean
    for i, ext in enumerate(made.exts):
        truth = FRINGE_AMPLITUDE * pattern[i]
        resid = ext.data - truth
        assert abs(np.median(resid)) < 20.0               # background removed (per-frame level)
        assert np.std(resid - np.median(resid)) < 1.2 * noise   # no star residuals
        # the object masks leave fewer inputs near stars: judged by the frame's own VAR
        assert np.std((resid - np.median(resid)) / np.sqrt(ext.variance)) < 1.1
        f = (pattern[i] - pattern[i].mean()).ravel()
        amplitude = np.dot(ext.data.ravel() - ext.data.mean(), f) / np.dot(f, f)
        assert amplitude == pytest.approx(FRINGE_AMPLITUDE, rel=0.03)
    # and it corrects a new science frame of the same pattern
    sci, stars = science_frame(rng, pattern, dither=(5, 5))
    before = fringe_amplitude(sci, pattern, stars)
    corrected = _run("fringeCorrect", [sci], _ctx(made))[0]
    assert abs(fringe_amplitude(corrected, pattern, stars)) < 0.1 * abs(before)


def test_make_fringe_frame_needs_dithers_and_inputs(pattern, caplog):
    rng = np.random.default_rng(17)
    frames = [f for f, _ in _dithered(rng, pattern, [(0, 0), (1, 0), (0, 1)])]
    with caplog.at_level(logging.WARNING):
        assert _run("makeFringeFrame", frames, _ctx()) == []
    assert "insufficient dithering" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _run("makeFringeFrame", frames[:2], _ctx()) == []
    assert "fewer than 3" in caplog.text


def _noise_over_sqrt_var(frame, stars):
    """Empirical sky noise over sqrt(median VAR), pooled over the extensions, away from stars."""
    ratios = []
    for i, ext in enumerate(frame.exts):
        cols = slice(i * AMP_SHAPE[1], (i + 1) * AMP_SHAPE[1])
        sky = stars[:, cols] < 0.1
        ratios.append(np.std(ext.data[sky]) / np.sqrt(np.median(ext.variance[sky])))
    return float(np.mean(ratios))


def test_variance_of_a_frame_corrected_by_its_own_fringe_frame(pattern):
    """A frame in its own fringe frame shares its noise: VAR takes the covariance out."""
    rng = np.random.default_rng(18)
    frames = _dithered(rng, pattern, [(0, 0), (10, 0), (0, 10), (-10, 0), (0, -10)])
    made = _run("makeFringeFrame", [f.copy() for f, _ in frames], _ctx())[0]
    assert {made.phu[f"IMCMB{i:03d}"] for i in range(1, 6)} == {f.filename for f, _ in frames}
    independent = made.copy()
    for i in range(1, 6):
        del independent.phu[f"IMCMB{i:03d}"]
    own, other = [], []
    for frame, stars in frames:
        own.append(_noise_over_sqrt_var(_run("fringeCorrect", [frame.copy()], _ctx(made))[0], stars))
        other.append(_noise_over_sqrt_var(_run("fringeCorrect", [frame.copy()], _ctx(independent))[0],
                                          stars))
    # leave-one-out: VAR_S (1 - 1/5) is the truth, DRAGONS' VAR_S (1 + 1/5) overstates it by ~22 %
    assert np.median(own) == pytest.approx(1.0, abs=0.05)
    assert np.median(other) < 0.88


def test_science_recipe_does_not_import_scipy_ndimage():
    """Building the science recipe's steps imports its modules (fringe, crs, resample,
    mosaic...) but not scipy.ndimage (0.2 s), which only fringe frames, cleaning and the
    B-spline interpolants use."""
    from test_startup import loaded_after
    code = """
        from gmoswidgets.primitives import default_table
        from gmoswidgets.recipes import RECIPES
        from gmoswidgets.steps import build_steps
        steps = build_steps(RECIPES.get('reduce'), default_table())
        assert 'fringeCorrect' in [step.primitive for step in steps]
        """
    assert loaded_after(code, ("scipy.ndimage", "gmoswidgets.primitives.fringe")) == [
        "gmoswidgets.primitives.fringe"]
