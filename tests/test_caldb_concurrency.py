"""Two processes add 200 calibrations each while a third lists: all 400, none twice, no error."""
import multiprocessing as mp
import shutil
import time

import pytest

from gmoswidgets.caldb import CalibrationService
from gmoswidgets.caldb.testing import write_calibration

PER_WRITER = 200


def _writer(db_dir, files, errors):
    svc = CalibrationService(database_dir=db_dir)
    try:
        for path in files:
            svc.add_cal(path)
    except Exception as exc:  # reported to the parent, which fails the test
        errors.put(f"writer: {exc!r}")


def _lister(db_dir, stop, errors, seen):
    svc = CalibrationService(database_dir=db_dir)
    listings, last = 0, 0
    try:
        while not stop.is_set():
            names = [e.filename for e in svc.list_files()]
            if len(names) != len(set(names)):
                errors.put(f"lister: duplicate entries in a listing of {len(names)}")
            if len(names) < last:
                errors.put(f"lister: count went down from {last} to {len(names)}")
            last = len(names)
            listings += 1
            time.sleep(0.02)          # a dashboard polls; it does not spin
    except Exception as exc:
        errors.put(f"lister: {exc!r}")
    seen.put((listings, last))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_writers_and_a_reader(tmp_path):
    template = write_calibration(tmp_path / "template.fits", "bias", amps=[5])  # few HDUs: fast to read
    batches = [[], []]
    for writer in range(2):
        for index in range(PER_WRITER):
            path = tmp_path / f"N2017061{writer}S{index:04d}_bias.fits"
            shutil.copyfile(template, path)
            batches[writer].append(path)
    db_dir = tmp_path / "db"
    CalibrationService(database_dir=db_dir).init()

    ctx = mp.get_context("spawn")
    errors, seen, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    lister = ctx.Process(target=_lister, args=(db_dir, stop, errors, seen))
    writers = [ctx.Process(target=_writer, args=(db_dir, batch, errors)) for batch in batches]
    start = time.perf_counter()
    lister.start()
    for proc in writers:
        proc.start()
    for proc in writers:
        proc.join(90)
    stop.set()
    lister.join(30)
    elapsed = time.perf_counter() - start
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    assert [p.exitcode for p in (*writers, lister)] == [0, 0, 0]
    listings, _ = seen.get(timeout=5)
    assert listings > 1                     # the reader really ran alongside the writers

    names = [e.filename for e in CalibrationService(database_dir=db_dir).list_files()]
    expected = {p.name for batch in batches for p in batch}
    assert len(names) == 2 * PER_WRITER and set(names) == expected
    print(f"400 adds by 2 processes with a concurrent lister: {elapsed:.1f} s, "
          f"{listings} listings")
