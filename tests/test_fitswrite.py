"""Frame.write through gmoswidgets.fitswrite: the very bytes astropy's writeto writes."""
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from gmoswidgets import fitswrite
from gmoswidgets.frame import Extension, Frame, read_frame
from gmoswidgets.outputs import add_history, add_provenance


def _astropy_bytes(frame, path):
    """What Frame.write wrote before fitswrite: astropy's writeto of the same layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        frame.to_hdulist().writeto(path, overwrite=True, output_verify="silentfix")
    return path.read_bytes()


def _assert_astropys_bytes(frame, tmp_path):
    ours = frame.write(tmp_path / "ours.fits").read_bytes()
    assert ours == _astropy_bytes(frame, tmp_path / "astropy.fits")
    return tmp_path / "ours.fits"


def _unusual_header():
    """Cards whose handling astropy decides: commentary, blank, HIERARCH, CONTINUE,
    record-valued, duplicates, and keywords Header.strip removes (first occurrence only)."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["EXPTIME"] = (10.0, "seconds")
    header.add_history("first")
    header.add_comment("a comment")
    header.append(fits.Card("", "blank commentary"), end=True)
    header["HIERARCH ESO DET CHIP"] = 3
    header["LONGSTR"] = "x" * 150
    header.append(fits.Card.fromstring("DP1     = 'AXIS.1: 1'".ljust(80)))
    header.append(fits.Card.fromstring("DP1     = 'AXIS.2: 2'".ljust(80)))
    header.append(("DUPL", 1), end=True)
    header.append(("DUPL", 2), end=True)
    header.append(("EXTEND", True), end=True)
    header.append(("EXTEND", False), end=True)
    header.append(("TFIELDS", 1), end=True)
    header.append(("TTYPE1", "first goes"), end=True)
    header.append(("TTYPE1", "second stays"), end=True)
    header["DATASEC"] = "[1:10,1:20]"
    header["EXTNAME"] = "OLD"
    header.add_history("second")
    return header


def _processed(raw_path):
    """A raw simulated GMOS frame turned into a processed one: float SCI, VAR, DQ, OBJMASK,
    OBJCAT, PROVENANCE and HISTORY (planes of the types the pipeline writes)."""
    frame = read_frame(raw_path)
    rng = np.random.default_rng(3)
    for index, ext in enumerate(frame):
        ext.data = ext.data.astype(np.float32) * np.float32(1.37)
        ext.data[0, :3] = (np.nan, np.inf, -0.0)
        ext.variance = ext.data.astype(np.float64) ** 2          # written as float32
        ext.mask = rng.integers(0, 1 << 16, size=ext.shape, dtype=np.uint16)  # every bit
        ext.objmask = (ext.mask & 1).astype(np.uint8)
        if index == 1:
            ext.objcat = Table({"NUMBER": [1, 2], "X_IMAGE": [3.5, 4.25]},
                               units={"X_IMAGE": "pix"})
    add_provenance(frame, raw_path, "prepare")
    from datetime import datetime, timezone
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    add_history(frame, "prepare", {"suffix": "_prepared"}, now, now)
    return frame


def test_raw_and_processed_gmos_frames_are_astropys_bytes(tutorial4, tmp_path):
    raw = tutorial4.bias[0]
    frame = read_frame(raw)
    frame.path = None
    _assert_astropys_bytes(frame, tmp_path)                    # uint16 SCI (BZERO 32768)
    processed = _processed(raw)
    processed.path = None
    written = _assert_astropys_bytes(processed, tmp_path)
    back = read_frame(written)
    for ours, theirs in zip(back, processed):
        np.testing.assert_array_equal(ours.data, theirs.data)
        np.testing.assert_array_equal(ours.variance, theirs.variance.astype(np.float32))
        np.testing.assert_array_equal(ours.mask, theirs.mask)
        np.testing.assert_array_equal(ours.objmask, theirs.objmask)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16, np.int32,
                                   np.int64, np.uint16, np.uint32, ">f4", ">u2"])
def test_every_pixel_type_and_unusual_headers(tmp_path, dtype, monkeypatch):
    monkeypatch.setattr(fitswrite, "CHUNK_BYTES", 200)      # many chunks, a partial last one
    rng = np.random.default_rng(7)
    data = rng.integers(0, 250, size=(37, 23)).astype(dtype)
    phu = fits.Header([("INSTRUME", "GMOS-N"), ("EXTEND", False)])
    phu.add_history("phu history")
    frame = Frame(phu, [Extension(data, _unusual_header()),
                        Extension(data[::2, ::3], fits.Header([("CCDSUM", "2 2")]),  # a view
                                  mask=np.full((19, 8), 65535, np.uint16))])
    frame.tables["HISTORY"] = np.array([("a", "b")], dtype=[("primitive", "U1"), ("args", "U1")])
    written = _assert_astropys_bytes(frame, tmp_path)
    with fits.open(written) as hdus:
        np.testing.assert_array_equal(hdus[1].data, data)
        np.testing.assert_array_equal(hdus["SCI", 2].data, data[::2, ::3])
        assert hdus["DQ", 2].data.dtype == np.uint16 and (hdus["DQ", 2].data == 65535).all()


def test_rows_longer_than_the_buffer_and_three_axes(tmp_path, monkeypatch):
    monkeypatch.setattr(fitswrite, "CHUNK_BYTES", 64)
    data = np.arange(2 * 3 * 50, dtype=np.float32).reshape(2, 3, 50)
    frame = Frame(fits.Header([("INSTRUME", "GMOS-S")]), [Extension(data, fits.Header())])
    _assert_astropys_bytes(frame, tmp_path)


@pytest.mark.parametrize("case", ["blank", "naxis3", "int8", "uint64"])
def test_other_images_are_written_by_astropy(tmp_path, case):
    header = fits.Header({"blank": [("BLANK", -1)], "naxis3": [("NAXIS3", 5)]}.get(case, []))
    data = np.ones((4, 5, 3) if case == "naxis3" else (3, 4), {"int8": np.int8,
                   "uint64": np.uint64}.get(case, np.int16))
    frame = Frame(fits.Header([("INSTRUME", "GMOS-S")]), [Extension(data, header)])
    assert not all(fitswrite.writable(h, a)
                   for h, a in (p for p in frame._layout() if isinstance(p, tuple)))
    _assert_astropys_bytes(frame, tmp_path)


def test_failure_midway_leaves_no_file(tmp_path, monkeypatch):
    frame = Frame(fits.Header([("INSTRUME", "GMOS-N")]),
                  [Extension(np.zeros((4, 4), np.float32), fits.Header())] * 2)
    calls = []

    def boom(fd, array, buffer):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(fd, array, buffer)

    real = fitswrite._write_pixels
    monkeypatch.setattr(fitswrite, "_write_pixels", boom)
    with pytest.raises(OSError, match="disk full"):
        frame.write(tmp_path / "x.fits")
    assert list(tmp_path.iterdir()) == []
