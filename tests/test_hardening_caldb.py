"""Issue 12, item 18: parallel ``caldb add`` under contention all succeed (retry with backoff)."""
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from gmoswidgets.caldb import CalibrationService
from gmoswidgets.caldb import database as database_module
from gmoswidgets.caldb.testing import write_calibration

N_PROCESSES = 20


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_twenty_parallel_caldb_add(tmp_path):
    template = write_calibration(tmp_path / "template.fits", "bias", amps=[5])
    files = []
    for index in range(N_PROCESSES):
        files.append(tmp_path / f"N20170613S{index:04d}_bias.fits")
        shutil.copyfile(template, files[-1])
    db_dir = tmp_path / "db"
    CalibrationService(database_dir=db_dir).init()
    procs = [subprocess.Popen([sys.executable, "-m", "gmoswidgets.cli.caldb", "-d", str(db_dir),
                               "add", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for path in files]
    results = [(proc.wait(300), proc.stderr.read()) for proc in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    assert [r for r in results if r[0] != 0] == []
    assert len(CalibrationService(database_dir=db_dir).list_files()) == N_PROCESSES


def test_add_waits_for_a_writer_that_keeps_coming_back(tmp_path, monkeypatch):
    """Another writer takes the lock again and again with short gaps: the add still gets in."""
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT", 10.0)
    path = write_calibration(tmp_path / "N20170613S0180_bias.fits", "bias", amps=[5])
    db_dir = tmp_path / "db"
    svc = CalibrationService(database_dir=db_dir)
    svc.init()
    stop = threading.Event()

    def hog():
        conn = sqlite3.connect(svc.database_path, timeout=0.001, isolation_level=None)
        while not stop.is_set():
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                continue
            time.sleep(0.02)
            conn.execute("COMMIT")
            time.sleep(0.002)          # the lock is free 2 ms out of every 22
        conn.close()

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        for _ in range(5):
            svc.add_cal(path)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join(5)
    assert [e.filename for e in svc.list_files()] == [path.name]
    assert elapsed < 10.0
