"""Checksums for PROVENANCE started ahead on a thread: same values as coreutils' md5sum."""
import os
import shutil
import subprocess

import pytest

from gmoswidgets import checksums
from gmoswidgets.outputs import md5sum as outputs_md5sum

pytestmark = pytest.mark.skipif(shutil.which("md5sum") is None, reason="needs coreutils md5sum")


def _coreutils_md5(path) -> str:
    return subprocess.run(["md5sum", str(path)], check=True, capture_output=True,
                          text=True).stdout.split()[0]


def _files(tmp_path, sizes):
    paths = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"f{index}.fits"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def test_started_checksums_equal_md5sum_of_the_files(tmp_path):
    # 0 bytes, one FITS block, more than one 4 MB read
    paths = _files(tmp_path, [0, 2880, (4 << 20) * 2 + 5])
    checksums.start_md5sums(paths + [tmp_path / "missing.fits"])   # a missing file: skipped
    for path in paths:
        assert checksums.md5sum(path) == _coreutils_md5(path)
    assert outputs_md5sum is checksums.md5sum


def test_a_rewritten_file_is_checksummed_again(tmp_path):
    (path,) = _files(tmp_path, [1000])
    checksums.start_md5sums([path])
    before = checksums.md5sum(path)
    path.write_bytes(b"other content")
    os.utime(path, ns=(1, 1))     # a new modification time even on a coarse clock
    assert checksums.md5sum(path) == _coreutils_md5(path) != before


def test_a_missing_file_raises_and_is_not_cached(tmp_path):
    path = tmp_path / "gone.fits"
    with pytest.raises(OSError):
        checksums.md5sum(path)
    path.write_bytes(b"now here")
    assert checksums.md5sum(path) == _coreutils_md5(path)


def test_an_error_on_the_thread_is_raised_by_md5sum(tmp_path):
    folder = tmp_path / "a_directory.fits"
    folder.mkdir()
    checksums.start_md5sums([folder])         # stat works; reading fails on the thread
    with pytest.raises(IsADirectoryError):
        checksums.md5sum(folder)
