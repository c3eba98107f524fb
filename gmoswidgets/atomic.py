"""Writing a file atomically: a temporary name next to it, then a rename.

:func:`atomic_path` is the one way outputs are written (``Frame.write``, the
``calibrations/`` copies):

* the temporary file is created with mode ``0o666`` filtered by the umask, so
  the output gets the mode any other new file would get (not ``0600``);
* on any failure (disk full, Ctrl-C) the temporary file is removed and an
  existing output is left as it was;
* the temporary name carries the writer's process id
  (``.NAME.<pid>.<random>.tmp``); temporary files of the same target whose
  process no longer runs (killed with ``kill -9``) are removed before a new
  one is made, so they never accumulate.
"""
from __future__ import annotations

import glob
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "remove_stale_temporaries"]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # another user's process
        return True
    return True


def remove_stale_temporaries(path) -> list:
    """Remove temporary files of ``path`` left by writers that no longer run.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    for name in glob.glob(glob.escape(str(path.parent / prefix)) + "*.tmp"):
        stale = Path(name)
        pid = stale.name[len(prefix):].split(".")[0]
        if pid.isdigit() and not _running(int(pid)):
            try:
                stale.unlink()
                removed.append(stale)
            except OSError:
                pass
    return removed


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; it replaces ``path`` when the block succeeds.

    Parameters
    ----------
    path : path-like
        The final file; its directory must exist.

    Yields
    ------
    pathlib.Path
        An empty file to write (created with the umask's mode).
    """
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
