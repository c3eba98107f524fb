"""``gmos-archive`` against the fake archive, then ``reduce`` on what it fetched."""
import hashlib
import socket

import pytest
from astropy.io import fits
from fake_archive import PROPRIETARY, SESSION

from gmoswidgets.cli import archive as archive_cli
from gmoswidgets.cli import reduce as reduce_cli

SCIENCE = ["--program", "GN-2017A-SV-151", "--obsclass", "science", "--filter", "i"]


@pytest.fixture
def env(fake_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("GMOSWIDGETS_ARCHIVE_URL", fake_archive.url)
    monkeypatch.delenv("GEMINI_ARCHIVE_COOKIE", raising=False)
    monkeypatch.chdir(tmp_path)
    return fake_archive, tmp_path


def test_search_prints_a_table_and_writes_a_list(env, capsys):
    archive, tmp_path = env
    assert archive_cli.main(["search", *SCIENCE, "--tags", "-o", "sci.txt"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["file", "data", "label", "object"]
    assert [line.split()[0] for line in lines[1:]] == ["N20170614S0201.fits",
                                                       "N20170614S0202.fits", PROPRIETARY]
    assert "(IMAGE)" in lines[1] and "(SIDEREAL)" in lines[1] and "3 file(s)" in err
    assert (tmp_path / "sci.txt").read_text().split() == [line.split()[0] for line in lines[1:]]


def test_search_truncated_is_one_line(env, capsys):
    archive, _ = env
    template = archive.row()
    archive.rows.extend({**template, "name": f"N20170613S{i:04d}.fits"} for i in range(1000, 1600))
    assert archive_cli.main(["search", "--obstype", "BIAS"]) == 0
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if "narrow the query" in line]
    assert len(notes) == 1 and notes[0].startswith("gmos-archive: the archive returned only "
                                                   "its first 500 results")


def test_calibrations_command(env, capsys):
    assert archive_cli.main(["calibrations", "N20170614S0201.fits", "--count", "2",
                             "-o", "cals.txt"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["N20170614S0201.fits", "bias", "1", "N20170613S0182.fits"]
    assert [line.split()[1] for line in out[1:]] == ["bias", "bias", "flat", "flat"]
    assert (env[1] / "cals.txt").read_text().split() == [line.split()[3] for line in out[1:]]


def test_proprietary_file_and_cookie_file(env, capsys):
    _, tmp_path = env
    assert archive_cli.main(["get", PROPRIETARY]) == 1
    err = capsys.readouterr().err
    assert "HTTP 403" in err and "GEMINI_ARCHIVE_COOKIE" in err and SESSION not in err
    (tmp_path / "cookie.txt").write_text(SESSION + "\n")
    assert archive_cli.main(["get", PROPRIETARY, "--cookie-file", "cookie.txt"]) == 0
    assert (tmp_path / "playdata" / PROPRIETARY).exists()


def test_no_network_is_one_line_for_every_command(env, capsys, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GMOSWIDGETS_ARCHIVE_URL", f"http://127.0.0.1:{port}")
    for argv in (["search", "--date", "20170614"], ["calibrations", "N20170614S0201.fits"],
                 ["get", "N20170614S0201.fits"], ["get", "--date", "20170614"]):
        assert archive_cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot reach the archive" in err, (argv, err)
        assert "offline" in err


def test_bad_usage_is_one_line(env, capsys):
    for argv, message in ((["search"], "give at least one criterion"),
                          (["get", "N20170614S0201.fits", "--date", "20170614"], "not both"),
                          (["search", "--binning", "3"], "not a binning"),
                          (["frobnicate"], "invalid choice")):
        assert archive_cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)


@pytest.mark.slow
def test_search_calibrations_download_reduce(env, capsys, tutorial4):
    """The whole path: science frames and their biases and flats from the archive, then reduce."""
    archive, tmp_path = env
    assert archive_cli.main(["get", *SCIENCE, "--calibrations", "bias,flat", "--count", "3",
                             "-o", "sci.txt"]) == 1                 # the proprietary frame fails
    err = capsys.readouterr().err
    assert "files: 2 downloaded, 0 already in playdata, 1 failed" in err
    assert "bias: 3 downloaded" in err and "flat: 2 downloaded" in err
    biases = (tmp_path / "sci_bias.txt").read_text().split()
    assert sorted(biases) == [f"playdata/N20170613S018{i}.fits" for i in range(3)]
    for name in biases:         # the very files the archive was given (md5 of the originals)
        original = tutorial4.directory / name.split("/")[1]
        assert (hashlib.md5((tmp_path / name).read_bytes()).hexdigest()
                == hashlib.md5(original.read_bytes()).hexdigest())
    assert reduce_cli.main(["@sci_bias.txt", "--no-progress"]) == 0
    master = tmp_path / "N20170613S0182_bias.fits"
    with fits.open(master) as hdul:
        assert "PROCBIAS" in hdul[0].header or "GBIAS" in hdul[0].header
        assert len([h for h in hdul if h.name == "SCI"]) == 12
