"""Issue 12, items 16-17: outputs get the umask's mode; no temporary file is left behind."""
import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets import fitswrite
from gmoswidgets.caldb.testing import write_calibration
from gmoswidgets.frame import Extension, Frame, read_frame
from gmoswidgets.outputs import store_calibration_copy


def _frame():
    phu = fits.Header({"INSTRUME": "GMOS-N", "OBSTYPE": "OBJECT"})
    return Frame(phu, [Extension(np.ones((4, 4), np.float32), fits.Header())])


@pytest.fixture
def umask():
    def set_umask(value):
        os.umask(value)
    saved = os.umask(0o022)
    yield set_umask
    os.umask(saved)


def _hidden(directory):
    return sorted(p.name for p in Path(directory).rglob(".*"))


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    out = _frame().write(tmp_path / "out.fits")
    assert out.stat().st_mode & 0o777 == mode
    bias = write_calibration(tmp_path / "N20170613S0180_bias.fits", "bias")
    copy = store_calibration_copy(bias, read_frame(bias), tmp_path / "work")
    assert copy.stat().st_mode & 0o777 == mode


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_leaves_no_temporary_file(tmp_path, monkeypatch):
    bias = write_calibration(tmp_path / "N20170613S0180_bias.fits", "bias")
    frame = read_frame(bias)

    def partial_copy(src, dst, *args, **kwargs):
        Path(dst).write_bytes(b"SIMPLE  =" + b" " * 100)
        _disk_full()

    def no_link(*args):   # another file system: the bytes are copied
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(shutil, "copyfile", partial_copy)
    with pytest.raises(OSError, match="No space left"):
        store_calibration_copy(bias, frame, tmp_path / "work")
    monkeypatch.undo()

    def partial_write(fd, *args, **kwargs):   # the pixels of the first extension
        os.write(fd, b"\0" * 100)
        _disk_full()

    monkeypatch.setattr(fitswrite, "_write_pixels", partial_write)
    with pytest.raises(OSError, match="No space left"):
        _frame().write(tmp_path / "work" / "out.fits")
    assert _hidden(tmp_path) == []
    assert not (tmp_path / "work" / "out.fits").exists()


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from astropy.io import fits
    from gmoswidgets.frame import Extension, Frame

    real = fits.HDUList.writeto
    def slow(self, name, *args, **kwargs):
        real(self, name, *args, **kwargs)
        print("written", flush=True)
        time.sleep(120)                      # killed here, before the rename
    fits.HDUList.writeto = slow
    phu = fits.Header({"INSTRUME": "GMOS-N"})
    Frame(phu, [Extension(np.ones((4, 4), np.float32), fits.Header())]).write(sys.argv[1])
""")


def test_temporary_file_of_a_killed_writer_is_cleaned_up(tmp_path):
    target = tmp_path / "out.fits"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    stale = _hidden(tmp_path)
    assert len(stale) == 1 and stale[0].endswith(".tmp") and not target.exists()
    live = tmp_path / f".out.fits.{os.getpid()}.busy.tmp"   # a writer still running: kept
    live.write_bytes(b"")
    _frame().write(target)
    assert _hidden(tmp_path) == [live.name] and read_frame(target).exts[0].data.sum() == 16
