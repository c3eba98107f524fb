"""MD5 checksums of files (the ``md5`` column of ``PROVENANCE``), computed ahead of need.

A reduction lists the MD5 of each input file in its outputs' ``PROVENANCE``
table (DRAGONS' convention: the MD5 of the whole file).  Reading and hashing
release the GIL, so :func:`start_md5sums` checksums the inputs on a
background thread while the main thread imports modules and reads headers;
:func:`md5sum` then returns the value at once, or waits for it.  Checksums
are cached by path, size and modification time (a rewritten file is
checksummed again).  This module imports nothing heavy: the ``reduce``
command starts the checksums before it imports astropy.
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from os import PathLike
from pathlib import Path
from typing import Iterable, Union

__all__ = ["md5sum", "start_md5sums"]

#: Bytes read per hash update, into one reused buffer (no new memory per block).
_BLOCK = 4 << 20
#: (resolved path, size, mtime_ns) -> Future of the hex digest.
_checksums: dict = {}
_lock = threading.Lock()


def _key(path: Path) -> tuple:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _digest(path: Path, buffer: memoryview) -> str:
    digest = hashlib.md5()
    with open(path, "rb", buffering=0) as fh:
        while size := fh.readinto(buffer):
            digest.update(buffer[:size])
    return digest.hexdigest()


def _compute(jobs: list) -> None:
    buffer = memoryview(bytearray(_BLOCK))
    for path, future in jobs:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(_digest(path, buffer))
            except BaseException as exc:  # noqa: BLE001 (given to whoever asks for it)
                future.set_exception(exc)


def start_md5sums(paths: Iterable[Union[str, PathLike]]) -> None:
    """Start checksumming ``paths`` on a background thread (those not known yet).

    Files that cannot be read are skipped here: :func:`md5sum` (or the
    reader) reports them.
    """
    jobs = []
    for path in map(Path, paths):
        try:
            key = _key(path)
        except OSError:
            continue
        with _lock:
            if key not in _checksums:
                _checksums[key] = future = Future()
                jobs.append((path, future))
    if jobs:    # a daemon: an exiting command does not wait for checksums nobody needs
        threading.Thread(target=_compute, args=(jobs,), name="md5sums", daemon=True).start()


def md5sum(path: Union[str, PathLike]) -> str:
    """MD5 checksum (hex) of a file: cached, started ahead, or computed now.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    key = _key(path)
    with _lock:
        future = _checksums.get(key)
        if future is None:
            _checksums[key] = future = Future()
            computing = True
        else:
            computing = False
    if computing:
        _compute([(path, future)])
    try:
        return future.result()
    except OSError:
        with _lock:      # not cached: a file that could not be read may be readable later
            if _checksums.get(key) is future:
                del _checksums[key]
        raise
