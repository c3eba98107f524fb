"""prepare, addDQ, addVAR, overscanCorrect, biasCorrect, ADUToElectrons, normalizeFlat,
flatCorrect and the store primitives, on small hand-made raw GMOS-N Hamamatsu frames.

The frames follow the real layout (12 amplifiers, 32 overscan columns right of
the data on odd extensions and left on even ones) at 4x4 binning.  Their
AMPNAMEs are not in the gain tables, so the descriptors read the header
GAIN / RDNOISE, which the frames' noise is made with.
"""
import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets import dq
from gmoswidgets.errors import CalibrationNotFoundError, FileProblem
from gmoswidgets.frame import Extension, Frame, read_frame
from gmoswidgets.primitives import get_primitive
from gmoswidgets.primitives.ccd import overscan_levels
from gmoswidgets.primitives.flat import flat_level
from gmoswidgets.sections import Section
from helpers import run_steps as run

BIN = 4
OVERSCAN_COLS = 32
GAIN, RDNOISE, LEVEL = 1.6, 4.0, 450.0
CCDS = ("BI13-20-4k-1", "BI12-09-4k-2", "BI13-18-4k-2")
BIAS_STEPS = [("prepare", {"require_wcs": False}), ("addDQ", {"add_illum_mask": False}),
              ("addVAR", {"read_noise": True}), ("overscanCorrect", {})]


def make_raw(kind="bias", seed=0, binning=BIN, signal=0.0, name=None, wcs=True):
    """A raw 12-amplifier frame: bias level + row ramp (data and overscan) + noise + signal (e-)."""
    rng = np.random.default_rng(seed)
    phu = fits.Header()
    phu.update({"INSTRUME": "GMOS-N", "OBSERVAT": "Gemini-North", "TELESCOP": "Gemini-North",
                "OBSTYPE": "BIAS" if kind == "bias" else "OBJECT",
                "OBJECT": {"bias": "Bias", "flat": "Twilight"}.get(kind, "starfield"),
                "OBSCLASS": "science" if kind == "science" else "dayCal", "OBSMODE": "IMAGE",
                "GRATING": "MIRROR", "DETTYPE": "S10892-N", "DETID": ",".join(CCDS),
                "AMPINTEG": 11880, "DATE-OBS": "2017-06-13", "TIME-OBS": "12:00:00",
                "EXPTIME": 0.0 if kind == "bias" else 10.0, "DETRO1X": 1, "DETRO1XS": 6144,
                "DETRO1Y": 1, "DETRO1YS": 4224, "FILTER1": "open1-6", "FILTER2": "i_G0302",
                "NAMPS": 4})
    exts = []
    for ccd in range(3):
        for k in range(4):
            nx, ny = 512 // binning, 4224 // binning
            if k % 2 == 0:
                data, bias = Section(0, nx, 0, ny), Section(nx, nx + OVERSCAN_COLS, 0, ny)
            else:
                bias = Section(0, OVERSCAN_COLS, 0, ny)
                data = Section(OVERSCAN_COLS, OVERSCAN_COLS + nx, 0, ny)
            x0 = ccd * 2048 + k * 512
            hdr = fits.Header({"CCDSUM": f"{binning} {binning}", "DATASEC": data.to_string(),
                               "BIASSEC": bias.to_string(),
                               "DETSEC": Section(x0, x0 + 512, 0, 4224).to_string(),
                               "CCDSEC": Section(k * 512, k * 512 + 512, 0, 4224).to_string(),
                               "AMPNAME": f"test-amp-{ccd}{k}", "CCDNAME": CCDS[ccd],
                               "GAIN": GAIN, "RDNOISE": RDNOISE})
            if wcs:
                hdr.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 100.0,
                            "CRPIX2": 200.0, "CRVAL1": 10.0, "CRVAL2": 20.0, "CD1_1": -2e-5,
                            "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 2e-5})
            rows = np.arange(ny)[:, None]
            arr = (LEVEL + 3.0 * np.sin(rows / 40.0)
                   + rng.normal(0, RDNOISE / GAIN, (ny, nx + OVERSCAN_COLS)))
            value = signal(ccd, k) if callable(signal) else signal
            if np.any(value):
                arr[data.slices] += rng.poisson(np.broadcast_to(value, data.shape)) / GAIN
            exts.append(Extension(np.clip(np.round(arr), 0, 65535).astype(np.uint16), hdr))
    frame = Frame(phu, exts)
    frame.filename = name or f"N20170613S{seed:04d}.fits"
    return frame


def bias_lookup(bias):
    """A calibration lookup that knows one processed bias and nothing else (no BPM)."""
    def lookup(frame, caltype):
        if caltype != "processed_bias":
            raise CalibrationNotFoundError(f"no {caltype} for {frame.filename}")
        return bias, None, "test"
    return lookup


@pytest.fixture(scope="module")
def master_bias():
    return run([make_raw("bias", seed=s) for s in range(5)],
               BIAS_STEPS + [("stackBiases", {}), ("storeProcessedBias", {})])[0]


# -- registration -------------------------------------------------------------------

def test_primitives_are_registered_with_dragons_defaults():
    expect = {"prepare": "_prepared", "addDQ": "_dqAdded", "addVAR": "_varAdded",
              "overscanCorrect": "_overscanCorrected", "biasCorrect": "_biasCorrected",
              "ADUToElectrons": "_ADUToElectrons", "normalizeFlat": "_normalized",
              "flatCorrect": "_flatCorrected", "storeProcessedBias": "_bias",
              "storeProcessedFlat": "_flat", "storeProcessedFringe": "_fringe",
              "storeProcessedScience": "_stack"}
    for name, suffix in expect.items():
        assert get_primitive(name).suffix == suffix, name
    assert get_primitive("prepare").defaults() == {"require_wcs": True}
    assert get_primitive("addDQ").defaults() == {"static_bpm": "default", "user_bpm": None,
                                                 "add_illum_mask": True}
    assert get_primitive("addVAR").defaults() == {"read_noise": False, "poisson_noise": False}
    over = get_primitive("overscanCorrect").defaults()
    assert over == {"function": "none", "order": None, "nbiascontam": None, "lsigma": 3.0,
                    "hsigma": 3.0, "niter": 0, "grow": 0}
    bias = get_primitive("biasCorrect")
    assert bias.defaults() == {"bias": None, "do_cal": "procmode"}
    assert bias.calibrations == ("processed_bias",)
    assert get_primitive("flatCorrect").calibrations == ("processed_flat",)


# -- prepare ------------------------------------------------------------------------

def test_prepare_converts_to_float32_and_writes_keywords():
    raw = make_raw("bias")
    [out] = run([raw], [("prepare", {"require_wcs": False})])
    assert raw[0].data.dtype == np.uint16                      # input untouched
    assert all(ext.data.dtype == np.float32 for ext in out)
    hdr = out[0].header
    assert hdr["GAIN"] == GAIN and hdr["RDNOISE"] == RDNOISE and hdr["BUNIT"] == "adu"
    assert hdr["SATLEVEL"] == 65535 and hdr["NONLINEA"] == 65535   # GMOS: non-linear = saturated
    assert "PREPARED" in out.tags and "UNPREPARED" not in out.tags
    hdr["SATLEVEL"] = 1234.0                                   # descriptors now read the header
    assert out.descriptor("saturation_level")[0] == 1234.0


def test_prepare_names_the_odd_file():
    good = make_raw("bias", seed=1)
    odd = make_raw("bias", seed=2, binning=2, name="N20170613S0099.fits")
    with pytest.raises(FileProblem, match=r"N20170613S0099.*binning"):
        run([good, odd], [("prepare", {"require_wcs": False})])
    nowcs = make_raw("bias", seed=3, wcs=False, name="nowcs.fits")
    with pytest.raises(FileProblem, match="nowcs.fits.*WCS"):
        run([nowcs], [("prepare", {})])
    run([nowcs], [("prepare", {"require_wcs": False})])


# -- addDQ --------------------------------------------------------------------------

def test_addDQ_flags_saturated_but_never_non_linear_pixels():
    """DRAGONS: saturated (4) at the saturation level; GMOS's non-linear level equals it, so no 2."""
    raw = make_raw("science", signal=100.0)
    raw[5].data[10, 50] = 65535
    raw[5].data[11, 50] = 62000        # the old 91 %-of-65535 "non-linear" rule flagged this
    [out] = run([raw], [("prepare", {}), ("addDQ", {"add_illum_mask": False})])
    mask = out[5].mask
    assert mask.dtype == np.uint16
    assert mask[10, 50] == dq.SATURATED and mask[11, 50] == 0
    assert np.count_nonzero(mask) == 1


def test_addDQ_illumination_mask_is_dragons_mask():
    """Exact agreement per mask is in test_illumination_masks.py; here the layout facts."""
    raw = make_raw("flat", signal=1000.0)
    [out] = run([raw], [("prepare", {}), ("addDQ", {})])
    unillum = [(ext.mask & dq.UNILLUMINATED) != 0 for ext in out]
    # GMOS-N Hamamatsu: the two outer amplifiers of CCD1 and CCD3 are entirely unilluminated
    for index in (0, 1, 10, 11):
        datasec = Section.from_string(out[index].header["DATASEC"])
        assert unillum[index][datasec.slices].all()
    # CCD2: the middle is lit; overscan columns are never flagged
    ccd2_left = unillum[4][Section.from_string(out[4].header["DATASEC"]).slices]
    assert not ccd2_left[528, 20:].any()
    assert not unillum[4][:, 128:].any()
    # the calibration recipes switch the mask off
    [bias] = run([make_raw("bias")], [("prepare", {}), ("addDQ", {"add_illum_mask": False})])
    assert not any(((ext.mask & dq.UNILLUMINATED) != 0).any() for ext in bias)


def test_addDQ_ors_a_user_bpm(tmp_path):
    raw = make_raw("science", signal=50.0)
    bpm_exts = []
    for ext in raw:
        mask = np.zeros(ext.data.shape, np.uint16)
        bpm_exts.append(Extension(mask, ext.header.copy()))
    bpm_exts[3].data[100, 7] = dq.BAD_PIXEL
    bpm = Frame(raw.phu.copy(), bpm_exts)
    path = bpm.write(tmp_path / "bpm.fits")
    [out] = run([raw], [("prepare", {}), ("addDQ", {"user_bpm": str(path),
                                                    "add_illum_mask": False})])
    assert out[3].mask[100, 7] == dq.BAD_PIXEL
    assert np.count_nonzero(out[3].mask) == 1


def test_addDQ_asks_the_calibration_service_for_a_bpm_by_default(caplog):
    """DRAGONS: static_bpm='default' asks for processed_bpm; none found is logged, not fatal."""
    asked = []

    def lookup(frame, caltype):
        asked.append(caltype)
        raise CalibrationNotFoundError("no processed_bpm for this frame")

    run([make_raw("bias")], [("prepare", {}), ("addDQ", {"static_bpm": None,
                                                         "add_illum_mask": False})], lookup)
    assert asked == []
    [out] = run([make_raw("bias")], [("prepare", {}), ("addDQ", {"add_illum_mask": False})],
                lookup)
    assert asked == ["processed_bpm"]
    assert "no static bad pixels flagged" in caplog.text
    assert not any(ext.mask.any() for ext in out)


# -- addVAR -------------------------------------------------------------------------

def test_addVAR_read_noise_in_adu_and_no_double_counting():
    [out] = run([make_raw("bias")], [("prepare", {}), ("addVAR", {"read_noise": True})])
    np.testing.assert_allclose(out[0].variance, (RDNOISE / GAIN) ** 2, rtol=1e-6)
    assert out.phu["VARNOISE"] == "read"
    [again] = run([out], [("addVAR", {"read_noise": True})])
    np.testing.assert_allclose(again[0].variance, (RDNOISE / GAIN) ** 2, rtol=1e-6)


def test_addVAR_poisson_in_electrons(master_bias):
    [out] = run([make_raw("flat", signal=2000.0)],
                BIAS_STEPS + [("biasCorrect", {}), ("ADUToElectrons", {}),
                              ("addVAR", {"poisson_noise": True})],
                bias_lookup(master_bias))
    ext = out[4]
    expected = RDNOISE ** 2 + np.maximum(ext.data, 0) + master_bias[4].variance * GAIN ** 2
    np.testing.assert_allclose(ext.variance, expected, rtol=1e-4)
    assert out.phu["VARNOISE"] == "read,Poisson"


# -- overscanCorrect ----------------------------------------------------------------

def test_overscanCorrect_subtracts_rows_and_trims_every_plane():
    raw = make_raw("bias")
    [out] = run([raw], BIAS_STEPS)
    ny, nx = 4224 // BIN, 512 // BIN
    for index, ext in enumerate(out):
        assert ext.data.shape == ext.variance.shape == ext.mask.shape == (ny, nx)
        hdr = ext.header
        assert hdr["DATASEC"] == f"[1:{nx},1:{ny}]" and "BIASSEC" not in hdr
        assert hdr["DETSEC"] == raw[index].header["DETSEC"]
        left = index % 2 == 1                            # overscan left of the data
        assert hdr["CRPIX1"] == pytest.approx(100.0 - (OVERSCAN_COLS if left else 0))
        # nbiascontam=4 columns next to the data and 1 at the far edge are dropped
        assert hdr["OVERSEC"] == (f"[2:28,1:{ny}]" if left else f"[{nx + 5}:{nx + 31},1:{ny}]")
        assert hdr["OVERSCAN"] == pytest.approx(LEVEL, abs=1.0)
        assert hdr["SATLEVEL"] == pytest.approx(65535 - hdr["OVERSCAN"])
        assert hdr["OVERRDNS"] == pytest.approx(RDNOISE, rel=0.1)
        # the row ramp is gone: residual = read noise + the noise of 27-column row means
        assert abs(float(ext.data.mean())) < 0.1
        assert ext.data.std() == pytest.approx(RDNOISE / GAIN * np.sqrt(1 + 1 / 27), rel=0.05)
    assert {"OVERSCAN_SUBTRACTED", "OVERSCAN_TRIMMED"} <= out.tags
    assert "TRIMOVER" in out.phu


@pytest.mark.parametrize("function,order,follows", [
    ("poly", None, False), ("chebyshev", 3, False), ("spline3", None, True), ("spline3", 20, True)])
def test_overscanCorrect_fitted_functions(function, order, follows):
    [out] = run([make_raw("bias")], BIAS_STEPS[:3] + [("overscanCorrect", {
        "function": function, "order": order, "niter": 2})])
    # the frames carry a 3-ADU row sine of period 251 rows: splines with enough pieces
    # follow it, low-order polynomials cannot (residual = noise + the sine's rms)
    noise = RDNOISE / GAIN
    limit = 1.1 * noise if follows else 1.05 * np.hypot(noise, 3.0 / np.sqrt(2))
    for ext in out:
        assert abs(float(ext.data.mean())) < 0.3
        assert ext.data.std() < limit


def test_overscan_levels_rejects_deviant_rows():
    rng = np.random.default_rng(4)
    rows = np.arange(500)
    truth = 450 + 0.01 * rows
    means = truth + rng.normal(0, 0.1, 500)
    means[200] += 30.0
    fit = get_primitive("overscanCorrect").defaults()
    del fit["nbiascontam"]
    model, _ = overscan_levels(means, **{**fit, "function": "poly", "order": 1}, row_sigma=0.1,
                               hamamatsu=False)
    np.testing.assert_allclose(model, truth, atol=0.05)
    plain, _ = overscan_levels(means, **fit)
    assert np.array_equal(plain, means)


def test_running_median_of_the_overscan_rows_is_numpys():
    """The sorting network's running median is numpy's median of each window (ties, inf, NaN)."""
    from numpy.lib.stride_tricks import sliding_window_view

    from gmoswidgets.primitives.ccd import _running_median
    rng = np.random.default_rng(4)
    for size in (1, 3, 5, 7):
        for values in (rng.normal(size=97), rng.integers(-2, 3, 97).astype(float),
                       np.r_[rng.normal(size=20), np.inf, rng.normal(size=20)],
                       np.r_[rng.normal(size=20), np.nan, rng.normal(size=20)], np.ones(1)):
            windows = sliding_window_view(np.pad(values, size // 2, mode="edge"), size)
            assert _running_median(values, size).tobytes() == np.median(windows, axis=-1).tobytes()


def test_each_extension_runs_each_once_and_raises_the_first_error():
    from gmoswidgets.primitives._calib import each_extension
    done = []
    each_extension(done.append, 12)
    assert sorted(done) == list(range(12))

    def fail(index):
        if index in (3, 9):
            raise ValueError(f"extension {index}")
    with pytest.raises(ValueError, match="extension 3"):
        each_extension(fail, 12)


def test_overscanCorrect_rejects_an_impossible_nbiascontam():
    with pytest.raises(FileProblem, match="nbiascontam"):
        run([make_raw("bias")], BIAS_STEPS[:3] + [("overscanCorrect", {"nbiascontam": 40})])


# -- biasCorrect --------------------------------------------------------------------

def test_biasCorrect_with_the_calibration_service(master_bias):
    raw = make_raw("bias", seed=42)
    [out] = run([raw], BIAS_STEPS + [("biasCorrect", {})],
                bias_lookup(master_bias))
    prepared = run([make_raw("bias", seed=42)], BIAS_STEPS)[0]
    np.testing.assert_allclose(out[2].data, prepared[2].data - master_bias[2].data, atol=1e-4)
    np.testing.assert_allclose(out[2].variance, prepared[2].variance + master_bias[2].variance,
                               rtol=1e-6)
    assert out.phu["BIASIM"] == master_bias.filename
    assert "BIASCORR" in out.phu


def test_biasCorrect_ors_the_bias_dq_only_where_it_has_flags(master_bias):
    """A bias DQ of zeros leaves the frame's DQ as it is; a flagged one is OR-ed in."""
    [prepared] = run([make_raw("bias", seed=45)], BIAS_STEPS)
    for ext in prepared.exts:
        ext.mask = np.zeros(ext.data.shape, dq.DTYPE)
        ext.mask[0, :3] = dq.SATURATED
    flagged = master_bias.copy()
    flagged.exts[2].mask = np.zeros(flagged.exts[2].data.shape, dq.DTYPE)
    flagged.exts[2].mask[1, :2] = dq.BAD_PIXEL
    for ext in master_bias.exts:
        assert ext.mask is None or not ext.mask.any()
    [plain] = run([prepared], [("biasCorrect", {})], bias_lookup(master_bias))
    [ored] = run([prepared], [("biasCorrect", {})], bias_lookup(flagged))
    for index, ext in enumerate(prepared.exts):
        np.testing.assert_array_equal(plain.exts[index].mask, ext.mask)
        expected = ext.mask | (flagged.exts[index].mask if index == 2 else 0)
        np.testing.assert_array_equal(ored.exts[index].mask, expected)
    assert ored.exts[2].mask[1, 0] == dq.BAD_PIXEL


def test_biasCorrect_from_a_file_records_provenance(master_bias, tmp_path):
    path = master_bias.write(tmp_path / "N20170613S0000_bias.fits")
    [out] = run([make_raw("bias", seed=43)], BIAS_STEPS + [("biasCorrect", {"bias": str(path)})])
    assert out.phu["BIASIM"] == path.name
    assert path.name in list(out.tables["PROVENANCE"]["filename"])


def test_biasCorrect_missing_skip_and_units(master_bias):
    [prepared] = run([make_raw("bias", seed=44)], BIAS_STEPS)
    with pytest.raises(CalibrationNotFoundError):
        run([prepared], [("biasCorrect", {})])
    [skipped] = run([prepared], [("biasCorrect", {"do_cal": "skip"})])
    np.testing.assert_array_equal(skipped[0].data, prepared[0].data)
    [electrons] = run([prepared], [("ADUToElectrons", {})])
    with pytest.raises(FileProblem, match="units"):
        run([electrons], [("biasCorrect", {})], bias_lookup(master_bias))


# -- ADUToElectrons -----------------------------------------------------------------

def test_ADUToElectrons_scales_data_variance_and_levels():
    [adu] = run([make_raw("flat", signal=1000.0)], BIAS_STEPS)
    [e] = run([adu], [("ADUToElectrons", {})])
    np.testing.assert_allclose(e[3].data, adu[3].data * GAIN, rtol=1e-6)
    np.testing.assert_allclose(e[3].variance, adu[3].variance * GAIN ** 2, rtol=1e-6)
    assert e[3].header["BUNIT"] == "electron" and e[3].header["GAIN"] == 1.0
    assert e[3].header["SATLEVEL"] == pytest.approx(adu[3].header["SATLEVEL"] * GAIN)
    assert e.descriptor("gain") == [1.0] * 12
    [same] = run([e], [("ADUToElectrons", {})])
    np.testing.assert_array_equal(same[3].data, e[3].data)


# -- normalizeFlat and flatCorrect --------------------------------------------------

def _flat_signal(ccd, amp):
    return 20000.0 * (0.9, 1.0, 1.1)[ccd]


def test_flat_level_finds_the_bulk_of_the_pixels():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(1000.0, 10.0, 100000), np.full(5000, 10.0)])
    assert flat_level(values, "median") == pytest.approx(1000.0, abs=0.5)


def test_normalizeFlat_uses_ccd2_and_keeps_ccd_ratios(master_bias):
    steps = [("prepare", {}), ("addDQ", {"add_illum_mask": False}),
             ("addVAR", {"read_noise": True}), ("overscanCorrect", {}), ("biasCorrect", {}),
             ("ADUToElectrons", {}), ("addVAR", {"poisson_noise": True})]
    flats = run([make_raw("flat", seed=s, signal=_flat_signal) for s in range(3)], steps,
                bias_lookup(master_bias))
    flats[0][6].mask = flats[0][6].mask.copy()     # an output plane may be read-only (all 0)
    flats[0][6].mask[5, 5] = dq.BAD_PIXEL
    [out] = run(flats, [("stackFlats", {}), ("normalizeFlat", {}), ("storeProcessedFlat", {})])
    assert float(np.median(out[5].data)) == pytest.approx(1.0, abs=0.002)
    assert float(np.median(out[1].data)) == pytest.approx(0.9, abs=0.002)
    assert float(np.median(out[9].data)) == pytest.approx(1.1, abs=0.002)
    assert out[6].data[5, 5] != 1.0             # one bad input of three: the others are used
    assert {"PROCESSED", "FLAT"} <= out.tags and out.phu["PROCMODE"] == "sq"


def test_normalizeFlat_sets_flagged_pixels_to_one():
    frame = make_raw("flat", signal=_flat_signal)
    [out] = run([frame], [("prepare", {}), ("addDQ", {})])
    [norm] = run([out], [("normalizeFlat", {})])
    flagged = (norm[0].mask & dq.UNILLUMINATED) != 0
    assert flagged.any() and np.all(norm[0].data[flagged] == 1.0)


def _trimmed_frame(value, variance, mask=0, detsec="[1:100,1:50]", shape=(50, 100),
                   name="x.fits"):
    phu = fits.Header({"INSTRUME": "GMOS-N", "OBSTYPE": "OBJECT"})
    ny, nx = shape
    hdr = fits.Header({"DATASEC": f"[1:{nx},1:{ny}]", "DETSEC": detsec, "CCDSUM": "1 1"})
    ext = Extension(np.full(shape, value, np.float32), hdr, np.full(shape, variance, np.float32),
                    np.full(shape, mask, np.uint16))
    frame = Frame(phu, [ext])
    frame.filename = name
    return frame


def test_flatCorrect_divides_and_propagates_variance():
    sci = _trimmed_frame(1000.0, 1000.0)
    flat = _trimmed_frame(0.8, 1e-4, mask=dq.BAD_PIXEL, name="flat.fits")
    flat[0].data[0, 0] = 0.0
    [out] = run([sci], [("flatCorrect", {})], lambda f, c: (flat, None, ""))
    assert out[0].data[1, 1] == pytest.approx(1250.0)
    assert out[0].variance[1, 1] == pytest.approx(1000 / 0.64 + 1250 ** 2 * 1e-4 / 0.64, rel=1e-5)
    assert out[0].mask[1, 1] == dq.BAD_PIXEL
    assert out[0].data[0, 0] == 0.0 and out.phu["FLATIM"] == "flat.fits"
    assert out[0].variance[0, 0] == 0.0 and out[0].mask[0, 0] == dq.BAD_PIXEL
    assert sci[0].data[1, 1] == 1000.0


def test_flatCorrect_cuts_the_flat_for_each_frame_of_a_step():
    """Frames of different readout windows in one step each get their own part of the flat."""
    flat = _trimmed_frame(1.0, 0.0, detsec="[1:100,1:50]", name="flat.fits")
    flat[0].data[:] = np.arange(100, dtype=np.float32)[None, :] + 1
    left = _trimmed_frame(100.0, 1.0, detsec="[41:60,11:30]", shape=(20, 20), name="a.fits")
    right = _trimmed_frame(100.0, 1.0, detsec="[61:80,11:30]", shape=(20, 20), name="b.fits")
    again = _trimmed_frame(100.0, 1.0, detsec="[41:60,11:30]", shape=(20, 20), name="c.fits")
    out = run([left, right, again], [("flatCorrect", {})], lambda f, c: (flat, None, ""))
    np.testing.assert_allclose(out[0][0].data[0], 100.0 / np.arange(41, 61))
    np.testing.assert_allclose(out[1][0].data[0], 100.0 / np.arange(61, 81))
    np.testing.assert_array_equal(out[2][0].data, out[0][0].data)


def test_flatCorrect_measures_a_flat_once_for_frames_divided_in_separate_calls(monkeypatch):
    """A streamed step divides its frames a few at a time: the flat's response is computed
    once (not once per batch), gives the same result, and is let go of with the flat."""
    import gc
    from gmoswidgets.primitives import flat as flat_module
    calls = []
    measure = flat_module._response

    def counted(cal, number, planes):
        calls.append(number)
        return measure(cal, number, planes)
    monkeypatch.setattr(flat_module, "_response", counted)
    flat = _trimmed_frame(0.8, 1e-4, name="flat.fits")
    flat[0].data[0, 0] = 0.0
    frames = [_trimmed_frame(1000.0 + i, 1000.0, name=f"s{i}.fits") for i in range(3)]
    together = run(frames, [("flatCorrect", {})], lambda f, c: (flat, None, ""))
    assert len(calls) == 1
    apart = [run([frame], [("flatCorrect", {})], lambda f, c: (flat, None, ""))[0]
             for frame in frames]
    assert len(calls) == 1
    for one, other in zip(together, apart):
        for plane in ("data", "variance", "mask"):
            np.testing.assert_array_equal(getattr(one[0], plane), getattr(other[0], plane))
    assert together[0][0].data[1, 1] == pytest.approx(1250.0)
    del flat, together, apart
    gc.collect()
    assert len(flat_module._RESPONSES) == 0


def test_flatCorrect_clips_a_full_frame_flat_to_the_science_roi():
    flat = _trimmed_frame(1.0, 0.0, detsec="[1:100,1:50]", name="flat.fits")
    flat[0].data[:] = np.arange(100, dtype=np.float32)[None, :] + 1
    sci = _trimmed_frame(100.0, 1.0, detsec="[41:60,11:30]", shape=(20, 20))
    [out] = run([sci], [("flatCorrect", {})], lambda f, c: (flat, None, ""))
    np.testing.assert_allclose(out[0].data[0], 100.0 / np.arange(41, 61))
    outside = _trimmed_frame(1.0, 1.0, detsec="[91:110,1:20]", shape=(20, 20), name="out.fits")
    with pytest.raises(FileProblem, match="does not cover"):
        run([outside], [("flatCorrect", {})], lambda f, c: (flat, None, ""))


def test_store_primitives_mark_the_products(master_bias):
    assert {"PROCESSED", "BIAS", "CAL"} <= master_bias.tags
    assert master_bias.phu["PROCMODE"] == "sq"
    [sci] = run([_trimmed_frame(1.0, 1.0)], [("storeProcessedScience", {})])
    sci_e = _trimmed_frame(1.0, 1.0)
    sci_e[0].header["BUNIT"] = "electron"
    [sci_e] = run([sci_e], [("storeProcessedScience", {})])
    assert "PROCESSED_SCIENCE" in sci_e.tags and sci_e.phu["BUNIT"] == "electron"
    [fringe] = run([sci_e], [("storeProcessedFringe", {})])
    assert {"PROCESSED", "FRINGE"} <= fringe.tags


def test_written_master_bias_reads_back(master_bias, tmp_path):
    path = master_bias.write(tmp_path / "mb.fits")
    again = read_frame(path)
    assert len(again) == 12 and again[0].mask.dtype == np.uint16
    np.testing.assert_array_equal(again[0].data, master_bias[0].data)
    assert {"PROCESSED", "BIAS"} <= again.tags


def test_gain_setting_survives_conversion_to_electrons(tutorial4):
    """A high-gain frame stays 'high' after ADUToElectrons sets GAIN=1 (caldb matches on it)."""
    from gmoswidgets.frame import read_frame
    from gmoswidgets.primitives import StepContext, get_primitive
    frame = read_frame(tutorial4.bias[0])
    for ext in frame:
        ext.header["GAIN"] = 5.0            # the raw header gain of the high-gain setting
    assert frame.descriptor("gain_setting") == "high"
    ctx = StepContext()
    out = get_primitive("prepare")([frame], ctx, require_wcs=False)
    out = get_primitive("ADUToElectrons")(out, ctx)
    assert out[0][0].header["GAIN"] == 1.0
    assert out[0].descriptor("gain_setting") == "high"
