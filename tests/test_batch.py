"""``reduce-all``: grouping, dependency order, caldb, the table; same products as ``reduce``.

The simulated data set has two nights, two filters and two binnings.  The
simulator writes one tutorial data set per call with fixed file names and
dates, so the fixture makes three and writes copies of some files under
other names and dates (``DATE-OBS`` edited, file name changed to match):

* night 1 (2017-06-14): 4x4 i-band science, biases, flats (as simulated);
* night 2 (2017-06-20): 4x4 z-band science (fringed) and flats (dated 2017-07-03);
* 2x2 i-band biases (2017-06-19), flats (2017-07-04), science on night 1
  (numbered from S0301 so as not to clash with the 4x4 ones), read out in
  the CCD2 region of interest (a third of the pixels, so a third of the time).

Three frames of each kind keep it small.  The reference is the sequence of
``reduce`` / ``caldb add`` commands a user would type, with the groups
written out by hand here (not taken from the batch module).
"""
import os
import shutil
import time

import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets import batch as batch_module
from gmoswidgets import caldb
from gmoswidgets.batch import Batch, GroupResult, reduce_all
from gmoswidgets.cli import caldb as caldb_cli
from gmoswidgets.cli import reduce as reduce_cli
from gmoswidgets.cli import reduce_all as reduce_all_cli
from gmoswidgets.data import make_tutorial_dataset
from gmoswidgets.executor import ThreadExecutor



def _copy(path, directory, date, first=None):
    """Copy a raw file as if taken on ``date`` (YYYYMMDD), renumbered from ``first``."""
    stem = path.stem  # N20170614S0201
    number = int(stem[10:]) if first is None else first
    new = directory / f"N{date}S{number:04d}.fits"
    with fits.open(path) as hdul:
        hdul[0].header["DATE-OBS"] = f"{date[:4]}-{date[4:6]}-{date[6:]}"
        hdul.writeto(new, output_verify="ignore")
    return new


@pytest.fixture(scope="module")
def nights(tutorial4, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    sims = tmp_path_factory.mktemp("sims")
    one = tutorial4                     # night 1: the session's 4x4 tutorial dataset
    two = make_tutorial_dataset(sims / "z4", binning=4, seed=22, filter_name="z",
                                groups=("flat", "science"))
    bin2 = make_tutorial_dataset(sims / "i2", binning=2, seed=23, roi="CCD2")
    groups = {"bias4": [shutil.copy(p, raw) for p in one.bias[:3]],
              "flat_i4": [shutil.copy(p, raw) for p in one.flat[:3]],
              "sci_i4": [shutil.copy(p, raw) for p in one.science[:3]],
              "flat_z4": [_copy(p, raw, "20170703") for p in two.flat[:3]],
              "sci_z4": [_copy(p, raw, "20170620") for p in two.science[:3]],
              "bias2": [_copy(p, raw, "20170619") for p in bin2.bias[:3]],
              "flat_i2": [_copy(p, raw, "20170704") for p in bin2.flat[:3]],
              "sci_i2": [_copy(p, raw, "20170614", 301 + i)
                         for i, p in enumerate(bin2.science[:3])]}
    (raw / "notes.fits").write_text("not FITS")
    return raw, {k: sorted(os.path.basename(p) for p in v) for k, v in groups.items()}


def _service(directory):
    directory.mkdir(parents=True, exist_ok=True)
    service = caldb.CalibrationService(database_dir=directory)
    service.init()
    return service


def test_groups_and_dependencies(nights, tmp_path):
    raw, expected = nights
    batch = Batch(raw, workdir=tmp_path, service=_service(tmp_path), scheduler="sync")
    got = {g.name: (g.kind, [f.name for f in g.files], g.depends) for g in batch.groups}
    assert got == {
        "bias-1": ("bias", expected["bias4"], []),
        "bias-2": ("bias", expected["bias2"], []),
        "flat-1": ("flat", expected["flat_i4"], ["bias-1"]),
        "flat-2": ("flat", expected["flat_z4"], ["bias-1"]),
        "flat-3": ("flat", expected["flat_i2"], ["bias-2"]),
        "fringe-1": ("fringe", expected["sci_z4"], ["bias-1", "flat-2"]),
        "science-1": ("science", expected["sci_i4"], ["bias-1", "flat-1"]),
        "science-2": ("science", expected["sci_i2"], ["bias-2", "flat-3"]),
        "science-3": ("science", expected["sci_z4"], ["bias-1", "flat-2", "fringe-1"]),
    }
    assert batch.groups[1].describe() == "2x2 CCD2 slow/low"
    assert batch.groups[5].describe() == "z 4x4 Full Frame slow/low"
    assert batch.groups[8].describe() == "z 4x4 Full Frame slow/low starfield"
    assert [name for name, _ in batch.ignored] == ["notes.fits"]


def test_a_failed_calibration_skips_what_needs_it(nights, tmp_path):
    raw, expected = nights
    small = tmp_path / "raw"
    small.mkdir()
    for name in expected["flat_i2"] + expected["sci_i2"]:  # no 2x2 biases anywhere
        shutil.copy(raw / name, small)
    events = []
    table = reduce_all(small, workdir=tmp_path / "out", service=_service(tmp_path / "db"),
                       scheduler="sync", callback=events.append)
    assert list(table["group"]) == ["flat-1", "science-1"]
    assert list(table["status"]) == ["failed", "skipped"]
    assert table["reason"][0].startswith("no processed_bias for N20170704S0178")
    assert table["reason"][1] == "needs flat-1 (flat, failed)"
    assert [e.kind for e in events] == ["group_started", "group_failed", "group_skipped",
                                        "finished"]


def _timed_fake(times):
    """A stand-in for run_group: bias-1 takes 0.5 s, every other group 0.05 s; no products."""
    def fake(task):
        start = time.monotonic()
        time.sleep(0.5 if task.name == "bias-1" else 0.05)
        times[task.name] = (start, time.monotonic())
        return GroupResult()
    return fake


def test_a_group_starts_as_soon_as_what_it_needs_is_done(nights, tmp_path, monkeypatch):
    """On two threads, the 2x2 flat (flat-3) runs while the slow 4x4 bias still does."""
    times = {}
    monkeypatch.setattr(batch_module, "run_group", _timed_fake(times))
    table = reduce_all(nights[0], workdir=tmp_path, service=_service(tmp_path / "db"),
                       scheduler=ThreadExecutor(2))
    assert set(table["status"]) == {"done"} and len(times) == 9
    assert times["flat-3"][0] < times["bias-1"][1]       # did not wait for the other binning
    assert times["flat-1"][0] >= times["bias-1"][1]      # but waited for its own bias
    assert times["science-2"][0] >= times["flat-3"][1]
    assert times["science-3"][0] >= max(times["fringe-1"][1], times["flat-2"][1])


def test_sync_runs_the_groups_one_after_the_other_in_plan_order(nights, tmp_path, monkeypatch):
    times = {}
    monkeypatch.setattr(batch_module, "run_group", _timed_fake(times))
    batch = Batch(nights[0], workdir=tmp_path, service=_service(tmp_path / "db"),
                  scheduler="sync")
    batch.run()
    order = [g.name for g in batch.groups]
    assert sorted(times, key=lambda name: times[name][0]) == order
    assert all(times[a][1] <= times[b][0] for a, b in zip(order, order[1:]))


# --------------------------------------------------------------------------- same products
_PLANES = ("SCI", "VAR", "DQ")


def _reference(raw, expected, workdir, monkeypatch):
    """The commands a user would type, one group after the other."""
    workdir.mkdir()
    cfg = workdir / "rsys.cfg"
    cfg.write_text(f"[calibs]\nstandalone = True\ndatabase_dir = {workdir}\n")
    monkeypatch.setenv(caldb.CONFIG_ENV, str(cfg))
    monkeypatch.chdir(workdir)
    assert caldb_cli.main(["init"]) == 0
    outputs = []

    def reduce(key, *extra):
        (workdir / f"{key}.lis").write_text("\n".join(str(raw / n) for n in expected[key]))
        assert reduce_cli.main([f"@{key}.lis", "--no-progress", *extra]) == 0
        return sorted(set(os.listdir(workdir)) - set(outputs) - {f"{key}.lis", "reduce.log"}
                      - {"rsys.cfg", "cal_manager.db", "calibrations", "cal_manager.db-wal",
                         "cal_manager.db-shm"} - {n for n in os.listdir(workdir)
                                                  if n.endswith(".lis")})

    for key in ("bias4", "bias2", "flat_i4", "flat_z4", "flat_i2"):
        new = reduce(key)
        outputs += new
        assert caldb_cli.main(["add", *new]) == 0
    new = reduce("sci_z4", "-r", "makeProcessedFringe")
    outputs += new
    assert caldb_cli.main(["add", *new]) == 0
    for key in ("sci_i4", "sci_i2", "sci_z4"):
        outputs += reduce(key)
    return sorted(outputs)


def _same_products(names, ref_dir, other_dir):
    for name in names:
        with fits.open(ref_dir / name) as ref, fits.open(other_dir / name) as other:
            assert len(ref) == len(other), name
            for a, b in zip(ref, other):
                if a.header.get("EXTNAME") in _PLANES:
                    np.testing.assert_array_equal(a.data, b.data, err_msg=f"{name} {a.name}")


@pytest.fixture(scope="module")
def reference(nights, tmp_path_factory):
    raw, expected = nights
    with pytest.MonkeyPatch.context() as mp:
        work = tmp_path_factory.mktemp("reference") / "work"
        return work, _reference(raw, expected, work, mp)


@pytest.mark.slow
def test_reduce_all_local_default_equals_reduce_commands(nights, reference, tmp_path,
                                                         monkeypatch):
    raw, _ = nights
    ref_dir, names = reference
    assert len(names) == 9  # 2 biases, 3 flats, 1 fringe, 3 stacks
    monkeypatch.delenv("GMOSWIDGETS_SCHEDULER", raising=False)
    monkeypatch.chdir(tmp_path)
    table = reduce_all(raw, workdir=tmp_path / "out", service=_service(tmp_path / "db"))
    assert list(table["status"]) == ["done"] * 9, table.pformat(max_width=-1)
    assert sorted(table["products"]) == names
    _same_products(names, ref_dir, tmp_path / "out")


def _group_tasks(dask_worker):
    """Keys of the group reductions this Dask worker computed (from its transition log)."""
    return sorted({str(entry[0]) for entry in dask_worker.state.log
                   if "run_group" in str(entry[0]) and entry[1:3] == ("executing", "memory")})


@pytest.mark.slow
def test_reduce_all_on_a_local_cluster_equals_reduce_commands(nights, reference, tmp_path):
    from distributed import Client, LocalCluster
    raw, _ = nights
    ref_dir, names = reference
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        table = reduce_all(raw, workdir=tmp_path / "out", service=_service(tmp_path / "db"),
                           scheduler=client)
        ran_on = client.run(_group_tasks)
    assert list(table["status"]) == ["done"] * 9, table.pformat(max_width=-1)
    assert sorted(table["products"]) == names
    assert all(ran_on.values()), ran_on  # both workers reduced groups
    _same_products(names, ref_dir, tmp_path / "out")


def test_cli_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the log file
    (tmp_path / "raw").mkdir()
    assert reduce_all_cli.main([str(tmp_path / "nowhere"), "-d", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith("nowhere: no such directory")
    assert reduce_all_cli.main([str(tmp_path / "raw"), "-d", str(tmp_path)]) == 1
    assert "no calibration database at" in capsys.readouterr().err
    _service(tmp_path)
    assert reduce_all_cli.main([str(tmp_path / "raw"), "-d", str(tmp_path)]) == 1
    assert "raw: no raw bias, flat or science file to reduce" in capsys.readouterr().err


def test_cli(nights, tmp_path, monkeypatch, capsys):
    raw, expected = nights
    small = tmp_path / "raw"
    small.mkdir()
    for name in expected["bias4"]:
        shutil.copy(raw / name, small)
    _service(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc = reduce_all_cli.main([str(small), "-d", str(tmp_path), "--scheduler", "sync"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "bias-1" in out and "done" in out and "N20170613S0180_bias.fits" in out
    assert [e.filename for e in caldb.CalibrationService(database_dir=tmp_path).db.entries()] \
        == ["N20170613S0180_bias.fits"]
