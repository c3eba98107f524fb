"""Importing ahead: the modules a reduction's later steps need, on a thread while the first run.

Some primitives import heavy modules only when they run (numba and its compiled
kernels, ~0.5 s on a 2-core Xeon; :mod:`scipy.spatial`, ~0.15 s), so that the
stages that do not need them never load them.  In a science reduction these
imports then sit on the critical path of the steps that first need them
(mosaicDetectors, detectSources, adjustWCSToReference, ...), while the first
steps (prepare to QECorrect) spend most of their time in numpy, with the GIL
released.  :func:`start_imports` imports the modules
:func:`gmoswidgets.primitives.deferred_imports` lists for a recipe's steps on a
daemon thread that overlaps them; a step that needs a module still being
imported waits for it (Python's import lock), and an import that fails here is
left to fail again, with its message, in the step that needs it.  A process
forked meanwhile (detectSources' worker processes) would inherit the lock of a
module being imported, held by a thread it does not have, and hang when it
imports that module: a fork first waits for the imports to finish.
"""
from __future__ import annotations

import importlib
import os
import threading
from typing import Iterable

__all__ = ["start_imports"]

#: The threads started by :func:`start_imports` (a fork waits for them).
_threads: list = []


def _finish_before_fork() -> None:
    for thread in list(_threads):
        if thread is not threading.current_thread():
            thread.join()


os.register_at_fork(before=_finish_before_fork)


def _import_all(modules: tuple) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 (the step that needs it imports it again and reports)
            pass


def start_imports(modules: Iterable[str]) -> threading.Thread | None:
    """Import ``modules`` in order on a daemon thread (None if there are none to import).

    Parameters
    ----------
    modules : iterable of str
        Dotted module names.

    Returns
    -------
    threading.Thread or None
        The started thread (a command does not wait for it at exit; a fork does).
    """
    modules = tuple(dict.fromkeys(modules))
    if not modules:
        return None
    thread = threading.Thread(target=_import_all, args=(modules,), name="preload", daemon=True)
    _threads[:] = [t for t in _threads if t.is_alive()] + [thread]
    thread.start()
    return thread
