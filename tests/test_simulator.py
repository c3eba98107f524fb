"""Tests of the simulated GMOS-N tutorial data set (gmoswidgets.data)."""
import datetime as dt

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from gmoswidgets.data import load_truth, make_tutorial_dataset
from gmoswidgets.data.__main__ import main as cli_main
from gmoswidgets.data.headers import BASE_POINTING
from gmoswidgets.errors import FileProblem, ParameterError
from gmoswidgets.frame import read_headers
from gmoswidgets.gmos import lookups
from gmoswidgets.gmos.descriptors import descriptor_value
from gmoswidgets.gmos.tags import tags_of
from gmoswidgets.sections import Section

BIAS_NAMES = [f"N20170613S{n:04d}" for n in range(180, 185)] + [f"N20170615S{n:04d}" for n in range(534, 539)]
FLAT_NAMES = [f"N20170702S{n:04d}" for n in range(178, 183)]
SCIENCE_NAMES = [f"N20170614S{n:04d}" for n in range(201, 206)]
TAGS = {
    "bias": {"AT_ZENITH", "AZEL_TARGET", "BIAS", "CAL", "GEMINI", "GMOS", "NON_SIDEREAL", "NORTH",
             "RAW", "UNPREPARED"},
    "science": {"GEMINI", "GMOS", "IMAGE", "NORTH", "RAW", "SIDEREAL", "UNPREPARED"},
    "flat": {"CAL", "FLAT", "GEMINI", "GMOS", "IMAGE", "NORTH", "RAW", "SIDEREAL", "TWILIGHT",
             "UNPREPARED"},
}
GEOMETRY = lookups.MOSAIC_GEOMETRY["BI13-20-4k-1,BI12-09-4k-2,BI13-18-4k-2"]


def _kind(name):
    return "bias" if name in BIAS_NAMES else "flat" if name in FLAT_NAMES else "science"


@pytest.fixture(scope="module")
def stamp1(tmp_path_factory):
    """A small 1x1 data set: the Central Stamp region, science only."""
    return make_tutorial_dataset(tmp_path_factory.mktemp("stamp1"), binning=1, seed=3,
                                 roi="Central Stamp", groups=("bias", "science"))


@pytest.fixture(scope="module")
def zband(tmp_path_factory):
    """z-band science frames with fringes, 4x4, central spectrum."""
    return make_tutorial_dataset(tmp_path_factory.mktemp("zband"), binning=4, seed=5,
                                 filter_name="z", roi="Central Spectrum", groups=("bias", "science"))


# -- names, layout ---------------------------------------------------------------

def test_names_and_groups(tutorial4):
    ds = tutorial4
    assert [p.stem for p in ds.bias] == BIAS_NAMES
    assert [p.stem for p in ds.flat] == FLAT_NAMES
    assert [p.stem for p in ds.science] == SCIENCE_NAMES
    assert sorted(p.name for p in ds.directory.glob("*.fits")) == sorted(p.name for p in ds.files)
    # the truth sits next to the data, and holds no FITS file (dataselect would choke on it)
    assert (ds.directory / "truth" / "truth.json").exists()
    assert not list((ds.directory / "truth").glob("*.fits"))
    assert ds.truth.binning == 4 and ds.truth.seed == 4


@pytest.mark.parametrize("binning,shape", [(4, (1056, 160)),
                                           pytest.param(2, (2112, 288), marks=pytest.mark.slow)])
def test_file_structure(request, binning, shape):
    ds = request.getfixturevalue(f"tutorial{binning}")
    for path in (ds.bias[0], ds.flat[-1], ds.science[2]):
        with fits.open(path, do_not_scale_image_data=True) as hdus:
            assert len(hdus) == 13
            phu = hdus[0].header
            assert "DATE" not in phu and "GEM-TLM" not in phu
            assert not [k for k in phu if "PREPAR" in k]
            assert phu["NEXTEND"] == 12
            origins = []
            for number, hdu in enumerate(hdus[1:], start=1):
                hdr = hdu.header
                assert hdr["BITPIX"] == 16 and hdr["BZERO"] == 32768
                assert hdu.data.shape == shape
                data, bias = Section.from_string(hdr["DATASEC"]), Section.from_string(hdr["BIASSEC"])
                assert bias.shape == (shape[0], 32)
                assert data.shape == (shape[0], shape[1] - 32)
                # overscan right of the data on odd extensions, left on even ones
                assert (bias.x1 > data.x1) == (number % 2 == 1)
                det, ccd = Section.from_string(hdr["DETSEC"]), Section.from_string(hdr["CCDSEC"])
                assert det.shape == (data.shape[0] * binning, data.shape[1] * binning)
                assert det.x1 == (number - 1) * 512 and det.y1 == 0
                origins.append(det.x1 - ccd.x1)
                assert hdr["CCDSUM"] == f"{binning} {binning}"
                ccd_index = (number - 1) // 4
                assert hdr["AMPNAME"] == f"{hdr['CCDNAME']}, {4 - (number - 1) % 4}"
                assert hdr["CCDNAME"] == ("BI13-20-4k-1", "BI12-09-4k-2", "BI13-18-4k-2")[ccd_index]
            assert origins == [0] * 4 + [2048] * 4 + [4096] * 4
        with fits.open(path) as hdus:
            assert hdus[1].data.dtype == np.uint16


@pytest.mark.parametrize("roi,nexts,rows", [("Central Spectrum", 12, 256), ("Central Stamp", 2, 75)])
def test_roi_layout(tmp_path, roi, nexts, rows):
    ds = make_tutorial_dataset(tmp_path, binning=4, seed=2, roi=roi, groups=("bias",))
    headers = read_headers(ds.bias[0])
    assert descriptor_value(headers, "detector_roi_setting") == roi
    assert len(headers.ext_headers) == nexts
    x1, xsize, y1, ysize = lookups.ROI_SETTINGS[4224][roi][0]
    assert (headers.phu["DETRO1X"], headers.phu["DETRO1Y"]) == (x1, y1)
    assert (headers.phu["DETRO1XS"], headers.phu["DETRO1YS"]) == (xsize // 4, ysize // 4)
    for hdr, shape in zip(headers.ext_headers, headers.shapes):
        det = Section.from_string(hdr["DETSEC"])
        assert shape[0] == rows and det.y1 == y1 - 1 and det.shape[0] == ysize
        assert x1 - 1 <= det.x1 and det.x2 <= x1 - 1 + xsize
        assert Section.from_string(hdr["DATASEC"]).shape == (rows, det.shape[1] // 4)


# -- tags and descriptors ------------------------------------------------------------

def test_tags(tutorial4):
    for path in tutorial4.files:
        assert set(tags_of(read_headers(path))) == TAGS[_kind(path.stem)], path.name


def _check_descriptors(ds, binning, roi="Full Frame"):
    truth = ds.truth
    for path in ds.files:
        headers = read_headers(path)
        kind = _kind(path.stem)
        frame = truth.frame(path.stem)

        def value(name):
            return descriptor_value(headers, name)

        assert value("instrument") == "GMOS-N"
        assert value("detector_name") == "Hamamatsu-N"
        assert value("object") == {"bias": "Bias", "flat": "Twilight", "science": "starfield"}[kind]
        assert value("observation_type") == ("BIAS" if kind == "bias" else "OBJECT")
        assert value("observation_class") == ("science" if kind == "science" else "dayCal")
        assert value("program_id") == ("GN-2017A-SV-151" if kind == "science"
                                       else f"GN-CAL{path.stem[1:9]}")
        assert value("data_label").startswith(value("observation_id") + "-")
        assert value("filter_name") == truth.filter_name
        assert value("exposure_time") == frame.exptime
        assert value("ut_date") == dt.date(int(path.stem[1:5]), int(path.stem[5:7]), int(path.stem[7:9]))
        assert value("detector_x_bin") == value("detector_y_bin") == binning
        assert value("pixel_scale") == pytest.approx(0.0807 * binning)
        assert value("read_speed_setting") == "slow" and value("gain_setting") == "low"
        assert value("detector_roi_setting") == roi
        assert value("ra") == pytest.approx(frame.pointing[0], abs=1e-6)
        assert value("dec") == pytest.approx(frame.pointing[1], abs=1e-6)
        assert value("telescope_x_offset") == frame.offset[0]
        assert value("telescope_y_offset") == frame.offset[1]
        assert value("position_angle") == 0.0
        assert value("airmass") == (1.0 if kind == "bias" else pytest.approx(1.0, abs=0.3))
        assert value("gain") == pytest.approx(list(truth.amps["gain"]))
        assert value("read_noise") == pytest.approx(list(truth.amps["read_noise"]))
        assert value("saturation_level") == [65535.0] * len(truth.amps)
        for key, name in (("datasec", "data_section"), ("biassec", "overscan_section"),
                          ("ccdsec", "array_section"), ("detsec", "detector_section")):
            assert value(name) == [Section.from_string(s) for s in truth.amps[key]]
        assert value("array_name") == list(truth.amps["ccdname"]) or value("array_name") == list(
            truth.amps["ampname"])
        assert value("amp_read_area") == ",".join(
            f"'{a}':{d}" for a, d in zip(truth.amps["ampname"], truth.amps["detsec"]))


def test_descriptors_4x4(tutorial4):
    _check_descriptors(tutorial4, 4)


@pytest.mark.slow          # the 2x2 dataset (4 s): made for the slow science accuracy tests
def test_descriptors_2x2(tutorial2):
    _check_descriptors(tutorial2, 2)


def test_descriptors_1x1(stamp1):
    _check_descriptors(stamp1, 1, roi="Central Stamp")


# -- WCS ----------------------------------------------------------------------------

def _centroid(data, x, y, half=4):
    ix, iy = int(round(x)), int(round(y))
    cut = data[iy - half:iy + half + 1, ix - half:ix + half + 1].astype(float)
    cut -= np.median(data[iy - 3 * half:iy + 3 * half + 1, ix - 3 * half:ix + 3 * half + 1])
    w = np.clip(cut, 0, None)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    return ix + (w * xx).sum() / w.sum(), iy + (w * yy).sum() / w.sum()


@pytest.mark.slow          # the 2x2 dataset (4 s): made for the slow science accuracy tests
def test_wcs_puts_stars_on_their_pixels(tutorial2):
    truth = tutorial2.truth
    stars = truth.stars
    chosen = stars[(stars["flux_e"] > 3e5) & (stars["flux_e"] < 2e6)]
    checked = 0
    for name in (SCIENCE_NAMES[0], SCIENCE_NAMES[3]):
        hits = truth.sky_to_pixel(name, chosen["ra"], chosen["dec"])
        with fits.open(tutorial2.directory / f"{name}.fits") as hdus:
            for hit in hits:
                hdr = hdus[hit["ext"] + 1].header
                sec = Section.from_string(hdr["DATASEC"])
                if not (sec.x1 + 12 < hit["x"] < sec.x2 - 12 and 12 < hit["y"] < sec.y2 - 12):
                    continue
                if truth.true_flat(hit["ext"])[int(hit["y"]), int(hit["x"]) - sec.x1] < 0.5:
                    continue  # outside the illuminated field
                # the header WCS and the truth WCS agree
                x, y = WCS(hdr).all_world2pix(chosen["ra"][hit["source"]], chosen["dec"][hit["source"]], 0)
                assert (x, y) == pytest.approx((hit["x"], hit["y"]), abs=1e-6)
                cx, cy = _centroid(hdus[hit["ext"] + 1].data, hit["x"], hit["y"])
                assert (cx, cy) == pytest.approx((hit["x"], hit["y"]), abs=0.15), (name, hit)
                checked += 1
    assert checked >= 10


def test_wcs_follows_mosaic_geometry(tutorial4):
    """Sky -> CCD1/CCD3 pixels -> DRAGONS geometry lands on the CCD2 frame position."""
    truth = tutorial4.truth
    name = SCIENCE_NAMES[1]
    ref = truth.wcs(name, 5)  # CCD2, third amplifier from the left ('BI12-09-4k-2, 3')
    ref_sec = truth.datasec(5)
    ref_ccdsec = Section.from_string(truth.amps["ccdsec"][5])
    for ext, placement in ((3, GEOMETRY.ccd1), (8, GEOMETRY.ccd3)):
        wcs, sec = truth.wcs(name, ext), truth.datasec(ext)
        ccdsec = Section.from_string(truth.amps["ccdsec"][ext])
        px = np.array([sec.x1 + 3.0, sec.x2 - 4.0, sec.x1 + 60.0])
        py = np.array([5.0, 900.0, 400.0])
        ra, dec = wcs.all_pix2world(px, py, 0)
        # independent chain: binned array -> unbinned CCD -> rotate about the CCD centre + shift
        ux = ccdsec.x1 + 4 * (px - sec.x1) + 1.5
        uy = ccdsec.y1 + 4 * (py - sec.y1) + 1.5
        theta = np.deg2rad(placement.rotation)
        cx, cy = 1023.5, 2111.5
        mx = np.cos(theta) * (ux - cx) - np.sin(theta) * (uy - cy) + cx + placement.shift[0]
        my = np.sin(theta) * (ux - cx) + np.cos(theta) * (uy - cy) + cy + placement.shift[1]
        rx, ry = ref.all_world2pix(ra, dec, 0)
        ref_ux = ref_ccdsec.x1 + 4 * (rx - ref_sec.x1) + 1.5
        ref_uy = ref_ccdsec.y1 + 4 * (ry - ref_sec.y1) + 1.5
        assert np.allclose(ref_ux, mx, atol=0.02) and np.allclose(ref_uy, my, atol=0.02)


def test_dither_offsets(tutorial4):
    truth = tutorial4.truth
    offsets = truth.dither_offsets()
    assert len(offsets) == 5 and tuple(offsets[0]["p", "q"]) == (0.0, 0.0)
    base = SkyCoord(offsets["ra"][0], offsets["dec"][0], unit="deg")
    assert (base.ra.deg, base.dec.deg) == pytest.approx(BASE_POINTING, abs=1e-9)
    for row in offsets[1:]:
        east, north = base.spherical_offsets_to(SkyCoord(row["ra"], row["dec"], unit="deg"))
        # the pointing moves East by p and South by q at PA = 0
        assert (east.arcsec, north.arcsec) == pytest.approx((row["p"], -row["q"]), abs=0.01)
    size = np.hypot(offsets["p"], offsets["q"])
    assert np.all(size[1:] >= 10) and np.all(size[1:] <= 20)
    # DRAGONS' convention: an offset (p, q) moves the stars by +(p, q) / scale on the detector
    stars = truth.stars
    first = truth.sky_to_pixel(SCIENCE_NAMES[0], stars["ra"], stars["dec"])
    for number in (1, 3):
        later = truth.sky_to_pixel(SCIENCE_NAMES[number], stars["ra"], stars["dec"])
        moves = [(b["x"] - a["x"], b["y"] - a["y"]) for a in first for b in later
                 if a["source"] == b["source"] and a["ext"] == b["ext"]]
        assert len(moves) > 50
        p, q = offsets["p"][number], offsets["q"][number]
        assert np.median(moves, axis=0) == pytest.approx((p / truth.pixel_scale, q / truth.pixel_scale),
                                                          abs=0.05)
    with fits.open(tutorial4.science[1]) as hdus:
        assert (hdus[0].header["POFFSET"], hdus[0].header["QOFFSET"]) == tuple(offsets[1]["p", "q"])
        assert (hdus[0].header["RAOFFSET"], hdus[0].header["DECOFFSE"]) == (offsets["p"][1], -offsets["q"][1])


# -- statistics ------------------------------------------------------------------------

def test_bias_statistics(tutorial4):
    truth = tutorial4.truth
    with fits.open(tutorial4.bias[0]) as hdus:
        for index in (0, 5, 11):
            hdu = hdus[index + 1]
            data = hdu.data.astype(float)
            over = data[Section.from_string(hdu.header["BIASSEC"]).slices][100:]
            pix = data[Section.from_string(hdu.header["DATASEC"]).slices][100:]
            expected = truth.amps["read_noise"][index] / truth.amps["gain"][index]
            rows = over.mean(axis=1)
            assert np.std(over - rows[:, None]) == pytest.approx(expected, rel=0.08)
            residual = pix - rows[:, None] - truth.bias_structure(index)[100:]
            assert np.std(residual) == pytest.approx(expected, rel=0.08)
            assert np.mean(residual) == pytest.approx(0.0, abs=0.1)
            level = truth.amps["bias_level"][index] + truth.frame(tutorial4.bias[0].stem).bias_offset_adu
            assert np.median(over) == pytest.approx(level, abs=1.0)


def test_sky_and_flat_levels(tutorial4):
    truth = tutorial4.truth
    index = 6  # CCD2, fully illuminated
    for path in (tutorial4.science[0], tutorial4.flat[0], tutorial4.flat[-1]):
        frame = truth.frame(path.stem)
        with fits.open(path) as hdus:
            hdu = hdus[index + 1]
            data = hdu.data.astype(float)
            rows = data[Section.from_string(hdu.header["BIASSEC"]).slices].mean(axis=1)
            pix = data[Section.from_string(hdu.header["DATASEC"]).slices]
            electrons = (pix - rows[:, None] - truth.bias_structure(index)) * truth.amps["gain"][index]
            sky = np.median(electrons / truth.true_flat(index))
            assert sky == pytest.approx(frame.sky_e, rel=0.01)
            if frame.kind == "flat":
                peak = np.percentile(hdus[6].data, 99.9)
                assert 18000 < peak < 32000
            else:
                assert 150 < frame.sky_e / 4 < 600  # a few hundred e- per 2x2 pixel


def test_saturation_and_cosmic_rays(tutorial4):
    truth = tutorial4.truth
    assert 0 < np.sum(truth.stars["saturated"]) < 0.1 * len(truth.stars)
    name = SCIENCE_NAMES[2]
    crs = truth.cosmic_rays(name)
    assert 100 < len(crs) < 3000
    with fits.open(tutorial4.directory / f"{name}.fits") as hdus:
        strong = crs[crs["electrons"] > 2000]
        values = np.array([hdus[e + 1].data[y, x] for e, x, y in zip(strong["ext"], strong["x"], strong["y"])])
        assert np.median(values) > 700  # bias ~450 ADU + > 1200 ADU of charge, mostly
        hot = max(hdus[i].data.max() for i in range(1, 13))
        assert hot == 65535


def test_flat_truth_shape(tutorial4):
    truth = tutorial4.truth
    centre = truth.true_flat(5)
    assert centre.shape == truth.datasec(5).shape
    assert np.median(centre) == pytest.approx(1.0, abs=0.03)
    assert np.std(centre[500:560, 40:100]) == pytest.approx(0.01, rel=0.3)
    assert np.max(truth.true_flat(0)) < 1e-3  # outer amplifiers are not illuminated
    assert 0.95 < truth.flat_normalisation() < 1.0  # vignetting and the field edge on CCD2
    assert np.median(truth.normalized_flat(5)) == pytest.approx(1.0, abs=0.01)
    # the innermost amplifiers of CCD1 and CCD3 mirror each other: their ratio is the QE ratio
    ratio = np.median(truth.true_flat(8)) / np.median(truth.true_flat(3))
    assert ratio == pytest.approx(1.027 / 0.965, rel=0.01)


def test_fringes(zband):
    truth = zband.truth
    assert truth.fringe and truth.filter_name == "z"
    index = 6
    pattern = truth.fringe_pattern(index)
    stack = []
    for path in zband.science:
        with fits.open(path) as hdus:
            hdu = hdus[index + 1]
            assert hdus[0].header["FILTER2"] == "z_G0304"
            data = hdu.data.astype(float)
            rows = data[Section.from_string(hdu.header["BIASSEC"]).slices].mean(axis=1)
            pix = data[Section.from_string(hdu.header["DATASEC"]).slices]
            stack.append((pix - rows[:, None] - truth.bias_structure(index)) * truth.amps["gain"][index]
                         / truth.true_flat(index))
    median = np.median(stack, axis=0)
    frame = truth.frame(zband.science[0].stem)
    amplitude = np.sum((median - np.median(median)) * pattern) / np.sum(pattern ** 2)
    assert amplitude == pytest.approx(frame.fringe_e, rel=0.15)


# -- determinism, errors, command line ------------------------------------------------

def test_deterministic(tmp_path):
    kwargs = dict(binning=4, roi="Central Stamp", groups=("science",))
    a = make_tutorial_dataset(tmp_path / "a", seed=7, **kwargs)
    b = make_tutorial_dataset(tmp_path / "b", seed=7, **kwargs)
    c = make_tutorial_dataset(tmp_path / "c", seed=8, **kwargs)
    for pa, pb, pc in zip(a.science, b.science, c.science):
        with fits.open(pa) as ha, fits.open(pb) as hb, fits.open(pc) as hc:
            for ea, eb, ec in zip(ha[1:], hb[1:], hc[1:]):
                assert np.array_equal(ea.data, eb.data)
                assert not np.array_equal(ea.data, ec.data)
    assert np.array_equal(a.truth.stars["ra"], b.truth.stars["ra"])
    assert a.truth.cosmic_rays(SCIENCE_NAMES[0]).as_array().tolist() == \
        b.truth.cosmic_rays(SCIENCE_NAMES[0]).as_array().tolist()


def test_bad_input(tmp_path):
    with pytest.raises(ParameterError):
        make_tutorial_dataset(tmp_path, binning=3)
    with pytest.raises(ParameterError):
        make_tutorial_dataset(tmp_path, filter_name="g")
    with pytest.raises(ParameterError):
        make_tutorial_dataset(tmp_path, roi="Top Half")
    with pytest.raises(ParameterError):
        make_tutorial_dataset(tmp_path, groups=("darks",))
    with pytest.raises(FileProblem):
        load_truth(tmp_path)


def test_command_line(tmp_path, capsys):
    status = cli_main(["make-tutorial", str(tmp_path), "--binning", "4", "--roi", "Central Stamp",
                       "--groups", "flat"])
    out = capsys.readouterr().out
    assert status == 0
    assert "N20170702S0178.fits" in out and "wrote 5 files" in out
    assert load_truth(tmp_path).roi == "Central Stamp"
