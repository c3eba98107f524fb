"""Calibration manager: configuration, the seed's caldb session (CLI and API), bad input."""
import shutil
import sqlite3
from pathlib import Path

import pytest

from gmoswidgets.caldb import (CONFIG_ENV, CalDBError, CalibrationService, ConfigError,
                               get_calservice, load_config, set_calservice)
from gmoswidgets.caldb import service as caldb_service
from gmoswidgets.caldb.testing import write_calibration
from gmoswidgets.cli.caldb import main as caldb
from gmoswidgets.errors import FileProblem

SCIENCE_DATE = "2017-06-14T06:00:00"


@pytest.fixture(scope="module")
def playground_files(tmp_path_factory):
    """The playground's files, written once per module (each test gets copies)."""
    where = tmp_path_factory.mktemp("caldb_playground")
    files = {
        "bias": write_calibration(where / "N20170613S0180_bias.fits", "bias", date="2017-06-13T20:00:00"),
        "flat": write_calibration(where / "N20170702S0178_flat.fits", "flat", date="2017-07-02T01:00:00"),
        "fringe": write_calibration(where / "N20170614S0201_fringe.fits", "fringe", filter_name="i",
                                    date=SCIENCE_DATE),
        "science": write_calibration(where / "N20170614S0201.fits", "science", date=SCIENCE_DATE),
        "raw_bias": write_calibration(where / "N20170613S0180.fits", "bias", processed=False),
    }
    text = where / "notes.fits"
    text.write_text("not a FITS file\n")
    files["text"] = text
    return files


@pytest.fixture
def playground(home, playground_files):
    """Processed calibrations as reduce leaves them, plus a raw frame and a non-FITS file."""
    return {key: Path(shutil.copy2(path, home / path.name)) for key, path in playground_files.items()}


@pytest.fixture
def restore_default():
    saved = caldb_service._DEFAULT["service"]
    yield
    caldb_service._DEFAULT["service"] = saved


# -- configuration ---------------------------------------------------------------

def test_default_config_is_home_rsys_cfg_with_tilde(home):
    cfg = load_config()
    assert cfg.database_dir == home / "home" / "playground"
    assert cfg.database_path.name == "cal_manager.db" and cfg.standalone


def test_env_beats_home_and_argument_beats_env(home, monkeypatch):
    other = home / "other.cfg"
    other.write_text("[calibs]\nstandalone = True\ndatabase_dir = relative/dir\n")
    monkeypatch.setenv(CONFIG_ENV, str(other))
    assert load_config().database_dir == home / "relative" / "dir"       # relative to the cwd
    third = home / "third.cfg"
    third.write_text("[calibs]\ndatabase_dir = /somewhere\n")
    assert load_config(config_file=third).database_dir.as_posix() == "/somewhere"
    assert load_config(database_dir=home / "direct").config_file is None


@pytest.mark.parametrize("content, problem", [
    (None, "no calibration configuration file"),
    ("database_dir = /x\n", "malformed"),
    ("[other]\nx = 1\n", "no [calibs] section"),
    ("[calibs]\nstandalone = True\n", "does not set database_dir"),
    ("[calibs]\nstandalone = maybe\ndatabase_dir = /x\n", "standalone must be True or False"),
])
def test_bad_config_shows_the_lines_to_write(home, content, problem):
    cfg = home / "home" / ".geminidr" / "rsys.cfg"
    if content is None:
        cfg.unlink()
    else:
        cfg.write_text(content)
    with pytest.raises(ConfigError) as info:
        CalibrationService()
    message = str(info.value)
    assert problem in message
    assert "[calibs]\nstandalone = True\ndatabase_dir = " in message
    assert caldb(["list"]) == 1


# -- the seed's session ---------------------------------------------------------

def test_seed_cli_session(playground, home, capsys):
    db = home / "home" / "playground" / "cal_manager.db"
    assert caldb(["config"]) == 0
    assert "caldb init" in capsys.readouterr().out
    assert caldb(["init"]) == 0 and db.is_file()
    assert caldb(["add", str(playground["bias"])]) == 0
    # the copy reduce leaves in ./calibrations/processed_bias replaces the entry
    cached = home / "calibrations" / "processed_bias" / "N20170613S0180_bias.fits"
    cached.parent.mkdir(parents=True)
    shutil.copy(playground["bias"], cached)
    assert caldb(["add", str(cached), "N20170702S0178_flat.fits"]) == 0
    out = capsys.readouterr().out
    assert "updated processed_bias N20170613S0180_bias.fits: now" in out
    assert "added processed_flat N20170702S0178_flat.fits" in out
    assert caldb(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["File", "Type", "Instrument", "Detector", "Binning"]
    assert len(lines) == 4 and "MISSING" not in out
    bias_line = next(line for line in lines if "N20170613S0180_bias" in line)
    for value in ("processed_bias", "GMOS-N", "Hamamatsu-N", "2x2", "slow/low", "Full Frame",
                  "2017-06-13 20:00:00", str(cached.parent)):
        assert value in bias_line
    assert caldb(["config"]) == 0
    assert "2 (1 processed_bias, 1 processed_flat, 0 processed_fringe" in capsys.readouterr().out
    assert caldb(["explain", str(playground["science"]), "processed_bias"]) == 0
    assert "CHOSEN  N20170613S0180_bias.fits" in capsys.readouterr().out
    assert caldb(["remove", "N20170613S0180_bias.fits"]) == 0
    assert "is not deleted" in capsys.readouterr().out
    assert cached.is_file() and playground["bias"].is_file()          # files are never deleted
    caldb(["list"])
    out = capsys.readouterr().out
    assert "N20170613S0180_bias" not in out and "N20170702S0178_flat" in out
    assert caldb(["init", "-w"]) == 0
    out = capsys.readouterr().out
    assert "Deleting" in out and "1 entries (1 processed_flat)" in out
    assert caldb(["list"]) == 0 and "holds no calibrations" in capsys.readouterr().out


def test_seed_api_session(playground, home, restore_default):
    caldb_svc = CalibrationService()
    status = caldb_svc.config(verbose=False)
    assert not status.exists
    caldb_svc.init()
    assert set_calservice() is get_calservice()
    set_calservice(caldb_svc)
    for name in ("bias", "flat", "fringe"):
        caldb_svc.add_cal(playground[name])
    assert [e.caltype for e in caldb_svc.list_files()] == ["processed_bias", "processed_flat",
                                                           "processed_fringe"]
    assert caldb_svc.config(verbose=False).counts == {"processed_bias": 1, "processed_flat": 1,
                                                      "processed_fringe": 1}
    science = playground["science"]
    for caltype, name in (("processed_bias", "bias"), ("processed_flat", "flat"),
                          ("processed_fringe", "fringe")):
        match = get_calservice().get_calibration(science, caltype)
        assert match.path == playground[name] and match.source == "database"
    caldb_svc.remove_cal(playground["bias"])
    assert get_calservice().get_calibration(science, "processed_bias").path is None
    with pytest.raises(CalDBError, match="not in the calibration database"):
        caldb_svc.remove_cal(playground["bias"])


# -- bad input -------------------------------------------------------------------

@pytest.fixture
def svc(home):
    service = CalibrationService(database_dir=home / "db")
    service.init()
    yield service
    service.close()


def test_raw_file_is_refused(svc, playground):
    with pytest.raises(FileProblem, match="raw bias, not a processed calibration: reduce it first"):
        svc.add_cal(playground["raw_bias"])
    with pytest.raises(FileProblem, match="is a raw frame"):
        svc.add_cal(playground["science"])
    assert svc.list_files() == []


def test_non_fits_and_absent_files_are_refused(svc, playground, capsys):
    with pytest.raises(FileProblem, match="not a FITS file"):
        svc.add_cal(playground["text"])
    with pytest.raises(FileProblem, match="no such file"):
        svc.add_cal("nothere_bias.fits")
    code = caldb(["-d", str(svc.settings.database_dir), "add", str(playground["text"]),
                  str(playground["bias"])])
    captured = capsys.readouterr()
    assert code == 1 and "cannot add" in captured.err and "notes.fits: not a FITS file" in captured.err
    assert "added processed_bias" in captured.out       # the good file still went in


def test_wrong_kind_of_file_is_refused(svc, home):
    from astropy.io import fits
    other = home / "acam.fits"
    fits.PrimaryHDU(header=fits.Header([("INSTRUME", "ACAM")])).writeto(other)
    with pytest.raises(FileProblem, match="not a GMOS file"):
        svc.add_cal(other)
    stack = write_calibration(home / "N20170614S0201_stack.fits", "science", processed=True)
    with pytest.raises(FileProblem, match="not a processed calibration"):
        svc.add_cal(stack)


def test_adding_twice_updates_one_entry(svc, playground):
    first = svc.add_cal(playground["bias"])
    again = svc.add_cal(playground["bias"])
    assert first.replaced is None and again.replaced.path == playground["bias"]
    assert str(again) == "updated processed_bias N20170613S0180_bias.fits"
    assert len(svc.list_files()) == 1
    assert again.entry.ingest_time >= first.entry.ingest_time


def test_vanished_file_is_listed_as_missing(svc, playground, capsys):
    svc.add_cal(playground["bias"])
    playground["bias"].unlink()
    [entry] = svc.list_files()
    assert entry.missing
    assert caldb(["-d", str(svc.settings.database_dir), "list"]) == 0
    assert "MISSING" in capsys.readouterr().out
    match = svc.get_calibration(playground["science"], "processed_bias")
    assert match.missing and match.path == playground["bias"]


def _garble_pages(db):
    """Overwrite part of every page after the first: SQLite says 'malformed'."""
    data = bytearray(db.read_bytes())
    for offset in range(4096, len(data), 4096):
        data[offset + 8:offset + 600] = b"\xa5" * 592
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["overwritten", "garbled pages"])
def test_corrupt_database_gives_the_recovery_command(svc, playground, capsys, damage):
    svc.add_cal(playground["bias"])
    svc.db._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")      # everything in the main file
    svc.close()
    db = svc.database_path
    if damage == "overwritten":
        db.write_bytes(b"this is not an SQLite database at all" * 100)
    else:
        _garble_pages(db)
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    fresh = CalibrationService(database_dir=svc.settings.database_dir)
    with pytest.raises(CalDBError, match=r"is corrupt .*recreate it with: caldb init -w"):
        fresh.list_files()
    assert "corrupt" in fresh.config(verbose=False).problem
    directory = str(svc.settings.database_dir)
    assert caldb(["-d", directory, "list"]) == 1
    assert "caldb init -w" in capsys.readouterr().err
    assert caldb(["-d", directory, "init"]) == 1          # init refuses to reuse a corrupt file
    assert caldb(["-d", directory, "init", "-w"]) == 0    # the recovery command works
    assert caldb(["-d", directory, "add", str(playground["bias"])]) == 0


def test_foreign_or_missing_database(home):
    svc = CalibrationService(database_dir=home / "nodb")
    with pytest.raises(CalDBError, match="no calibration database .*caldb init$"):
        svc.list_files()
    foreign = home / "foreign"
    foreign.mkdir()
    sqlite3.connect(foreign / "cal_manager.db").execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(CalDBError, match="not a gmoswidgets calibration database"):
        CalibrationService(database_dir=foreign).list_files()


def test_bpm_without_read_mode_keywords(svc, home, playground):
    """An archive BPM need not say how it was read: it still goes in and is associated."""
    from astropy.io import fits
    path = write_calibration(home / "bpm_20170101_gmos-n_Ham_22_12amp.fits", "bpm",
                             date="2017-01-01T00:00:00")
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["AMPINTEG"]
        for hdu in hdul[1:]:
            hdu.header.remove("GAIN", ignore_missing=True)
    added = svc.add_cal(path)
    assert added.entry.caltype == "processed_bpm" and added.entry.props.read_speed == "unknown"
    assert svc.get_calibration(playground["science"], "processed_bpm").path == path
