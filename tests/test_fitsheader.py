"""fitsheader.scan_headers (no astropy) reads what astropy reads, or None; then read_headers."""
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from gmoswidgets.caldb import properties_of
from gmoswidgets.caldb.testing import write_calibration
from gmoswidgets.errors import FileProblem
from gmoswidgets.fitsheader import HeaderValues, header_values, scan_headers
from gmoswidgets.frame import HeaderSet, read_frame, read_headers
from gmoswidgets.gmos.descriptors import descriptor_names, descriptor_value
from gmoswidgets.gmos.tags import tags_of

_COMMENTARY = ("COMMENT", "HISTORY", "")


def _descriptors(headers) -> dict:
    out = {}
    for name in descriptor_names():
        try:
            out[name] = descriptor_value(headers, name)
        except Exception as exc:  # the same error from both readers
            out[name] = (type(exc).__name__, str(exc))
    return out


def assert_same_as_astropy(path):
    scanned, read = scan_headers(path), read_headers(path)
    assert type(scanned) is type(read) is HeaderSet, path     # one class, two kinds of header
    assert isinstance(scanned.phu, HeaderValues) and scanned.path == read.path
    assert len(scanned.ext_headers) == len(read.ext_headers) and scanned.shapes == read.shapes
    for ours, theirs in [(scanned.phu, read.phu), *zip(scanned.ext_headers, read.ext_headers)]:
        assert set(ours) == set(theirs.keys())
        for key in theirs.keys():
            if key in _COMMENTARY:
                assert ours[key] == list(theirs[key]), key
            else:
                assert ours[key] == theirs[key] and type(ours[key]) is type(theirs[key]), key
    assert tags_of(scanned) == tags_of(read)
    assert _descriptors(scanned) == _descriptors(read)
    assert properties_of(scanned, lenient=True) == properties_of(read, lenient=True)


def test_raw_tutorial_files_read_as_astropy_reads_them(tutorial4):
    for path in [*tutorial4.bias[:2], *tutorial4.flat[:2], *tutorial4.science[:2]]:
        assert_same_as_astropy(path)


def test_other_detectors_and_rois(tmp_path):
    from gmoswidgets.data import make_tutorial_dataset
    ds = make_tutorial_dataset(tmp_path, instrument="GMOS-S", detector="eev", binning=4,
                               roi="Central Spectrum", groups=("bias",))
    assert_same_as_astropy(ds.bias[0])


def test_processed_files_with_planes_and_tables(tmp_path, tutorial4):
    for kind in ("bias", "flat", "fringe"):
        assert_same_as_astropy(write_calibration(tmp_path / f"cal_{kind}.fits", kind))
    frame = read_frame(tutorial4.science[0])
    frame.exts[0].variance = np.ones_like(frame.exts[0].data, dtype=np.float32)
    frame.exts[0].objcat = Table({"x": [1.5, 2.5], "label": ["a", "b"]})
    frame.tables["PROVENANCE"] = Table({"filename": ["N1.fits"], "step": ["prepare"]})
    frame.phu["PREPARE"] = "2017-06-14T00:00:00"
    frame.phu["HISTORY"] = "it's a 'quoted' history"
    frame.phu["LONGVAL"] = (1.5e-300, "a D-exponent")
    frame.write(tmp_path / "processed.fits")
    assert_same_as_astropy(tmp_path / "processed.fits")


@pytest.mark.parametrize("image", [
    "KEY     = 'text    '           / trailing blanks",
    "KEY     = '  lead'",
    "KEY     = 'it''s'",
    "KEY     = ''",
    "KEY     = '        '",
    "KEY     =                    7",
    "KEY     =                 +007 / int",
    "KEY     =                 -1.5",
    "KEY     =              1.0D+02",
    "KEY     =                 1E-3",
    "KEY     =                   .5",
    "KEY     =                   3.",
    "KEY     =                    T",
    "KEY     =                    F / false",
    "KEY     = 123456789012345678901",
])
def test_card_values_as_astropy_parses_them(tmp_path, image):
    path = tmp_path / "one.fits"
    shutil.copy(write_calibration(tmp_path / "cal.fits", "bias"), path)
    with fits.open(path, mode="update") as hdus:
        hdus[0].header.append(fits.Card.fromstring(image.ljust(80)))
    ours, theirs = scan_headers(path).phu["KEY"], read_headers(path).phu["KEY"]
    assert ours == theirs and type(ours) is type(theirs)


def _edited(tmp_path, tutorial4, edit) -> str:
    path = tmp_path / "edited.fits"
    shutil.copy(tutorial4.bias[0], path)
    with fits.open(path, mode="update") as hdus:
        edit(hdus)
    return path


@pytest.mark.parametrize("edit", [
    lambda h: h[0].header.set("HIERARCH LONG KEYWORD NAME", 1),
    lambda h: h[0].header.set("LONGSTR", "x" * 100),
    lambda h: h[0].header.append(fits.Card.fromstring("NOVALUE =".ljust(80))),
    lambda h: h[1].header.set("XTRA", 1 + 2j),
    lambda h: h[0].header.append(fits.Card.fromstring("DP1     = 'AXIS.1: 1'".ljust(80))),
], ids=["hierarch", "continue", "no-value", "complex", "record-valued"])
def test_cards_astropy_must_read_fall_back(tmp_path, tutorial4, edit):
    path = _edited(tmp_path, tutorial4, edit)
    assert scan_headers(path) is None
    headers = header_values(path)
    assert isinstance(headers, HeaderSet) and not isinstance(headers.phu, HeaderValues)


def test_problem_files_get_read_headers_messages(tmp_path, tutorial4):
    truncated = tmp_path / "cut.fits"
    truncated.write_bytes(open(tutorial4.bias[0], "rb").read()[:-3000])
    not_gmos = _edited(tmp_path, tutorial4, lambda h: h[0].header.set("INSTRUME", "NIRI"))
    text = tmp_path / "text.fits"
    text.write_text("not FITS at all\n")
    huge = tmp_path / "huge.fits"
    fits.PrimaryHDU(header=fits.Header({"INSTRUME": "GMOS-N", "NAXIS": 2})).writeto(huge)
    with open(huge, "r+b") as fh:   # NAXIS1/2 of a 10^10-pixel image, no data
        raw = fh.read().replace(b"NAXIS   =                    0",
                                b"NAXIS   =                    2")
        fh.seek(0)
        fh.write(raw)
    for path in (truncated, not_gmos, text, huge):
        assert scan_headers(path) is None, path
        with pytest.raises(FileProblem) as ours:
            header_values(path)
        with pytest.raises(FileProblem) as theirs:
            read_headers(path)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(FileProblem, match="no such file"):
        header_values(tmp_path / "missing.fits")


def test_header_values_are_case_insensitive_and_keep_the_first_card():
    header = HeaderValues()
    header.setdefault("GAIN", 2.0)
    header.setdefault("GAIN", 3.0)
    assert header["gain"] == header.get("Gain") == 2.0 and "gain" in header
    assert header.get("rdnoise", 4) == 4
