"""Static bad-pixel masks: caldb add, association, caldb explain, addDQ's default, --user_cal.

The BPM files are written as DRAGONS' are (``static_bpm`` section of the
reference JSON): PHU ``BPMASK``, one uint16 SCI extension per amplifier at
the raw size (overscan included) holding the mask, no VAR/DQ.
"""
import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets import dq
from gmoswidgets.caldb import properties_of
from gmoswidgets.caldb import service as caldb_service
from gmoswidgets.cli.caldb import main as caldb
from gmoswidgets.caldb.lookup import CalibrationLookup, default_service
from gmoswidgets.sections import Section
from helpers import run_steps
from test_illumination_masks import ROIS, raw_frame

MASK_CONFIG = "gmos-n_illum_HAM_44_12amp_v1.fits.bz2"       # GMOS-N Hamamatsu 4x4, 12 amps
#: (extension, row, column) of bad pixels in each BPM, inside the data sections
BAD = {"archive": [(4, 100, 40), (5, 500, 90), (6, 529, 36)],
       "user": [(7, 10, 50), (0, 1, 1)]}


@pytest.fixture
def home(home):
    """The shared fake home (conftest), and the default calibration service put back after."""
    saved = caldb_service._DEFAULT["service"]
    yield home
    caldb_service._DEFAULT["service"] = saved


def science(window=None):
    frame = raw_frame(MASK_CONFIG, window)
    frame.phu.update({"OBSCLASS": "science", "TIME-OBS": "05:00:00", "DATE-OBS": "2017-06-14",
                      "FILTER1": "open1-6", "FILTER2": "i_G0302", "EXPTIME": 10.0})
    return frame


def _write_mask_planes(path, phu, layout, bad):
    """A BPM file: ``phu``, then per extension of ``layout`` a SCI plane with DQ 1 at ``bad``."""
    hdus = [fits.PrimaryHDU(header=phu)]
    for index, ext in enumerate(layout.exts):
        mask = np.zeros(ext.data.shape, np.uint16)
        for e, row, col in bad:
            if e == index:
                mask[row, col] = dq.BAD_PIXEL
        hdus.append(fits.ImageHDU(mask, ext.header.copy(), name="SCI"))
    fits.HDUList(hdus).writeto(path)


def write_bpm(path, bad, date="2017-03-06"):
    """A BPM as the archive serves them, from the full-frame raw layout."""
    raw = science()
    phu = raw.phu.copy()
    phu.update({"OBJECT": "BPM", "BPMASK": f"{date}T00:00:00", "DATE-OBS": date})
    _write_mask_planes(path, phu, raw, bad)
    return path


def bad_pixels(frame):
    return sorted((i, int(r), int(c)) for i, ext in enumerate(frame.exts)
                  for r, c in zip(*np.nonzero(ext.mask & dq.BAD_PIXEL)))


def test_bpm_tags_and_properties(tmp_path):
    path = write_bpm(tmp_path / "bpm_20170306_gmos-n_Ham_44_full_12amp.fits", BAD["archive"])
    props = properties_of(path, lenient=True)
    assert props.amp_names.count("+") == 11 and props.binning == "4x4"
    from gmoswidgets.frame import read_headers
    from gmoswidgets.gmos.tags import tags_of
    assert {"BPM", "CAL", "PROCESSED"} <= tags_of(read_headers(path))


def test_bpm_added_with_caldb_add_is_applied_by_default_and_explained(home, capsys):
    bpm = write_bpm(home / "bpm_20170306_gmos-n_Ham_44_full_12amp.fits", BAD["archive"])
    later = write_bpm(home / "bpm_20180101_gmos-n_Ham_44_full_12amp.fits", BAD["user"],
                      date="2018-01-01")
    sci = science()
    sci_path = sci.write(home / "N20170614S0201.fits")
    assert caldb(["init"]) == 0 and caldb(["add", str(bpm), str(later)]) == 0
    capsys.readouterr()
    assert caldb(["explain", str(sci_path), "processed_bpm"]) == 0
    text = capsys.readouterr().out
    assert bpm.name in text and later.name in text
    assert "valid from 2018-01-01" in text                # why the later mask is not chosen
    [out] = run_steps([sci], [("addDQ", {})], CalibrationLookup(service=default_service()))
    assert bad_pixels(out) == sorted(BAD["archive"])


def test_user_cal_processed_bpm_overrides_the_database(home):
    bpm = write_bpm(home / "bpm_20170306_gmos-n_Ham_44_full_12amp.fits", BAD["archive"])
    user = write_bpm(home / "my_bpm.fits", BAD["user"])
    assert caldb(["init"]) == 0 and caldb(["add", str(bpm)]) == 0
    [out] = run_steps([science()], [("addDQ", {})],
                      CalibrationLookup(user_cals=[f"processed_bpm:{user}"], service=default_service()))
    assert bad_pixels(out) == sorted(BAD["user"])


def test_full_frame_bpm_serves_an_roi_frame(home):
    """The archive rule: the ROI's amplifiers are a run of the BPM's; pixels land by DETSEC."""
    bpm = write_bpm(home / "bpm_20170306_gmos-n_Ham_44_full_12amp.fits", BAD["archive"])
    assert caldb(["init"]) == 0 and caldb(["add", str(bpm)]) == 0
    sci = science(ROIS["Hamamatsu"]["Central Stamp"])
    [out] = run_steps([sci], [("addDQ", {})], CalibrationLookup(service=default_service()))
    # the full-frame bad pixel (extension 6, row 529, column 36) in binned detector pixels
    def binned_detector(ext, row, col):
        detsec = Section.from_string(ext.header["DETSEC"])
        datasec = Section.from_string(ext.header["DATASEC"])
        return detsec.x1 // 4 + col - datasec.x1, detsec.y1 // 4 + row - datasec.y1

    want = binned_detector(science().exts[6], 529, 36)
    found = [binned_detector(ext, r, c) for ext in out.exts
             for r, c in zip(*np.nonzero(ext.mask & dq.BAD_PIXEL))]
    assert found == [want]


def test_no_bpm_in_the_database_is_logged_not_fatal(home, caplog):
    assert caldb(["init"]) == 0
    [out] = run_steps([science()], [("addDQ", {})], CalibrationLookup(service=default_service()))
    assert bad_pixels(out) == [] and "no static bad pixels flagged" in caplog.text


def test_a_finer_user_bpm_is_rebinned_by_or(tmp_path):
    """DRAGONS: a BPM passed with a finer binning is ORed block by block to the frame's binning."""
    sci4 = science()                                     # 4x4
    sci2 = raw_frame("gmos-n_illum_HAM_22_12amp_v1.fits.bz2")
    path = tmp_path / "bpm_2x2.fits"
    phu = sci2.phu.copy()
    phu["BPMASK"] = "2017-01-01T00:00:00"
    bad = {(4, 201, 81), (4, 200, 80), (9, 7, 40)}       # (extension, row, column) at 2x2
    _write_mask_planes(path, phu, sci2, bad)
    [out] = run_steps([sci4], [("addDQ", {"static_bpm": None, "user_bpm": str(path)})])
    want = set()
    for e, row, col in bad:
        d2 = Section.from_string(sci2.exts[e].header["DATASEC"])
        d4 = Section.from_string(sci4.exts[e].header["DATASEC"])
        want.add((e, (row - d2.y1) // 2 + d4.y1, (col - d2.x1) // 2 + d4.x1))
    assert set(bad_pixels(out)) == want and len(want) == 2
