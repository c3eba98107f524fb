"""Issue 12, items 10-12: broken files and odd inputs cost one line each, never a run.

Every bad file is made here from one simulated raw science file (4x4
binning); no test needs more than a few header reads.
"""
import builtins
import os
import shutil
import threading
from pathlib import Path

import pytest
from astropy.io import fits

from gmoswidgets.caldb import CalibrationService
from gmoswidgets.caldb.testing import write_calibration
from gmoswidgets.cli import dataselect, showd, typewalk
from gmoswidgets.cli.caldb import main as caldb_main
from gmoswidgets.errors import FileProblem
from gmoswidgets.fitscheck import MAX_PIXELS
from gmoswidgets.frame import read_frame, read_headers
from gmoswidgets.select import select_data


def _patch_card(source: Path, target: Path, key: str, card: bytes) -> Path:
    """Copy ``source`` to ``target`` with the PHU card ``key`` replaced by raw bytes."""
    raw = bytearray(source.read_bytes())
    start = raw.find(key.ljust(8).encode() + b"=")
    assert 0 <= start < 2880 * 20
    raw[start:start + 80] = card.ljust(80)[:80]
    target.write_bytes(bytes(raw))
    return target


@pytest.fixture(scope="module")
def bad_dir(tutorial4, tmp_path_factory):
    """A directory with two good raw files and one file per kind of problem."""
    d = tmp_path_factory.mktemp("badfiles")
    sci = Path(tutorial4.science[0])
    shutil.copy(sci, d / "good_sci.fits")
    shutil.copy(tutorial4.bias[0], d / "good_bias.fits")
    _patch_card(sci, d / "nonascii.fits", "OBJECT", "OBJECT  = starfield\u00e9".encode())
    _patch_card(sci, d / "nan.fits", "EXPTIME", b"EXPTIME =                  NaN / Exposure time")
    shutil.copy(tutorial4.bias[1], d / "noobstype.fits")
    with fits.open(d / "noobstype.fits", mode="update") as hdul:
        del hdul[0].header["OBSTYPE"]
    return d


def _err_lines(err, prog):
    lines = err.splitlines()
    assert all(line.startswith(f"{prog}: ") for line in lines), err
    assert "Traceback" not in err
    return lines


# -- item 10: unparsable cards ---------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("nonascii.fits", "unreadable header card OBJECT in the primary header"),
    ("nan.fits", "unreadable header card EXPTIME in the primary header (value 'NaN')"),
])
def test_unparsable_card_is_a_file_problem(bad_dir, name, message):
    with pytest.raises(FileProblem, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_headers(bad_dir / name)


def test_typewalk_skips_unparsable_files(bad_dir, capsys):
    assert typewalk.main(["-d", str(bad_dir)]) == 0
    out, err = capsys.readouterr()
    listed = [line.split()[0] for line in out.splitlines()[2:-1]]
    assert listed == ["good_bias.fits", "good_sci.fits", "noobstype.fits"]
    lines = _err_lines(err, "typewalk")
    assert len(lines) == 2
    assert "nan.fits: unreadable header card EXPTIME" in lines[0]
    assert "nonascii.fits: unreadable header card OBJECT" in lines[1]


def test_dataselect_exposure_time_with_a_nan_file(bad_dir, capsys):
    files = [str(bad_dir / n) for n in ("good_sci.fits", "nan.fits", "nonascii.fits")]
    assert dataselect.main(["--expr", "exposure_time==10", *files]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [files[0]]
    lines = _err_lines(err, "dataselect")
    assert len(lines) == 2 and files[1] in lines[0] and files[2] in lines[1]


def test_showd_with_a_nan_file(bad_dir, capsys):
    files = [str(bad_dir / n) for n in ("good_sci.fits", "nan.fits")]
    assert showd.main(["-d", "exposure_time", *files]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[3].split() == [files[0], "10.0"] and len(out.splitlines()) == 4
    assert _err_lines(err, "showd") == [f"showd: skipping {files[1]}: unreadable header card "
                                        "EXPTIME in the primary header (value 'NaN')"]


def test_caldb_add_skips_an_unparsable_file(bad_dir, tmp_path, capsys):
    good = write_calibration(tmp_path / "N20170613S0180_bias.fits", "bias")
    db = tmp_path / "db"
    CalibrationService(database_dir=db).init()
    assert caldb_main(["-d", str(db), "add", str(bad_dir / "nan.fits"), str(good)]) == 1
    out, err = capsys.readouterr()
    assert "added processed_bias" in out
    assert _err_lines(err, "caldb") == [f"caldb: cannot add {bad_dir / 'nan.fits'}: unreadable "
                                        "header card EXPTIME in the primary header (value 'NaN')"]


# -- item 10: unreadable files (tests run as root: permission errors are simulated) ----------------

@pytest.fixture
def unreadable(bad_dir, monkeypatch):
    """good_bias.fits raises PermissionError when opened, as a file of mode 000 for a user."""
    target = str(bad_dir / "good_bias.fits")
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    return target


def test_permission_denied_is_one_line_everywhere(bad_dir, unreadable, tmp_path, capsys):
    good = str(bad_dir / "good_sci.fits")
    message = f"{unreadable}: cannot read it (Permission denied)"
    assert typewalk.main(["-d", str(bad_dir)]) == 0
    assert message in capsys.readouterr().err
    assert dataselect.main([unreadable, good]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [good] and _err_lines(err, "dataselect") == [f"dataselect: skipping {message}"]
    assert showd.main(["-d", "object", unreadable, good]) == 0
    assert _err_lines(capsys.readouterr().err, "showd") == [f"showd: skipping {message}"]
    db = tmp_path / "db"
    CalibrationService(database_dir=db).init()
    assert caldb_main(["-d", str(db), "add", unreadable]) == 1
    assert _err_lines(capsys.readouterr().err, "caldb") == [f"caldb: cannot add {message}"]


# -- item 10: a file whose kind cannot be told is reported, not dropped ----------------------------

def test_missing_obstype_is_reported_when_selecting_by_tags(bad_dir, capsys):
    files = [str(bad_dir / n) for n in ("good_bias.fits", "noobstype.fits")]
    assert dataselect.main(["--tags", "BIAS", *files]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [files[0]]
    assert _err_lines(err, "dataselect") == [
        f"dataselect: skipping {files[1]}: missing keyword OBSTYPE in the primary header "
        "(it decides whether the file is a bias, a flat or a science frame)"]
    problems = []
    assert select_data(files, xtags=["CAL"], problems=problems) == []
    assert [p.path for p in problems] == [files[1]]


def test_typewalk_tag_filter_reports_missing_obstype(bad_dir, capsys):
    assert typewalk.main(["-d", str(bad_dir), "--tags", "BIAS"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[2:-1]] == ["good_bias.fits"]
    assert any("noobstype.fits: missing keyword OBSTYPE" in line for line in _err_lines(err, "typewalk"))


# -- item 11: header-driven allocation -------------------------------------------------------------

def test_datasec_outside_the_array_is_refused_before_reading_pixels(tutorial4, tmp_path):
    path = shutil.copy(tutorial4.science[0], tmp_path / "bigsec.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[3].header["DATASEC"] = "[1:99999,1:99999]"
    with pytest.raises(FileProblem, match=r"extension 3: DATASEC \[1:99999,1:99999\] lies outside"):
        read_frame(path)


def test_sparse_file_declaring_a_huge_image_is_refused(tmp_path):
    path = tmp_path / "sparse.fits"
    phu = fits.Header({"SIMPLE": True, "BITPIX": 8, "NAXIS": 0, "EXTEND": True,
                       "INSTRUME": "GMOS-N", "OBSTYPE": "OBJECT"})
    ext = fits.Header({"XTENSION": "IMAGE", "BITPIX": 16, "NAXIS": 2, "NAXIS1": 100000,
                       "NAXIS2": 50000, "PCOUNT": 0, "GCOUNT": 1, "EXTNAME": "SCI"})
    with open(path, "wb") as fh:
        fh.write(phu.tostring().encode())
        fh.write(ext.tostring().encode())
        data_bytes = 100000 * 50000 * 2
        fh.truncate(fh.tell() + data_bytes + (-data_bytes) % 2880)   # sparse: no disk used
    assert 100000 * 50000 > MAX_PIXELS
    with pytest.raises(FileProblem, match="declares a 100000 x 50000 image, larger than any GMOS"):
        read_frame(path)


# -- item 12: only regular files are read ----------------------------------------------------------

def _unblock(fifo):
    """Open the write end so that a reader blocked on the FIFO returns (end of file)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def _finishes(func, fifo, seconds=60):
    result = {}

    def call():
        try:
            result["value"] = func()
        except Exception as exc:      # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _unblock(fifo)
        thread.join(5)
        pytest.fail(f"blocked on the FIFO {fifo}")
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_fifo_is_skipped_not_waited_on(tutorial4, tmp_path, capsys):
    good = shutil.copy(tutorial4.science[0], tmp_path / "good.fits")
    fifo = tmp_path / "pipe.fits"
    os.mkfifo(fifo)
    message = f"{fifo}: is not a regular file (a FIFO, device or socket); only regular files are read"
    with pytest.raises(FileProblem, match="not a regular file"):
        _finishes(lambda: read_headers(fifo), fifo)
    assert _finishes(lambda: typewalk.main(["-d", str(tmp_path)]), fifo) == 0
    assert _err_lines(capsys.readouterr().err, "typewalk") == [f"typewalk: skipping {message}"]
    assert _finishes(lambda: dataselect.main([str(fifo), str(good)]), fifo) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(good)] and err == f"dataselect: skipping {message}\n"
    assert _finishes(lambda: showd.main(["-d", "object", str(fifo), str(good)]), fifo) == 0
    assert capsys.readouterr().err == f"showd: skipping {message}\n"


def test_unusual_but_valid_cards_are_accepted(tutorial4, tmp_path):
    """Long strings (CONTINUE), HIERARCH keywords and E-notation reals still read."""
    path = shutil.copy(tutorial4.science[0], tmp_path / "unusual.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["OBSNOTE"] = "a note far longer than one card can hold, " * 3
        hdul[0].header["HIERARCH ESO DET CHIP NAME"] = "x"
        hdul[1].header["SMALL"] = 1.5e-12
    headers = read_headers(path)
    assert headers.phu["OBSNOTE"].startswith("a note far longer")
    assert headers.ext_headers[0]["SMALL"] == 1.5e-12
