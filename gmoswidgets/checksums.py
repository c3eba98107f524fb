"""MD5 checksums of files (the ``md5`` column of ``PROVENANCE``), computed ahead of need.

A reduction lists the MD5 of each input file in its outputs' ``PROVENANCE``
table (DRAGONS' convention: the MD5 of the whole file).  Reading and hashing
release the GIL, so :func:`start_md5sums` checksums the inputs on a
background thread while the main thread imports modules and reads headers;
:func:`md5sum` then returns the value at once, or waits for it.  Checksums
are cached by path, size and modification time (a rewritten file is
checksummed again).  This module imports nothing heavy: the ``reduce``
command starts the checksums before it imports astropy.

A file the package writes for later reductions (a processed calibration) has
its MD5 computed as it is written (:func:`gmoswidgets.fitswrite.write_fits`)
and recorded by :func:`record_md5` in the file's extended attribute
:data:`XATTR`, with the file's size and modification time: a later command
(``reduce`` of the flat and of the science, each checksumming the 260 MB
processed bias at 1x1) reads the value instead of hashing the file again, as
long as size and modification time still match.  Where the file system has no
extended attributes, or the file was copied or changed, the file is hashed.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from concurrent.futures import Future
from os import PathLike
from pathlib import Path
from typing import Iterable, Union

__all__ = ["XATTR", "md5sum", "record_md5", "start_md5sums"]

#: Bytes read per hash update, into one reused buffer (no new memory per block).
_BLOCK = 4 << 20
#: (resolved path, size, mtime_ns) -> Future of the hex digest.
_checksums: dict = {}
_lock = threading.Lock()
#: The extended attribute holding a written file's MD5: ``'<hex digest> <size> <mtime_ns>'``.
XATTR = "user.gmoswidgets.md5"
_RECORD = re.compile(r"([0-9a-f]{32}) (\d+) (\d+)")


def _key(path: Path) -> tuple:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _recorded(path: Path, key: tuple) -> str | None:
    """The MD5 recorded with the file (:func:`record_md5`) if its size and mtime still match."""
    try:
        match = _RECORD.fullmatch(os.getxattr(path, XATTR).decode("ascii"))
    except (OSError, AttributeError, UnicodeDecodeError):  # none, or no xattrs (not Linux)
        return None
    if match is None or (int(match.group(2)), int(match.group(3))) != key[1:]:
        return None
    return match.group(1)


def _new_future(path: Path, key: tuple) -> tuple[Future, bool]:
    """The cached future of ``key``, else a new one (done if the file has its MD5 recorded);
    and whether the caller must compute it.  Call with ``_lock`` held."""
    future = _checksums.get(key)
    if future is not None:
        return future, False
    _checksums[key] = future = Future()
    recorded = _recorded(path, key)
    if recorded is None:
        return future, True
    future.set_running_or_notify_cancel()
    future.set_result(recorded)
    return future, False


def record_md5(path: Union[str, PathLike], digest: str) -> None:
    """Remember ``digest`` as the MD5 of the file ``path`` just written.

    Kept for this process and in the file's extended attribute :data:`XATTR`
    (with its size and modification time) for later commands; where the file
    system refuses the attribute, later commands hash the file.
    """
    path = Path(path)
    key = _key(path)
    future = Future()
    future.set_running_or_notify_cancel()
    future.set_result(digest)
    with _lock:
        _checksums[key] = future
    try:
        os.setxattr(path, XATTR, f"{digest} {key[1]} {key[2]}".encode("ascii"))
    except (OSError, AttributeError):
        pass


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
            future, compute = _new_future(path, key)
        if compute:
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
        future, computing = _new_future(path, key)
    if computing:
        _compute([(path, future)])
    try:
        return future.result()
    except OSError:
        with _lock:      # not cached: a file that could not be read may be readable later
            if _checksums.get(key) is future:
                del _checksums[key]
        raise
