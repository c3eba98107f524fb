"""The compiled kernels (numba) loaded in a background thread, ahead of their first use.

The first compiled kernel a process uses costs ~0.5 s: importing numba and
setting up its typing registries, mostly Python, before the cached machine
code is read.  Done by the step that first needs a kernel (mosaicDetectors),
that time adds to the reduction's; done in a thread started when the science
modules are imported (the engine imports a recipe's modules when it builds
its steps), it overlaps the first steps, whose numpy work leaves the GIL free
much of the time.

A process forked while the thread runs could inherit a lock it holds (an
import's, numba's compiler lock): :func:`start` makes every fork wait for the
thread first, and so does the interpreter's exit.
"""
from __future__ import annotations

import atexit
import importlib
import os
import threading

__all__ = ["start", "wait", "MODULES"]

#: The kernel modules loaded, in order (each imports numba and reads its cached kernels).
MODULES = ("gmoswidgets.primitives.photometry_kernels", "gmoswidgets.primitives.crs_kernels",
           "gmoswidgets.numerics.kernels")

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _load() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:   # noqa: BLE001 - the step that uses the kernel reports the error
            return


def start() -> None:
    """Start loading the kernels in a background thread (once per process; no-op after)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _thread = threading.Thread(target=_load, name="gmoswidgets-kernel-preload", daemon=True)
        os.register_at_fork(before=wait)
        atexit.register(wait)
        _thread.start()


def wait() -> None:
    """Return when the background loading (if started) is done."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()
