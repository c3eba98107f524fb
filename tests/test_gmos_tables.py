"""gain, read_noise, saturation_level and non_linear_level against DRAGONS' tables.

The reference is the read-only copy of DRAGONS' tables in
``shared/reference/dragons-lookups/gmos-lookups.json``, read here with the
test's own code: amplifier names per detector set, the table entries, the
full-well depths and DRAGONS' worked saturation examples.  The date windows
are transcribed by hand from that folder's README ("Date boundaries"), not
taken from the JSON's selection rules the pipeline reads, and every
boundary is tested on the day before, the day itself and the day after.
Headers are built here (no simulator).
"""
import json
from pathlib import Path

import pytest
from astropy.io import fits

from conftest import SHARED
from gmoswidgets.frame import HeaderSet
from gmoswidgets.gmos.descriptors import descriptor_value

REF = json.loads((Path(SHARED) / "reference" / "dragons-lookups" / "gmos-lookups.json").read_text())
TABLES = REF["amp_tables"]["tables"]
DETIDS = REF["detectors"]["by_DETID"]
WELLS = REF["saturation"]["thresholds_by_DETECTOR"]

# (date, gain/bias table suffix, read-noise table suffix), from the README's table:
# gain switches ON the boundary day; read noise one day later on 2017-02-24 and 2023-12-14.
DATES = [
    ("2006-08-30", "Before20060831", "Before20060831"),
    ("2006-08-31", "Before20150826", "Before20150826"),
    ("2006-09-01", "Before20150826", "Before20150826"),
    ("2015-08-25", "Before20150826", "Before20150826"),
    ("2015-08-26", "Before20170224", "Before20170224"),
    ("2015-08-27", "Before20170224", "Before20170224"),
    ("2017-02-23", "Before20170224", "Before20170224"),
    ("2017-02-24", "Before20231214", "Before20170224"),
    ("2017-02-25", "Before20231214", "Before20231214"),
    ("2023-12-13", "Before20231214", "Before20231214"),
    ("2023-12-14", "", "Before20231214"),
    ("2023-12-15", "", ""),
]
#: (read speed, gain setting) -> (PHU AMPINTEG for Hamamatsu, for EEV/e2v, raw GAIN keyword)
MODES = {("slow", "low"): (9000, 3000, 1.6), ("fast", "low"): (5000, 1000, 1.6),
         ("fast", "high"): (5000, 1000, 5.0), ("slow", "high"): (9000, 3000, 5.0)}
HEADER_GAIN_RDNOISE = {"low": (1.6, 3.3), "high": (5.0, 3.3)}


def _configurations():
    """(DETID, PHU DETECTOR) pairs: each full-well set with its DETID, and the EEV sets."""
    out = []
    for detector, entry in WELLS.items():
        out += [(detid, detector) for detid in entry["DETID_with_same_ccd_set"]]
    out += [(detid, entry["DETECTOR_keyword_seen"] or "GMOS + EEV")
            for detid, entry in DETIDS.items() if entry["pretty_name"] == "EEV"]
    return out


CONFIGS = _configurations()


def make_headers(detid, detector, date, speed, setting, xbin=1, ybin=1):
    """Raw-like headers of a full readout of every amplifier of ``detid``."""
    entry = DETIDS[detid]
    hamamatsu = entry["pretty_name"].startswith("Hamamatsu")
    ampinteg_ham, ampinteg_other, header_gain = MODES[(speed, setting)]
    phu = fits.Header({"INSTRUME": entry["site"], "DETTYPE": entry["DETTYPE"], "DETID": detid,
                       "DETECTOR": detector, "DATE-OBS": date, "OBSTYPE": "OBJECT",
                       "AMPINTEG": ampinteg_ham if hamamatsu else ampinteg_other})
    exts = []
    for amps in entry["amp_names_by_ccd"]:
        for amp in amps:
            exts.append(fits.Header({"AMPNAME": amp, "CCDSUM": f"{xbin} {ybin}",
                                     "GAIN": header_gain, "RDNOISE": 3.3}))
    return HeaderSet(phu, exts, Path(f"{detid}.fits"), [(100, 100)] * len(exts))


def reference(quantity, suffix, amp, speed, setting, hamamatsu):
    """DRAGONS' table entry; None if absent or a Hamamatsu slow/high placeholder."""
    if hamamatsu and (speed, setting) == ("slow", "high"):
        return None
    name = {"gain": "gmosampsGain", "read_noise": "gmosampsRdnoise"}[quantity] + suffix
    return TABLES[name]["values"].get(amp, {}).get(speed, {}).get(setting)


def reference_saturation(detector, amp, gain, pretty, nbin):
    """DRAGONS' rule on raw data (README "Saturation", B = 0)."""
    well = WELLS.get(detector, {}).get("well_electrons_1x1", {}).get(amp)
    if pretty == "EEV" or nbin > 2 or well is None:
        return 65535.0
    return min(well * nbin / gain, 65535.0)


@pytest.mark.parametrize("date, gain_suffix, rn_suffix", DATES, ids=[d[0] for d in DATES])
@pytest.mark.parametrize("detid, detector", CONFIGS, ids=[f"{d}|{k}" for d, k in CONFIGS])
def test_gain_read_noise_and_saturation_match_dragons(detid, detector, date, gain_suffix,
                                                      rn_suffix):
    pretty = DETIDS[detid]["pretty_name"]
    hamamatsu = pretty.startswith("Hamamatsu")
    for speed, setting in MODES:
        header_gain, header_rn = HEADER_GAIN_RDNOISE[setting]
        for xbin, ybin in ((1, 1), (2, 1), (2, 2)):
            hs = make_headers(detid, detector, date, speed, setting, xbin, ybin)
            amps = [h["AMPNAME"] for h in hs.ext_headers]
            assert descriptor_value(hs, "read_speed_setting") == speed
            assert descriptor_value(hs, "gain_setting") == setting
            gains = descriptor_value(hs, "gain")
            noises = descriptor_value(hs, "read_noise")
            saturation = descriptor_value(hs, "saturation_level")
            assert descriptor_value(hs, "non_linear_level") == saturation
            for amp, g, rn, sat in zip(amps, gains, noises, saturation):
                where = f"{amp} {speed}/{setting} {date} {xbin}x{ybin}"
                want_g = reference("gain", gain_suffix, amp, speed, setting, hamamatsu)
                want_rn = reference("read_noise", rn_suffix, amp, speed, setting, hamamatsu)
                # no DRAGONS value: the raw header's (DRAGONS would return None)
                assert g == pytest.approx(want_g if want_g is not None else header_gain), where
                assert rn == pytest.approx(want_rn if want_rn is not None else header_rn), where
                want_sat = reference_saturation(detector, amp, g, pretty, xbin * ybin)
                assert sat == pytest.approx(want_sat, rel=1e-9), where


def test_the_date_cases_exercise_changing_values():
    """The boundary cases above are not vacuous: the values do change across them."""
    hs = make_headers("BI5-36-4k-2,BI11-33-4k-1,BI12-34-4k-1", "GMOS + Hamamatsu", "2015-08-25",
                      "slow", "low")
    before = dict(zip([h["AMPNAME"] for h in hs.ext_headers], descriptor_value(hs, "gain")))
    hs.phu["DATE-OBS"] = "2015-08-26"
    after = dict(zip([h["AMPNAME"] for h in hs.ext_headers], descriptor_value(hs, "gain")))
    # the example: GMOS-S CCD2 amp 1 gain 1.664 before 2015-08-26, 1.878 from then
    assert before["BI11-33-4k-1, 1"] == pytest.approx(1.664)
    assert after["BI11-33-4k-1, 1"] == pytest.approx(1.878)
    # read noise keeps the older table on 2023-12-14 itself
    hs = make_headers("BI11-41-4k-2,BI13-19-4k-3,BI12-34-4k-1", "GMOS + Ham-2", "2023-12-14",
                      "slow", "low")
    on_day = descriptor_value(hs, "read_noise")[-1]
    hs.phu["DATE-OBS"] = "2023-12-15"
    assert descriptor_value(hs, "read_noise")[-1] != on_day


@pytest.mark.parametrize("example", REF["saturation"]["examples_raw_slow_low"],
                         ids=lambda e: f"{e['DETECTOR']}|{e['AMPNAME']}")
def test_saturation_equals_dragons_worked_examples(example):
    """DRAGONS' own numbers (generated by calling DRAGONS) for raw slow/low frames."""
    detid = next(d for d, e in DETIDS.items()
                 if any(example["AMPNAME"] in amps for amps in e["amp_names_by_ccd"])
                 and (d in WELLS[example["DETECTOR"]]["DETID_with_same_ccd_set"]))
    table = example["gain_table"]
    date = {"gmosampsGain": "2024-06-01", "gmosampsGainBefore20231214": "2020-06-01",
            "gmosampsGainBefore20170224": "2016-06-01"}[table]
    for (xbin, ybin), key in (((1, 1), "raw_1x1_saturation_adu"),
                              ((2, 2), "raw_2x2_saturation_adu")):
        hs = make_headers(detid, example["DETECTOR"], date, "slow", "low", xbin, ybin)
        index = [h["AMPNAME"] for h in hs.ext_headers].index(example["AMPNAME"])
        assert descriptor_value(hs, "gain")[index] == pytest.approx(example["gain"])
        assert descriptor_value(hs, "saturation_level")[index] == pytest.approx(example[key],
                                                                                abs=1e-3)


def test_saturation_follows_a_removed_bias_and_electrons():
    """Bias-subtracted data without SATLEVEL: the ADC cap drops by the bias; x gain in electrons."""
    hs = make_headers("BI13-20-4k-1,BI12-09-4k-2,BI13-18-4k-2", "GMOS-N + Hamamatsu",
                      "2020-01-01", "slow", "low", 2, 2)
    for h in hs.ext_headers:
        h["OVERSCAN"] = 500.0
    assert descriptor_value(hs, "saturation_level") == [65035.0] * 12
    hs.phu["BUNIT"] = "electron"
    gains = [TABLES["gmosampsGainBefore20231214"]["values"][h["AMPNAME"]]["slow"]["low"]
             for h in hs.ext_headers]
    assert descriptor_value(hs, "saturation_level") == pytest.approx([65035.0 * g for g in gains])


@pytest.mark.parametrize("speed, setting, expected", [
    ("slow", "low", "Normal"), ("fast", "high", "Bright"), ("fast", "low", "Acquisition")])
def test_configuration_descriptors(speed, setting, expected):
    """The descriptors that say which configuration a file is (DRAGONS' names)."""
    hs = make_headers("BI11-41-4k-2,BI13-19-4k-3,BI12-34-4k-1", "GMOS + Ham-2", "2024-03-01",
                      speed, setting)
    assert descriptor_value(hs, "detector_name") == "Hamamatsu-S"
    assert descriptor_value(hs, "detector_id") == "BI11-41-4k-2,BI13-19-4k-3,BI12-34-4k-1"
    assert descriptor_value(hs, "read_speed_setting") == speed
    assert descriptor_value(hs, "gain_setting") == setting
    assert REF["read_settings"]["read_mode_map"]["default"][f"{setting}/{speed}"] == expected
    assert descriptor_value(hs, "read_mode") == expected


@pytest.mark.parametrize("detid", list(REF["mosaic_geometry"]["by_DETID"]))
@pytest.mark.parametrize("binning", [1, 2, 4])
def test_mosaic_geometry_of_every_detector_set(detid, binning):
    """CCD1 and CCD3 centres land at CCD2's centre + shift / binning, rotated counter-clockwise."""
    import numpy as np

    from gmoswidgets.frame import Extension, Frame
    from gmoswidgets.gmos.geometry import ccd_to_mosaic

    entry = DETIDS[detid]
    phu = fits.Header({"INSTRUME": entry["site"], "DETTYPE": entry["DETTYPE"], "DETID": detid})
    frame = Frame(phu, [Extension(np.zeros((1, 1), np.float32),
                                  fits.Header({"CCDSUM": f"{binning} {binning}"}))])
    for ccd, geo in enumerate(REF["mosaic_geometry"]["by_DETID"][detid]["ccds_left_to_right"]):
        nx, ny = (n // binning for n in geo["shape_xy_unbinned"])
        cx, cy = (nx - 1) / 2, (ny - 1) / 2
        sx, sy = (s / binning for s in geo["shift_xy_unbinned_px"])
        theta = np.deg2rad(geo["rotation_deg_ccw"])
        mapping = ccd_to_mosaic(frame, ccd)
        x, y = mapping(np.array([cx, cx + 1000.0]), np.array([cy, cy]))
        assert (x[0], y[0]) == pytest.approx((cx + sx, cy + sy), abs=1e-9)
        assert (x[1] - x[0], y[1] - y[0]) == pytest.approx(
            (1000 * np.cos(theta), 1000 * np.sin(theta)), abs=1e-9)
