"""The simulator's GMOS configurations against DRAGONS' facts (the vendored JSON and masks).

Expectations are read here from ``gmoswidgets/gmos/dragons`` with the test's
own few lines, or written out from the reference notes
(shared/reference/dragons-lookups), never taken from the simulator's code.
"""
import ast
import bz2
import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import gmoswidgets
from gmoswidgets.data import make_tutorial_dataset
from gmoswidgets.data.__main__ import main as cli_main
from gmoswidgets.errors import ParameterError

DRAGONS = Path(gmoswidgets.__file__).parent / "gmos" / "dragons"
FACTS = json.loads((DRAGONS / "gmos-lookups.json").read_text())
DATA_PACKAGE = Path(gmoswidgets.__file__).parent / "data"

#: (instrument, detector, date) -> what the archive's headers say for that configuration
EXPECTED = {
    ("GMOS-N", "hamamatsu", None): dict(
        date="2017-06-14", detid="BI13-20-4k-1,BI12-09-4k-2,BI13-18-4k-2", dettype="S10892-N",
        detector="GMOS-N + Hamamatsu", namps=4, mask="gmos-n_illum_HAM_44_12amp_v1.fits.bz2"),
    ("GMOS-S", "hamamatsu", None): dict(
        date="2024-03-14", detid="BI11-41-4k-2,BI13-19-4k-3,BI12-34-4k-1", dettype="S10892",
        detector="GMOS + Ham-2", namps=4, mask="gmos-s_illum_HAM_44_12amp_v2.fits.bz2"),
    ("GMOS-S", "hamamatsu", "2016-03-14"): dict(
        date="2016-03-14", detid="BI5-36-4k-2,BI11-33-4k-1,BI12-34-4k-1", dettype="S10892",
        detector="GMOS + Hamamatsu", namps=4, mask="gmos-s_illum_HAM_44_12amp_v2.fits.bz2"),
    ("GMOS-N", "e2vdd", None): dict(
        date="2016-03-14", detid="e2v 10031-23-05,10031-01-03,10031-18-04", dettype="SDSU II e2v DD CCD42-90",
        detector="GMOS + e2v DD CCD42-90", namps=2, mask=None),
    ("GMOS-S", "eev", None): dict(
        date="2012-03-14", detid="EEV2037-06-03EEV8194-19-04EEV8261-07-04", dettype="SDSU II CCD",
        detector="GMOS + Blue1 + new CCD1", namps=1, mask=None),
    ("GMOS-N", "eev", None): dict(
        date="2010-03-14", detid="EEV9273-16-03EEV9273-20-04EEV9273-20-03", dettype="SDSU II CCD",
        detector="GMOS + Red1", namps=1, mask=None),
}


def _table(quantity, day):
    """The JSON amp table valid on ``day`` (the selection windows with their inclusive flags)."""
    for w in FACTS["amp_tables"]["selection"][quantity]:
        lo = w["valid_from"] is None or (day >= dt.date.fromisoformat(w["valid_from"]) if w["from_inclusive"]
                                         else day > dt.date.fromisoformat(w["valid_from"]))
        hi = w["valid_to"] is None or (day <= dt.date.fromisoformat(w["valid_to"]) if w["to_inclusive"]
                                       else day < dt.date.fromisoformat(w["valid_to"]))
        if lo and hi:
            return FACTS["amp_tables"]["tables"][w["table"]]["values"]
    raise AssertionError(day)


def _section(text):
    x, y = text.strip("[]").split(",")
    (x1, x2), (y1, y2) = (map(int, x.split(":")), map(int, y.split(":")))
    return x1 - 1, x2, y1 - 1, y2


def _mask(name):
    with bz2.open(DRAGONS / "illum" / name) as fh:
        hdus = fits.open(io.BytesIO(fh.read()))
        return [(_section(h.header["DETSEC"]), h.data.copy()) for h in hdus[1:]]


#: Configurations checked in the fast suite (the others are slow: a few seconds each).
FAST = {("GMOS-S", "hamamatsu", None), ("GMOS-N", "e2vdd", None), ("GMOS-S", "eev", None)}


@pytest.fixture(scope="module", params=[
    pytest.param(key, id="-".join(str(v) for v in key if v), marks=[] if key in FAST else [pytest.mark.slow])
    for key in EXPECTED])
def flats4(request, tmp_path_factory):
    """Biases and twilight flats of a configuration at 4x4 (no stars: fast)."""
    instrument, detector, date = request.param
    ds = make_tutorial_dataset(tmp_path_factory.mktemp(f"{instrument}-{detector}"), instrument=instrument,
                               detector=detector, date=date, binning=4, groups=("bias", "flat"), seed=5)
    return request.param, EXPECTED[request.param], ds


def test_data_package_imports_nothing_from_the_pipeline():
    """gmoswidgets/data (the simulator) may import only itself, gmoswidgets.errors and the version."""
    offenders = []
    for path in sorted(DATA_PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level >= 2:
                    target = (node.module or "").split(".")[0]
                    package_version = node.module is None and [a.name for a in node.names] == ["__version__"]
                    if target != "errors" and not package_version:
                        offenders.append(f"{path.name}: from {'.' * node.level}{node.module or ''}")
                elif node.level == 0 and (node.module or "").startswith("gmoswidgets"):
                    if not node.module.startswith(("gmoswidgets.data", "gmoswidgets.errors")):
                        offenders.append(f"{path.name}: from {node.module}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("gmoswidgets") and not alias.name.startswith(
                            ("gmoswidgets.data", "gmoswidgets.errors")):
                        offenders.append(f"{path.name}: import {alias.name}")
    assert offenders == []


def test_headers_follow_dragons_facts(flats4):
    (instrument, detector, _), expected, ds = flats4
    day = dt.date.fromisoformat(expected["date"])
    info = FACTS["detectors"]["by_DETID"][expected["detid"]]
    site = instrument[-1]
    assert ds.truth.frame(ds.flat[0].stem).kind == "flat"
    # file names: N/S + the night + S + number; the science night is the configuration's date
    assert all(p.name.startswith(f"{site}20") and p.name[9] == "S" for p in ds.files)
    gains, noises = _table("gain", day), _table("read_noise", day)
    for path in ds.files:
        with fits.open(path) as hdus:
            phu = hdus[0].header
            assert phu["INSTRUME"] == instrument
            assert phu["OBSERVAT"] == phu["TELESCOP"] == f"Gemini-{'North' if site == 'N' else 'South'}"
            assert phu["DETID"] == expected["detid"] and phu["DETTYPE"] == expected["dettype"]
            assert phu["DETECTOR"] == expected["detector"]
            assert phu["NAMPS"] == expected["namps"] and phu["NCCDS"] == 3
            assert phu["GEMPRGID"].startswith(f"G{site}-")
            assert path.stem[1:9] == phu["DATE-OBS"].replace("-", "")
            # slow read: AMPINTEG above DRAGONS' threshold for the detector
            threshold = FACTS["read_settings"]["read_speed_from_AMPINTEG"][
                "hamamatsu_threshold" if detector == "hamamatsu" else "other_threshold"]
            assert phu["AMPINTEG"] > threshold
            exts = [h.header for h in hdus[1:]]
        assert len(exts) == 3 * expected["namps"]
        names = [h["AMPNAME"] for h in exts]
        all_amps = [a for ccd in info["amp_names_by_ccd"] for a in ccd]
        assert set(names) <= set(all_amps) and len(set(names)) == len(names)
        if detector == "eev":   # the one amplifier per CCD DRAGONS' masks were read with
            assert set(names) == set(FACTS["detectors"]["by_DETID"][expected["detid"]]["amps_in_its_illum_masks"])
        # placed left to right by DETSEC: Hamamatsu amps run 4, 3, 2, 1 on each CCD, e2v left, right
        by_detsec = [n for _, n in sorted((_section(h["DETSEC"])[0], h["AMPNAME"]) for h in exts)]
        if detector == "hamamatsu":
            assert [n.split(", ")[1] for n in by_detsec] == ["4", "3", "2", "1"] * 3
        elif detector == "e2vdd":
            assert [n.split(", ")[1] for n in by_detsec] == ["left", "right"] * 3
            # file order as in DRAGONS' e2v masks (taken from real frames): not DETSEC order
            mask_order = [e["AMPNAME"] for e in FACTS["illumination_masks"]["files"][
                "gmos-n_illum_e2v_22_6amp_v1.fits.bz2"]["extensions"]]
            assert names == mask_order
        else:
            assert names == by_detsec
        for hdr in exts:
            data, bias = _section(hdr["DATASEC"]), _section(hdr["BIASSEC"])
            assert bias[1] - bias[0] == 32                       # 32 binned overscan columns
            suffix = hdr["AMPNAME"].split(", ")[1]
            overscan_right = suffix in ("4", "2", "left")
            assert (bias[0] >= data[1]) == overscan_right, hdr["AMPNAME"]
            detsec = _section(hdr["DETSEC"])
            ccd_height = 4224 if detector == "hamamatsu" else 4608
            assert detsec[2:] == (0, ccd_height)
            assert (detsec[1] - detsec[0]) == 2048 // expected["namps"]
            assert hdr["CCDSUM"] == "4 4"
            name = hdr["AMPNAME"]
            assert hdr["GAIN"] == pytest.approx(gains[name]["slow"]["low"])
            assert hdr["RDNOISE"] == pytest.approx(noises[name]["slow"]["low"])
            assert hdr["GAIN"] < FACTS["read_settings"]["gain_setting_from_GAIN"]["threshold"]


def test_illumination_follows_dragons_mask(flats4):
    """Twilight reaches exactly the pixels DRAGONS' mask calls lit (at 4x4 e2v/EEV: the 2x2 mask's)."""
    (instrument, detector, _), expected, ds = flats4
    truth = ds.truth
    name = expected["mask"]
    factor = 1
    if name is None:  # no 4x4 mask for EEV/e2v: the nearest finer one, all sub-pixels lit
        name = f"{instrument.lower()}_illum_{'e2v' if detector == 'e2vdd' else 'EEV'}_22_" \
               f"{3 * expected['namps']}amp_v1.fits.bz2"
        factor = 2
    assert truth.meta["illumination"]["mask"] == name
    masks = _mask(name)
    flat = ds.flat[-1]
    level = truth.frame(flat.stem).sky_e
    with fits.open(flat) as hdus:
        for index, hdu in enumerate(hdus[1:]):
            hdr = hdu.header
            detsec = _section(hdr["DETSEC"])
            (mdet, mask), = [(d, m) for d, m in masks if d[0] <= detsec[0] and detsec[1] <= d[1]]
            cut = mask[:, (detsec[0] - mdet[0]) // (4 // factor):][:, :(detsec[1] - detsec[0]) // (4 // factor)]
            lit = cut == 0
            if factor > 1:
                lit = lit.reshape(lit.shape[0] // 2, 2, lit.shape[1] // 2, 2).all(axis=(1, 3))
            assert np.array_equal(truth.illuminated(index), lit)
            data, bias = _section(hdr["DATASEC"]), _section(hdr["BIASSEC"])
            raw = hdu.data.astype(float)
            signal = (raw[:, data[0]:data[1]] - np.median(raw[:, bias[0] + 4:bias[1] - 4] if bias[0] else
                                                           raw[:, bias[0] + 4:bias[1] - 4])) * hdr["GAIN"]
            if (~lit).any():   # dark pixels: bias only (a few read noise at most)
                assert np.median(np.abs(signal[~lit])) < 5 * hdr["RDNOISE"] + 10
            if lit.any():
                assert np.median(signal[lit]) > 0.5 * level


@pytest.mark.parametrize("roi", ["Central Spectrum", "Central Stamp"])
def test_roi_of_each_detector_family(tmp_path, roi):
    ds = make_tutorial_dataset(tmp_path, instrument="GMOS-S", detector="eev", binning=4, roi=roi,
                               groups=("bias",))
    (variant,) = [v for v in FACTS["rois"]["by_name"][roi] if v["detector_family"] == "EEV/e2vDD"][:1]
    x1, x2, y1, y2 = variant["section_0based_unbinned"]
    with fits.open(ds.bias[0]) as hdus:
        phu = hdus[0].header
        assert (phu["DETRO1X"], phu["DETRO1Y"]) == (x1 + 1, y1 + 1)
        assert (phu["DETRO1XS"], phu["DETRO1YS"]) == ((x2 - x1) // 4, (y2 - y1) // 4)
        for hdu in hdus[1:]:
            det = _section(hdu.header["DETSEC"])
            assert det[2:] == (y1, y2) and x1 <= det[0] and det[1] <= x2
    assert len(ds.truth.amps) == (3 if roi == "Central Spectrum" else 1)


@pytest.mark.slow
def test_saturated_stars_clip_at_dragons_level(tmp_path):
    """e2vDD 1x1: stars saturate at well depth / gain (about 45-53k ADU), DRAGONS' level per amp."""
    ds = make_tutorial_dataset(tmp_path, instrument="GMOS-N", detector="e2vdd", binning=1,
                               roi="Central Spectrum", groups=("science",), seed=26)
    truth = ds.truth
    wells = FACTS["saturation"]["thresholds_by_DETECTOR"]["GMOS + e2v DD CCD42-90"]["well_electrons_1x1"]
    gains = _table("gain", dt.date(2016, 3, 14))
    assert truth.stars["saturated"].sum() >= 1
    reached = 0
    for path in ds.science:
        with fits.open(path) as hdus:
            for hdu in hdus[1:]:
                name = hdu.header["AMPNAME"]
                level = min(wells[name] / gains[name]["slow"]["low"], 65535.0)
                assert level < 55000
                index = list(truth.amps["ampname"]).index(name)
                assert truth.amps["saturation_adu"][index] == pytest.approx(level)
                peak = int(hdu.data.max())
                assert peak <= np.ceil(level)
                reached += peak == np.ceil(level)
    assert reached >= 1


def test_default_configuration_is_the_tutorials(tutorial4):
    config = tutorial4.truth.configuration
    assert (config["instrument"], config["detector"], config["date"]) == ("GMOS-N", "hamamatsu", "2017-06-14")
    assert tutorial4.truth.meta["illumination"]["mask"] == "gmos-n_illum_HAM_44_12amp_v1.fits.bz2"


@pytest.mark.parametrize("kwargs,message", [
    (dict(instrument="GMOS-S", detector="e2vdd"), "GMOS-S never had e2vDD"),
    (dict(instrument="GMOS-N", detector="eev", date="2020-01-01"), "no EEV CCDs"),
    (dict(instrument="GMOS-N", detector="hamamatsu", date="2016-01-01"), "no Hamamatsu CCDs"),
    (dict(instrument="GMOS-S", detector="hamamatsu", date="2023-12-10", groups=("bias", "flat")), "straddle"),
    (dict(detector="hamamatsu", gain_setting="high"), "placeholders"),
    (dict(instrument="GMOS-X"), "instrument must be"),
    (dict(detector="ccd"), "detector must be"),
    (dict(date="14/06/2017"), "YYYY-MM-DD"),
])
def test_impossible_configurations(tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        make_tutorial_dataset(tmp_path, **{"groups": ("bias",), "binning": 4, **kwargs})


def test_cli_configuration_options(tmp_path, capsys):
    assert cli_main(["make-tutorial", str(tmp_path / "s"), "--instrument", "GMOS-S", "--detector", "eev",
                     "--binning", "4", "--roi", "Central Stamp", "--groups", "bias"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").glob("*.fits"))[0] == "S20120313S0180.fits"
    assert cli_main(["make-tutorial", str(tmp_path / "x"), "--instrument", "GMOS-S",
                     "--detector", "e2vdd"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: GMOS-S never had e2vDD")
