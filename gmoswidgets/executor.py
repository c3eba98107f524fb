"""Where per-item work runs: in this thread, local threads or processes, or a Dask cluster.

An :class:`Executor` has one operation, :meth:`~Executor.map`: apply a
function to each item and return the results in the items' order.  The
engine maps per-frame work over the executor it is given; the work itself
does not know which one runs it::

    ex = get_executor()                          # $GMOSWIDGETS_SCHEDULER or local threads
    ex = get_executor("sync")                    # one at a time, in this thread
    ex = get_executor("tcp://10.0.0.5:8786")     # an existing dask.distributed cluster
    results = ex.map(func, frames, label=lambda f: f.filename)

Local threads are the default: numpy, scipy and sep release the GIL in
their heavy loops, and nothing has to be copied.  ``"processes"`` suits
work that holds the GIL (the items and results are pickled).  On Dask,
:class:`~gmoswidgets.frame.Frame` items and results travel as FITS files
in a directory every worker can read (``shared_dir``; by default a
temporary directory when every worker runs on this machine) and are
pickled only when there is no such directory.
"""
from __future__ import annotations

import contextvars
import multiprocessing
import os
import shutil
import tempfile
import threading
import uuid
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .errors import GmosError, ParameterError
from .frame import Frame, read_frame
from .heaptrim import no_huge_pages, one_malloc_arena, release_free_heap

__all__ = ["Executor", "SequentialExecutor", "ThreadExecutor", "ProcessExecutor",
           "DaskExecutor", "TaskError", "get_executor", "SCHEDULER_ENV", "SHARED_DIR_ENV",
           "LOCAL_SCHEDULERS", "DEFAULT_SCHEDULER", "describe_item", "map_in_memory",
           "map_bands"]

#: Environment variable naming the scheduler when none is given.
SCHEDULER_ENV = "GMOSWIDGETS_SCHEDULER"
#: Environment variable naming a directory every Dask worker shares (frames travel through it).
SHARED_DIR_ENV = "GMOSWIDGETS_SHARED_DIR"
#: Names of the local executors (anything else is a Dask scheduler address).
LOCAL_SCHEDULERS = ("sync", "threads", "processes")
#: The scheduler used when neither an argument nor the environment names one.
DEFAULT_SCHEDULER = "threads"
#: Prefix of the Dask task keys of mapped work (shows which work a cluster did).
TASK_PREFIX = "gmoswidgets"


class TaskError(Exception):
    """One item of a :meth:`Executor.map` failed with an unexpected error; names the item.

    Errors meant for the user (:class:`~gmoswidgets.errors.GmosError`) are
    re-raised as they are (they name their file), with a note naming the item.

    Attributes
    ----------
    label : str
        The item, as the map's ``label`` names it.
    error : BaseException
        The original exception (also ``__cause__``).
    """

    def __init__(self, label: str, error: BaseException):
        self.label, self.error = label, error
        super().__init__(f"{label}: {type(error).__name__}: {error}")


def _reraise(label: str, error: Exception):
    """Raise what a failed item raises from :meth:`Executor.map` (call in ``except``)."""
    if isinstance(error, GmosError):
        error.add_note(f"(while processing {label})")
        raise error
    raise TaskError(label, error) from error


def describe_item(item) -> str:
    """An item's name in messages: a frame's file name (also as first of a tuple), else repr."""
    first = item[0] if isinstance(item, tuple) and item else item
    return first.filename if isinstance(first, Frame) else repr(item)


class Executor:
    """Maps a function over items; subclasses decide where the calls run.

    An executor may hold workers (threads, processes, a Dask client): use it
    as a context manager or call :meth:`close` when done.
    """

    #: Short name shown in logs ('sync', 'threads', 'processes', 'dask').
    name = ""

    def map(self, func: Callable, items: Iterable, *, label: Callable | None = None,
            on_done: Callable | None = None, cancel_check: Callable | None = None,
            holds_gil: bool = False) -> list:
        """Apply ``func`` to every item; return the results in the items' order.

        Parameters
        ----------
        func : callable
            ``func(item) -> result``.  For processes and Dask it must be
            picklable (a module-level function or a ``functools.partial`` of one).
        items : iterable
            The items.
        label : callable, optional
            ``label(item) -> str`` naming an item in errors; default
            :func:`describe_item`.
        on_done : callable, optional
            ``on_done(index, result)``, called in this thread as each item
            finishes (in completion order).
        cancel_check : callable, optional
            Called in this thread between completions; when it raises, the
            items not started are dropped, the running ones are waited for,
            and its exception propagates.
        holds_gil : bool
            ``func`` holds the GIL most of the time (e.g. sep): threads would
            only take turns, so the thread executor calls it in this thread.

        Returns
        -------
        list
            ``[func(item) for item in items]``.

        Raises
        ------
        TaskError
            The first item that failed (by completion), named; the other items
            not yet started are dropped.  A GmosError is raised as it is.
        """
        items = list(items)
        return self._map(func, items, label or describe_item, on_done or (lambda i, r: None),
                         cancel_check or (lambda: None), holds_gil)

    def _map(self, func, items, label, on_done, cancel_check, holds_gil) -> list:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers this executor started (not a cluster it was given)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class SequentialExecutor(Executor):
    """Runs every call in the calling thread, one after the other (the reference)."""

    name = "sync"

    def _map(self, func, items, label, on_done, cancel_check, holds_gil=False):
        results = []
        for index, item in enumerate(items):
            cancel_check()
            try:
                result = func(item)
            except Exception as exc:
                _reraise(label(item), exc)
            results.append(result)
            on_done(index, result)
        return results


def _collect(submit: Callable, items: list, label, on_done, cancel_check) -> list:
    """``submit(index)`` (-> a future) the call of every item; the results in the items' order.

    On an error or a cancel the calls not started are dropped and the
    running ones waited for.
    """
    pending = {submit(index): index for index in range(len(items))}
    results: list = [None] * len(items)
    try:
        while pending:
            cancel_check()
            done, _ = futures.wait(pending, timeout=0.2, return_when=futures.FIRST_COMPLETED)
            for future in sorted(done, key=pending.get):
                index = pending.pop(future)
                try:
                    results[index] = future.result()
                except Exception as exc:
                    _reraise(label(items[index]), exc)
                on_done(index, results[index])
    finally:
        if pending:
            for future in pending:
                future.cancel()
            futures.wait(pending)
    return results


class _PoolExecutor(Executor):
    """Common part of the thread and process executors (a lazily made pool)."""

    _pool_class: type = futures.Executor

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers or len(os.sched_getaffinity(0))
        self._pool = None
        self._pool_lock = threading.Lock()   # maps may start from several threads (reduce-all)

    def _get_pool(self):
        with self._pool_lock:
            if self._pool is None:
                self._pool = self._pool_class(max_workers=self.max_workers)
            return self._pool

    def _map(self, func, items, label, on_done, cancel_check, holds_gil):
        pool = self._get_pool()
        return _collect(lambda i: pool.submit(func, items[i]), items, label, on_done,
                        cancel_check)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} max_workers={self.max_workers}>"


class ThreadExecutor(_PoolExecutor):
    """Local threads (the default): for work that releases the GIL (numpy, scipy).

    Each call sees the calling thread's context variables (``contextvars``,
    in a copy per call).  Work that holds the GIL (``holds_gil=True``, e.g.
    sep) runs instead in processes forked for the map (as many as there
    are threads): they inherit the function and the items (nothing is
    pickled on the way in, so lambdas and unpicklable items are fine) and
    send back only the results, which should be small (see
    :func:`_balanced_workers` for their number).  Such work should
    use only numpy-level code (a forked copy of a multi-threaded process
    may find a lock held).  Where ``fork`` is not available, in a daemonic
    process (a Dask or multiprocessing worker) or for a single item or
    worker, it runs in the calling thread.  In the forked processes numpy
    asks for no transparent huge pages
    (:func:`~gmoswidgets.heaptrim.no_huge_pages`) and :func:`map_bands`
    makes no threads: the processes already share the cores.

    The worker threads allocate from glibc's main malloc arena, as the
    calling thread does: with an arena per thread, freed frame-sized
    blocks stayed with each thread and the peak memory of a 2x2 flat
    reduction rose from 0.69 to 0.99 GB (measured).

    Parameters
    ----------
    max_workers : int, optional
        Default: the number of cores this process may use.
    """

    name = "threads"
    _pool_class = futures.ThreadPoolExecutor

    def _get_pool(self):
        one_malloc_arena()
        return super()._get_pool()

    def _map(self, func, items, label, on_done, cancel_check, holds_gil):
        if not holds_gil:
            # each call sees the context variables of the calling thread (e.g. a run's log
            # handler), in a copy of its own
            pool = self._get_pool()
            return _collect(lambda i: pool.submit(contextvars.copy_context().run, func, items[i]),
                            items, label, on_done, cancel_check)
        workers = _balanced_workers(len(items), self.max_workers)
        # a daemonic process (e.g. a Dask worker running a whole reduction) may not have children
        if (workers < 2 or "fork" not in multiprocessing.get_all_start_methods()
                or multiprocessing.current_process().daemon):
            return SequentialExecutor._map(self, func, items, label, on_done, cancel_check)
        global _FORKED
        with _FORK_LOCK:  # one forked map at a time: the processes read _FORKED
            _FORKED = (func, items)
            release_free_heap()  # a forked process's peak counts the resident pages it inherits
            pool = futures.ProcessPoolExecutor(workers,
                                               mp_context=multiprocessing.get_context("fork"),
                                               initializer=_start_forked)
            try:
                return _collect(lambda i: pool.submit(_call_forked, i), items, label, on_done,
                                cancel_check)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                _FORKED = None


def _balanced_workers(items: int, cores: int) -> int:
    """Processes for ``items`` calls of about equal cost that hold the GIL, on ``cores`` cores.

    One per core (at most one per item), or one more when that keeps every
    core busy to the end where one per core would not: 5 frames on 2 cores
    run as 3 + 2 on 3 processes (the system sharing the cores) instead of
    2 + 2 + 1 with a core idle for the last frame.  Each process holds one
    item's temporaries at a time, so at most one item more than with one
    process per core.
    """
    if items <= cores:
        return items
    if items % cores and (items % (cores + 1) == 0 or items % (cores + 1) >= cores):
        return cores + 1
    return cores


#: ``(func, items)`` of the forked map under way (read by the forked processes).
_FORKED: tuple | None = None
_FORK_LOCK = threading.Lock()


def _start_forked() -> None:
    """What a process forked for a map does first: numpy asks for no transparent huge
    pages, and :func:`map_bands` runs in the calling thread (the processes share the cores)."""
    global _BANDS
    no_huge_pages()
    _BANDS = (None, 1)


def _call_forked(index: int):
    """What a forked process runs: the map's function on its inherited item ``index``."""
    func, items = _FORKED
    return func(items[index])


class ProcessExecutor(_PoolExecutor):
    """Local processes: for work that holds the GIL; items and results are pickled.

    Parameters
    ----------
    max_workers : int, optional
        Default: the number of cores this process may use.
    """

    name = "processes"
    _pool_class = futures.ProcessPoolExecutor


# --------------------------------------------------------------------------- Dask
@dataclass(frozen=True)
class FrameRef:
    """A frame sent as a FITS file in a shared directory instead of pickled arrays."""

    path: str
    filename: str
    origin: str | None

    @classmethod
    def write(cls, frame: Frame, directory: str) -> "FrameRef":
        path = Path(directory) / f"{uuid.uuid4().hex}.fits"
        frame.write(path)
        return cls(str(path), frame.filename, str(frame.path) if frame.path else None)

    def read(self) -> Frame:
        frame = read_frame(self.path)
        frame.filename, frame.path = self.filename, Path(self.origin) if self.origin else None
        return frame


def _encode(value, directory: str | None, written: dict):
    """Replace the frames in ``value`` (a frame, or tuples/lists of them) by FrameRefs."""
    if directory is None:
        return value
    if isinstance(value, Frame):
        if id(value) not in written:  # a frame shared by every item (a calibration) goes once
            written[id(value)] = FrameRef.write(value, directory)
        return written[id(value)]
    if isinstance(value, (tuple, list)):
        return type(value)(_encode(v, directory, written) for v in value)
    return value


def _decode(value, *, delete: bool = False):
    if isinstance(value, FrameRef):
        frame = value.read()
        if delete:
            Path(value.path).unlink(missing_ok=True)
        return frame
    if isinstance(value, (tuple, list)):
        return type(value)(_decode(v, delete=delete) for v in value)
    return value


def _remote_call(func, item, directory):
    """What a Dask worker runs: read the frames, call, write the frames of the result."""
    return _encode(func(_decode(item)), directory, {})


class DaskExecutor(Executor):
    """Runs the calls as tasks on a ``dask.distributed`` cluster.

    Parameters
    ----------
    client : distributed.Client, optional
        A connected client (not closed by :meth:`close`).
    address : str, optional
        Scheduler address, e.g. ``'tcp://10.0.0.5:8786'``, used when no
        ``client`` is given (this executor then owns the connection).
    shared_dir : path-like, optional
        A directory every worker can read and write, through which frames
        travel as FITS files.  Default: ``$GMOSWIDGETS_SHARED_DIR``, else a
        new temporary directory if every worker can see it (checked with a
        marker file), else none (frames are pickled).
    timeout : str
        How long to try to reach the scheduler at ``address``.

    Raises
    ------
    GmosError
        If the scheduler cannot be reached.
    """

    name = "dask"

    def __init__(self, client=None, *, address: str | None = None, shared_dir=None,
                 timeout: str = "10s"):
        if client is None and address is None:
            raise ParameterError("DaskExecutor needs a client or a scheduler address")
        self._owns_client = client is None
        if client is None:
            from distributed import Client
            try:
                client = Client(address, timeout=timeout)
            except (OSError, TimeoutError) as exc:
                raise GmosError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.client = client
        self._own_dir = None
        shared_dir = shared_dir or os.environ.get(SHARED_DIR_ENV) or None
        if shared_dir is None:
            shared_dir = self._own_dir = self._shared_tempdir()
        self.shared_dir = str(shared_dir) if shared_dir is not None else None

    def _shared_tempdir(self) -> str | None:
        """A new temporary directory if every worker sees it, else None."""
        directory = tempfile.mkdtemp(prefix="gmoswidgets-dask-")
        marker = Path(directory) / "visible"
        marker.touch()
        seen = self.client.run(os.path.exists, str(marker))
        marker.unlink()
        if seen and all(seen.values()):
            return directory
        os.rmdir(directory)
        return None

    def _map(self, func, items, label, on_done, cancel_check, holds_gil):
        from distributed import as_completed
        written: dict = {}
        name = getattr(func, "__name__", None) or getattr(func, "func", _remote_call).__name__
        batch = uuid.uuid4().hex[:8]
        pending = {}
        for index, item in enumerate(items):
            payload = _encode(item, self.shared_dir, written)
            future = self.client.submit(_remote_call, func, payload, self.shared_dir,
                                        key=f"{TASK_PREFIX}-{name}-{batch}-{index}", pure=False)
            pending[future] = index
        results: list = [None] * len(items)
        try:
            for future in as_completed(list(pending)):
                cancel_check()
                index = pending.pop(future)
                try:
                    results[index] = _decode(future.result(), delete=True)
                except Exception as exc:
                    _reraise(label(items[index]), exc)
                on_done(index, results[index])
        finally:
            if pending:
                self.client.cancel(list(pending))
            for ref in written.values():
                Path(ref.path).unlink(missing_ok=True)
        return results

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __repr__(self) -> str:
        return (f"<DaskExecutor {self.client.scheduler.address} "
                f"frames via {self.shared_dir or 'pickles'}>")


def map_in_memory(executor: Executor, func: Callable, items: Iterable) -> list:
    """``[func(item) for item in items]`` on the executor's local threads, if it has some.

    For parts of one step's work on this process's arrays (row chunks of an
    image, the frames of a step that is not mapped) that release the GIL:
    they run on a :class:`ThreadExecutor`'s threads and in the calling
    thread otherwise (they are not worth sending to processes or a cluster).
    ``func`` may be a closure; the first error propagates as it is.
    """
    items = list(items)
    if isinstance(executor, ThreadExecutor) and executor.max_workers > 1 and len(items) > 1:
        pool = executor._get_pool()
        calls = [pool.submit(contextvars.copy_context().run, func, item) for item in items]
        return [call.result() for call in calls]
    return [func(item) for item in items]


#: Fewest rows of a band of :func:`map_bands` (a hand-off to a thread costs ~0.1 ms).
MIN_BAND_ROWS = 32
#: ``(pool, number of threads)`` of this process's band threads, once made
#: (``(None, 1)`` in a process forked for a map: no band threads).
_BANDS: tuple[futures.ThreadPoolExecutor | None, int] | None = None
_BANDS_LOCK = threading.Lock()


def _band_pool() -> tuple[futures.ThreadPoolExecutor, int]:
    """This process's band threads, one per core it may use (made on first use)."""
    global _BANDS
    with _BANDS_LOCK:
        if _BANDS is None:
            one_malloc_arena()
            workers = len(os.sched_getaffinity(0))
            _BANDS = (futures.ThreadPoolExecutor(workers, thread_name_prefix="gmoswidgets-band"),
                      workers)
        return _BANDS


def _forget_band_pool() -> None:
    """In a forked child: the parent's band threads do not exist there."""
    global _BANDS, _BANDS_LOCK
    _BANDS, _BANDS_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_band_pool)


def map_bands(func: Callable, nrows: int, *, min_rows: int = MIN_BAND_ROWS) -> None:
    """Call ``func(first, stop)`` over bands of rows ``0 .. nrows``, one per core, on threads.

    For a compiled kernel that releases the GIL and writes each output row
    independently: the bands together give the result of ``func(0, nrows)``
    bit for bit.  The band threads are this process's own, shared by every
    caller (the frames a step runs on an executor's threads queue their bands
    there): when fewer frames than cores are left (the last of five frames on
    two cores), one frame's rows still keep every core busy.  Without a
    second core, or with fewer than ``2 * min_rows`` rows, ``func`` runs
    once, in the calling thread.  The first error propagates as it is.
    """
    pool, workers = _band_pool()
    count = min(workers, nrows // max(min_rows, 1))
    if count < 2 or threading.current_thread().name.startswith("gmoswidgets-band"):
        func(0, nrows)
        return
    edges = [nrows * k // count for k in range(count + 1)]
    calls = [pool.submit(func, first, stop) for first, stop in zip(edges[:-1], edges[1:])]
    try:
        for call in calls:
            call.result()
    finally:
        futures.wait(calls)


def get_executor(scheduler=None, *, max_workers: int | None = None) -> Executor:
    """The executor a scheduler names.

    Parameters
    ----------
    scheduler : str, Executor or distributed.Client, optional
        ``'sync'``, ``'threads'``, ``'processes'``, a Dask scheduler address
        (``'tcp://host:8786'``), an :class:`Executor` (returned as is) or a
        ``distributed.Client``.  Default: ``$GMOSWIDGETS_SCHEDULER``, else
        ``'threads'``.
    max_workers : int, optional
        Threads or processes of a local executor.

    Returns
    -------
    Executor

    Raises
    ------
    GmosError
        If a Dask scheduler is named but cannot be reached.
    """
    if isinstance(scheduler, Executor):
        return scheduler
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV) or DEFAULT_SCHEDULER
    if not isinstance(scheduler, str):
        return DaskExecutor(scheduler)
    scheduler = scheduler.strip()
    if scheduler == "sync":
        return SequentialExecutor()
    if scheduler == "threads":
        return ThreadExecutor(max_workers)
    if scheduler == "processes":
        return ProcessExecutor(max_workers)
    if not scheduler:
        raise ParameterError("empty scheduler: give 'sync', 'threads', 'processes' or a "
                             "Dask scheduler address such as tcp://127.0.0.1:8786")
    return DaskExecutor(address=scheduler)
