"""Descriptors and tags on hand-built headers of the four GMOS detector types.

The headers follow the archive conventions (``shared/reference/gmos-raw-files.md``
and DRAGONS ``gemini_instruments/gmos``); expected values are DRAGONS'
lookup-table entries and rules, written out here by hand.
"""
import datetime as dt
from pathlib import Path

import pytest
from astropy.io import fits

from gmoswidgets.errors import FileProblem
from gmoswidgets.frame import HeaderSet
from gmoswidgets.gmos.descriptors import ccdsum_binning, descriptor_names, descriptor_value
from gmoswidgets.gmos.tags import format_tags, tags_of
from gmoswidgets.sections import Section

def _hamamatsu_amps(ccds):
    """Amplifier names left to right: amps run 4, 3, 2, 1 on each CCD."""
    return [[f"{ccd}, {n}" for n in (4, 3, 2, 1)] for ccd in ccds]


# name: (INSTRUME, OBSERVAT, DETTYPE, CCD names, CCD height, amplifier names per CCD)
DETECTORS = {
    "N-Hamamatsu": ("GMOS-N", "Gemini-North", "S10892-N",
                    ["BI13-20-4k-1", "BI12-09-4k-2", "BI13-18-4k-2"], 4224,
                    _hamamatsu_amps(["BI13-20-4k-1", "BI12-09-4k-2", "BI13-18-4k-2"])),
    "S-Hamamatsu": ("GMOS-S", "Gemini-South", "S10892",
                    ["BI5-36-4k-2", "BI11-33-4k-1", "BI12-34-4k-1"], 4224,
                    _hamamatsu_amps(["BI5-36-4k-2", "BI11-33-4k-1", "BI12-34-4k-1"])),
    "N-e2vDD": ("GMOS-N", "Gemini-North", "SDSU II e2v DD CCD42-90",
                ["e2v 10031-23-05", "e2v 10031-01-03", "e2v 10031-18-04"], 4608,
                [[f"{ccd}, left", f"{ccd}, right"]
                 for ccd in ["e2v 10031-23-05", "e2v 10031-01-03", "e2v 10031-18-04"]]),
    "N-EEV": ("GMOS-N", "Gemini-North", "SDSU II CCD",
              ["EEV 9273-16-03", "EEV 9273-20-04", "EEV 9273-20-03"], 4608,
              [["EEV 9273-16-03, right"], ["EEV 9273-20-04, right"], ["EEV 9273-20-03, left"]]),
}


def make_headers(detector="N-Hamamatsu", xbin=2, ybin=2, kind="science", gain=1.6,
                 ampinteg=11880, **phu_values):
    """A HeaderSet like a raw full-frame file of ``detector``."""
    inst, site, dettype, ccds, height, amp_names = DETECTORS[detector]
    amps_per_ccd = len(amp_names[0])
    phu = fits.Header()
    phu["INSTRUME"] = inst
    phu["OBSERVAT"] = site
    phu["TELESCOP"] = site
    phu["DETTYPE"] = dettype
    phu["DETID"] = ",".join(ccds)
    phu["AMPINTEG"] = ampinteg
    phu["DATE-OBS"] = "2017-06-14"
    phu["TIME-OBS"] = "05:30:36.5"
    phu["EXPTIME"] = 10.0
    phu["RA"], phu["DEC"] = 229.9, 0.1
    phu["FILTER1"] = "open1-6"
    phu["FILTER2"] = "i_G0302"
    phu["OBSMODE"] = "IMAGE"
    phu["GRATING"] = "MIRROR"
    phu["DETRO1X"], phu["DETRO1XS"] = 1, 6144 // xbin
    phu["DETRO1Y"], phu["DETRO1YS"] = 1, height // ybin
    if kind == "bias":
        phu.update({"OBSTYPE": "BIAS", "OBJECT": "Bias", "OBSCLASS": "dayCal",
                    "FRAME": "AZEL_TOPO", "AIRMASS": 1.0, "ELEVATIO": 90.0})
    elif kind == "twilight":
        phu.update({"OBSTYPE": "OBJECT", "OBJECT": "Twilight", "OBSCLASS": "dayCal",
                    "FRAME": "FK5", "TRKFRAME": "FK5", "RATRACK": 0.0, "DECTRACK": 0.0,
                    "AIRMASS": 1.3, "ELEVATIO": 50.0})
    else:
        phu.update({"OBSTYPE": "OBJECT", "OBJECT": "starfield", "OBSCLASS": "science",
                    "FRAME": "FK5", "TRKFRAME": "FK5", "RATRACK": 0.0, "DECTRACK": 0.0,
                    "AIRMASS": 1.1, "ELEVATIO": 65.0})
    for key, value in phu_values.items():
        phu[key.replace("_", "-")] = value
    amp_width = 2048 // amps_per_ccd
    nx, ny = amp_width // xbin, height // ybin
    headers = []
    for ccd_index, ccd in enumerate(ccds):
        for k in range(amps_per_ccd):
            hdr = fits.Header()
            number = ccd_index * amps_per_ccd + k
            if number % 2 == 0:
                hdr["DATASEC"], hdr["BIASSEC"] = f"[1:{nx},1:{ny}]", f"[{nx + 1}:{nx + 32},1:{ny}]"
            else:
                hdr["DATASEC"], hdr["BIASSEC"] = f"[33:{nx + 32},1:{ny}]", f"[1:32,1:{ny}]"
            x0 = ccd_index * 2048 + k * amp_width
            hdr["DETSEC"] = f"[{x0 + 1}:{x0 + amp_width},1:{height}]"
            hdr["CCDSEC"] = f"[{k * amp_width + 1}:{(k + 1) * amp_width},1:{height}]"
            hdr["CCDSUM"] = f"{xbin} {ybin}"
            hdr["CCDNAME"] = ccd
            hdr["AMPNAME"] = amp_names[ccd_index][k]
            hdr["GAIN"] = gain
            hdr["RDNOISE"] = 4.0
            headers.append(hdr)
    return HeaderSet(phu, headers, Path(f"{detector}_{kind}.fits"), [(ny, nx + 32)] * len(headers))


# -- descriptors ---------------------------------------------------------------

@pytest.mark.parametrize("detector, namps, name", [
    ("N-Hamamatsu", 12, "Hamamatsu-N"), ("S-Hamamatsu", 12, "Hamamatsu-S"),
    ("N-e2vDD", 6, "e2vDD"), ("N-EEV", 3, "EEV")])
def test_detector_identity(detector, namps, name):
    hs = make_headers(detector)
    assert len(hs.ext_headers) == namps
    assert descriptor_value(hs, "detector_name") == name
    assert descriptor_value(hs, "instrument") == DETECTORS[detector][0]


@pytest.mark.parametrize("f1, f2, expected", [
    ("open1-6", "i_G0302", "i"), ("open1-6", "z_G0304", "z"), ("g_G0301", "open2-8", "g"),
    ("open1-6", "open2-8", "open"), ("GG455_G0305", "r_G0303", "GG455&r"),
    ("open1-6", "Dark", "blank")])
def test_filter_name_short_form(f1, f2, expected):
    assert descriptor_value(make_headers(FILTER1=f1, FILTER2=f2), "filter_name") == expected


@pytest.mark.parametrize("ccdsum", [(1, 1), (2, 2), (4, 4), (1, 2), (2, 4)])
def test_binning_from_ccdsum(ccdsum):
    hs = make_headers(xbin=ccdsum[0], ybin=ccdsum[1])
    assert (descriptor_value(hs, "detector_x_bin"), descriptor_value(hs, "detector_y_bin")) == ccdsum
    assert descriptor_value(hs, "pixel_scale") == pytest.approx(0.0807 * ccdsum[1])


@pytest.mark.parametrize("detector, ampinteg, speed", [
    ("N-Hamamatsu", 11880, "slow"), ("N-Hamamatsu", 5000, "fast"), ("S-Hamamatsu", 1000, "fast"),
    ("N-e2vDD", 5000, "slow"), ("N-EEV", 1000, "fast"), ("N-EEV", 3200, "slow")])
def test_read_speed_setting(detector, ampinteg, speed):
    """DRAGONS: slow above 8000 ns for Hamamatsu, above 2000 ns for EEV / e2vDD."""
    assert descriptor_value(make_headers(detector, ampinteg=ampinteg), "read_speed_setting") == speed


@pytest.mark.parametrize("gain, setting", [(1.6, "low"), (2.99, "low"), (5.0, "high")])
def test_gain_setting_from_raw_gain_keyword(gain, setting):
    assert descriptor_value(make_headers(gain=gain), "gain_setting") == setting


@pytest.mark.parametrize("detector, ampinteg, header_gain, first_gain, last_gain", [
    # DRAGONS gmosampsGain: ('slow','low','BI13-20-4k-1, 4') and ('slow','low','BI13-18-4k-2, 1')
    ("N-Hamamatsu", 11880, 1.6, 1.675, 1.654),
    # ('fast','low','BI5-36-4k-2, 4') and ('fast','low','BI12-34-4k-1, 1') (current table)
    ("S-Hamamatsu", 1000, 1.6, 1.556, 1.445),
    # gmosampsGainBefore20170224: ('slow','low','e2v 10031-23-05, left') / ('..18-04, right')
    ("N-e2vDD", 5000, 2.2, 2.310, 2.330),
    # gmosampsGainBefore20150826: ('fast','high','EEV 9273-16-03, right') / ('..20-03, left')
    ("N-EEV", 1000, 5.0, 4.839, 5.397),
])
def test_gain_lookup(detector, ampinteg, header_gain, first_gain, last_gain):
    values = descriptor_value(make_headers(detector, ampinteg=ampinteg, gain=header_gain), "gain")
    assert values[0] == pytest.approx(first_gain) and values[-1] == pytest.approx(last_gain)
    assert all(1.0 < v < 6.0 and v != header_gain for v in values)


def test_gain_falls_back_to_header_when_not_tabulated():
    # Hamamatsu slow read / high gain has no measured value in DRAGONS' table
    hs = make_headers("N-Hamamatsu", ampinteg=11880, gain=4.5)
    assert descriptor_value(hs, "gain") == [4.5] * 12
    hs = make_headers("N-Hamamatsu")
    hs.ext_headers[3]["AMPNAME"] = "UNKNOWN, 9"
    values = descriptor_value(hs, "gain")
    assert values[3] == 1.6 and values[2] == pytest.approx(1.620)  # "BI13-20-4k-1, 2"


def test_gain_in_electrons_is_one():
    hs = make_headers(BUNIT="electron")
    assert descriptor_value(hs, "gain") == [1.0] * 12


def test_sections_hamamatsu_2x2():
    hs = make_headers()
    data, over = descriptor_value(hs, "data_section"), descriptor_value(hs, "overscan_section")
    assert data[0] == Section(0, 256, 0, 2112) and over[0] == Section(256, 288, 0, 2112)
    assert data[1] == Section(32, 288, 0, 2112) and over[1] == Section(0, 32, 0, 2112)
    det = descriptor_value(hs, "detector_section")
    assert det[0].to_string() == "[1:512,1:4224]" and det[11].to_string() == "[5633:6144,1:4224]"
    assert descriptor_value(hs, "array_section")[5].to_string() == "[513:1024,1:4224]"


def test_sections_eev_unbinned():
    hs = make_headers("N-EEV", xbin=1, ybin=1)
    assert descriptor_value(hs, "data_section")[0].shape == (4608, 2048)
    assert descriptor_value(hs, "detector_section")[2].to_string() == "[4097:6144,1:4608]"


@pytest.mark.parametrize("detector, xbin, roi, expected", [
    ("N-Hamamatsu", 2, None, "Full Frame"),
    ("N-Hamamatsu", 1, None, "Full Frame"),
    ("N-Hamamatsu", 2, (1, 3072, 1625, 512), "Central Spectrum"),
    ("S-Hamamatsu", 2, (2923, 150, 1987, 150), "Central Stamp"),
    ("N-Hamamatsu", 1, (2923, 300, 1987, 308), "Central Stamp"),
    ("N-Hamamatsu", 2, (2049, 1024, 1, 2112), "CCD2"),
    ("N-e2vDD", 2, (1, 3072, 1792, 512), "Central Spectrum"),
    ("N-EEV", 1, (1, 6144, 1793, 1024), "Central Spectrum"),
    ("N-Hamamatsu", 2, (1, 3072, 1, 100), "Custom"),
    # unbinned sizes in a binned file are not a named ROI (DETRO1XS/YS are binned)
    ("N-Hamamatsu", 2, (1, 6144, 1, 4224), "Custom"),
])
def test_detector_roi_setting(detector, xbin, roi, expected):
    hs = make_headers(detector, xbin=xbin, ybin=xbin)
    if roi is not None:
        for key, value in zip(("DETRO1X", "DETRO1XS", "DETRO1Y", "DETRO1YS"), roi):
            hs.phu[key] = value
    assert descriptor_value(hs, "detector_roi_setting") == expected


def test_detector_roi_setting_undefined_without_keywords():
    hs = make_headers()
    del hs.phu["DETRO1X"]
    assert descriptor_value(hs, "detector_roi_setting") == "Undefined"


def test_amp_read_area_and_array_name():
    hs = make_headers()
    assert descriptor_value(hs, "amp_read_area").startswith(
        "'BI13-20-4k-1, 4':[1:512,1:4224],'BI13-20-4k-1, 3':[513:1024,1:4224],")
    assert descriptor_value(hs, "array_name")[:2] == ["BI13-20-4k-1, 4", "BI13-20-4k-1, 3"]
    eev = make_headers("N-EEV")
    assert descriptor_value(eev, "amp_read_area") == (
        "'EEV 9273-16-03, right':[1:2048,1:4608],'EEV 9273-20-04, right':[2049:4096,1:4608],"
        "'EEV 9273-20-03, left':[4097:6144,1:4608]")


def test_ut_date_and_datetime():
    hs = make_headers()
    assert descriptor_value(hs, "ut_date") == dt.date(2017, 6, 14)
    assert descriptor_value(hs, "ut_datetime") == dt.datetime(2017, 6, 14, 5, 30, 36, 500000)
    del hs.phu["TIME-OBS"]
    hs.phu["UTSTART"] = "23:59:59"
    assert descriptor_value(hs, "ut_datetime") == dt.datetime(2017, 6, 14, 23, 59, 59)


def test_identity_descriptors():
    hs = make_headers()
    assert descriptor_value(hs, "object") == "starfield"
    assert descriptor_value(hs, "observation_class") == "science"
    assert descriptor_value(hs, "exposure_time") == 10.0


def test_missing_keyword_names_file_and_keyword():
    hs = make_headers()
    del hs.phu["EXPTIME"]
    with pytest.raises(FileProblem, match=r"N-Hamamatsu_science.fits.*EXPTIME"):
        descriptor_value(hs, "exposure_time")


@pytest.mark.parametrize("value", ["2", "2 x", "2 2 2", "0 2", "-1 1", "1.5 2"])
def test_malformed_ccdsum_names_the_file(value):
    hs = make_headers()
    hs.ext_headers[0]["CCDSUM"] = value
    with pytest.raises(FileProblem, match=r"N-Hamamatsu_science.fits: bad CCDSUM value"):
        descriptor_value(hs, "detector_x_bin")


def test_ccdsum_missing_is_an_error_unless_a_default_is_given():
    header = fits.Header({"CCDSUM": "1 4"})
    assert ccdsum_binning(header, "a.fits") == (1, 4)
    del header["CCDSUM"]
    assert ccdsum_binning(header, "a.fits", default=(1, 1)) == (1, 1)
    with pytest.raises(FileProblem, match="a.fits: missing keyword CCDSUM"):
        ccdsum_binning(header, "a.fits")


def test_unknown_descriptor_lists_valid_names():
    with pytest.raises(KeyError, match="exposure_time"):
        descriptor_value(make_headers(), "exposuretime")
    assert {"object", "exposure_time", "filter_name", "ut_date"} <= set(descriptor_names())


# -- tags ---------------------------------------------------------------------

SEED_BIAS = "(AT_ZENITH) (AZEL_TARGET) (BIAS) (CAL) (GEMINI) (GMOS) (NON_SIDEREAL) (NORTH) (RAW) (UNPREPARED)"
SEED_SCIENCE = "(GEMINI) (GMOS) (IMAGE) (NORTH) (RAW) (SIDEREAL) (UNPREPARED)"
SEED_TWILIGHT = "(CAL) (FLAT) (GEMINI) (GMOS) (IMAGE) (NORTH) (RAW) (SIDEREAL) (TWILIGHT) (UNPREPARED)"


@pytest.mark.parametrize("kind, expected", [
    ("bias", SEED_BIAS), ("science", SEED_SCIENCE), ("twilight", SEED_TWILIGHT)])
def test_raw_tags_as_printed_by_typewalk_in_the_seed(kind, expected):
    assert format_tags(tags_of(make_headers(kind=kind))) == expected


def test_south_site_tag():
    tags = tags_of(make_headers("S-Hamamatsu", kind="bias"))
    assert "SOUTH" in tags and "NORTH" not in tags


@pytest.mark.parametrize("marker, kind, present, absent", [
    ("PROCBIAS", "bias", {"PROCESSED", "BIAS", "CAL", "PREPARED"}, {"RAW", "UNPREPARED"}),
    ("PROCFLAT", "twilight", {"PROCESSED", "FLAT", "CAL"}, {"RAW", "UNPREPARED"}),
    ("PROCSCI", "science", {"PROCESSED", "PROCESSED_SCIENCE", "IMAGE"}, {"CAL", "RAW"}),
    ("PROCFRNG", "science", {"PROCESSED", "FRINGE", "CAL"}, {"RAW"}),
])
def test_processed_markers(marker, kind, present, absent):
    hs = make_headers(kind=kind)
    hs.phu["GEM-TLM"] = "2024-01-01T00:00:00"
    hs.phu["PREPARE"] = "2024-01-01T00:00:00"
    hs.phu[marker] = "2024-01-01T00:00:00"
    tags = tags_of(hs)
    assert present <= tags and not (absent & tags)


def test_prepared_but_not_processed():
    hs = make_headers()
    hs.phu["GEM-TLM"] = "2024-01-01T00:00:00"
    hs.phu["PREPARE"] = "2024-01-01T00:00:00"
    tags = tags_of(hs)
    assert "PREPARED" in tags and "UNPREPARED" not in tags and "RAW" not in tags
