"""The executors: results in order, errors named, cancel, selection, frames via a shared directory."""
import contextvars
import os
import threading
import time

import numpy as np
import pytest

from gmoswidgets.errors import FileProblem, GmosError, ParameterError
from gmoswidgets.executor import (SCHEDULER_ENV, SHARED_DIR_ENV, DaskExecutor, ProcessExecutor,
                                  SequentialExecutor, TaskError, ThreadExecutor,
                                  get_executor, map_bands, map_in_memory)


def _square_late(x):
    """x**2, the first items finishing last (so completion order != item order)."""
    time.sleep(0.02 * (5 - x % 5))
    return x * x


def _fail_on_three(x):
    if x == 3:
        raise ValueError("three is bad")
    return x


def _file_problem(x):
    raise FileProblem(f"frame{x}.fits", "truncated")


def _user_error_on_two(x):
    if x == 2:
        raise GmosError("no bias for it")
    return x


LOCAL = [SequentialExecutor, ThreadExecutor, ProcessExecutor]


@pytest.mark.parametrize("cls", LOCAL)
def test_results_in_item_order(cls):
    done = []
    with cls() as ex:
        assert ex.map(_square_late, range(10), on_done=lambda i, r: done.append((i, r))) == \
            [x * x for x in range(10)]
    assert sorted(done) == [(x, x * x) for x in range(10)]


@pytest.mark.parametrize("cls", LOCAL)
def test_error_names_the_item(cls):
    with cls() as ex, pytest.raises(TaskError, match=r"frame-3: ValueError: three is bad") as info:
        ex.map(_fail_on_three, range(6), label=lambda x: f"frame-{x}")
    assert not isinstance(info.value, GmosError)  # a bug stays a bug (traceback logged)
    assert isinstance(info.value.error, ValueError)


@pytest.mark.parametrize("cls", LOCAL)
def test_user_error_stays_a_user_error(cls):
    with cls() as ex, pytest.raises(GmosError) as info:
        ex.map(_user_error_on_two, range(4))
    assert type(info.value) is GmosError and str(info.value) == "no bias for it"  # as raised
    assert info.value.__notes__ == ["(while processing 2)"]


def test_a_file_problem_crosses_processes_intact():
    with ProcessExecutor(1) as ex, pytest.raises(FileProblem, match="frame0.fits: truncated") as info:
        ex.map(_file_problem, [0])
    assert info.value.path == "frame0.fits" and info.value.problem == "truncated"


def test_sequential_stops_at_the_first_error():
    calls = []

    def func(x):
        calls.append(x)
        return _fail_on_three(x)

    with pytest.raises(TaskError):
        SequentialExecutor().map(func, range(8))
    assert calls == [0, 1, 2, 3]


@pytest.mark.parametrize("cls", [SequentialExecutor, ThreadExecutor])
def test_cancel_drops_items_not_started(cls):
    started = []
    stop = threading.Event()

    def func(x):
        started.append(x)
        time.sleep(0.05)
        return x

    def cancel_check():
        if stop.is_set():
            raise KeyboardInterrupt("cancelled")

    ex = cls(max_workers=1) if cls is ThreadExecutor else cls()
    with ex, pytest.raises(KeyboardInterrupt):
        ex.map(func, range(20), on_done=lambda i, r: stop.set(), cancel_check=cancel_check)
    time.sleep(0.2)  # nothing keeps running in the background
    assert 1 <= len(started) <= 3


def test_threads_run_concurrently():
    barrier = threading.Barrier(2, timeout=5)
    # both calls must be inside func at once, or the barrier times out
    assert ThreadExecutor(max_workers=2).map(lambda x: barrier.wait() * 0 + x, [1, 2]) == [1, 2]


def test_work_holding_the_gil_goes_to_forked_processes_without_pickling():
    lock = threading.Lock()  # unpicklable, as is the lambda: the processes inherit both
    items = [(lock, x) for x in range(5)]
    done = []
    with ThreadExecutor(2) as ex:
        results = ex.map(lambda item: (os.getpid(), item[1] ** 2), items, holds_gil=True,
                         on_done=lambda i, r: done.append(i))
    pids = {pid for pid, _ in results}
    assert [square for _, square in results] == [x * x for x in range(5)]
    assert os.getpid() not in pids and 1 <= len(pids) <= 3
    assert sorted(done) == list(range(5))


def _huge_pages_asked() -> bool:
    """Whether numpy asks for transparent huge pages for its large arrays (setting kept)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _set_madvise_hugepage
    asked = _set_madvise_hugepage(True)
    _set_madvise_hugepage(asked)
    return asked


def test_forked_processes_ask_numpy_for_no_huge_pages():
    """They start with no freed memory: huge pages would cost their compaction at each touch."""
    before = _huge_pages_asked()
    with ThreadExecutor(2) as ex:
        assert ex.map(lambda x: _huge_pages_asked(), range(3), holds_gil=True) == [False] * 3
    assert _huge_pages_asked() == before     # the calling process keeps its setting


def _band_threads(x) -> set:
    """The threads :func:`map_bands` runs a 64-row job's bands on."""
    seen = set()
    map_bands(lambda first, stop: seen.add(threading.get_ident()), 64, min_rows=8)
    return {ident == threading.get_ident() for ident in seen}


def test_forked_processes_run_bands_in_the_calling_thread():
    """The processes already share the cores: their kernels make no band threads."""
    with ThreadExecutor(2) as ex:
        assert ex.map(_band_threads, range(3), holds_gil=True) == [{True}] * 3
    if len(os.sched_getaffinity(0)) > 1:  # this process keeps its band threads
        assert _band_threads(0) == {False}


@pytest.mark.parametrize("items,processes", [(4, 2), (5, 3), (3, 3), (2, 2)] + [
    pytest.param(*case, marks=pytest.mark.slow) for case in [(6, 2), (7, 2), (9, 3)]])
def test_forked_processes_keep_both_cores_busy_to_the_end(items, processes):
    """5 frames on 2 cores: 3 processes (3 + 2 at once), not 2 (2 + 2 + 1, a core idle)."""
    with ThreadExecutor(2) as ex:
        pids = ex.map(lambda x: time.sleep(0.3) or os.getpid(), range(items), holds_gil=True)
    assert len(set(pids)) == processes


def test_work_holding_the_gil_in_processes_names_the_failed_item():
    with ThreadExecutor(2) as ex:
        with pytest.raises(TaskError, match=r"frame-3: ValueError: three is bad"):
            ex.map(_fail_on_three, range(6), label=lambda x: f"frame-{x}", holds_gil=True)
        with pytest.raises(GmosError, match="no bias for it"):
            ex.map(_user_error_on_two, range(4), holds_gil=True)
        assert ex.map(_square_late, range(4), holds_gil=True) == [0, 1, 4, 9]  # still usable


def test_cancel_of_a_forked_map_leaves_no_process_behind():
    import multiprocessing
    stop = threading.Event()

    def cancel_check():
        if stop.is_set():
            raise KeyboardInterrupt("cancelled")

    with ThreadExecutor(2) as ex, pytest.raises(KeyboardInterrupt):
        ex.map(lambda x: time.sleep(0.2) or x, range(20), holds_gil=True,
               on_done=lambda i, r: stop.set(), cancel_check=cancel_check)
    assert multiprocessing.active_children() == []  # the forked workers were waited for


def test_work_holding_the_gil_with_one_worker_stays_in_the_calling_thread():
    me = threading.get_ident()
    with ThreadExecutor(1) as ex:
        assert ex.map(lambda x: (threading.get_ident(), os.getpid()), [1, 2], holds_gil=True) \
            == [(me, os.getpid())] * 2
    with ThreadExecutor(2) as ex:
        assert me not in ex.map(lambda x: threading.get_ident(), [1, 2])


_RUN = contextvars.ContextVar("run", default=None)


def test_thread_calls_see_the_callers_context_variables():
    token = _RUN.set("run-1")
    try:
        with ThreadExecutor(2) as ex:
            assert ex.map(lambda x: (_RUN.get(), x), [1, 2]) == [("run-1", 1), ("run-1", 2)]
            assert map_in_memory(ex, lambda x: _RUN.get(), [1, 2]) == ["run-1", "run-1"]
    finally:
        _RUN.reset(token)


def test_map_in_memory_uses_the_threads_of_a_thread_executor_only():
    me = threading.get_ident()
    barrier = threading.Barrier(2, timeout=5)  # both items at once, or it times out
    with ThreadExecutor(2) as ex:
        idents = map_in_memory(ex, lambda x: (barrier.wait(), threading.get_ident())[1], [1, 2])
    assert me not in idents
    for ex in (SequentialExecutor(), ProcessExecutor(2), ThreadExecutor(1)):
        with ex:  # a closure is fine: nothing leaves this process
            assert map_in_memory(ex, lambda x: (x * x, threading.get_ident()), [1, 2, 3]) == \
                [(1, me), (4, me), (9, me)]
    with ThreadExecutor(2) as ex, pytest.raises(ValueError, match="three is bad"):
        map_in_memory(ex, _fail_on_three, range(5))


def test_selection(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert isinstance(get_executor(), ThreadExecutor)
    assert isinstance(get_executor("sync"), SequentialExecutor)
    assert get_executor("processes", max_workers=3).max_workers == 3
    monkeypatch.setenv(SCHEDULER_ENV, "sync")
    assert isinstance(get_executor(), SequentialExecutor)
    assert isinstance(get_executor("threads"), ThreadExecutor)  # an argument wins
    ex = SequentialExecutor()
    assert get_executor(ex) is ex
    with pytest.raises(ParameterError, match="empty scheduler"):
        get_executor(" ")


@pytest.mark.slow
def test_unreachable_scheduler_is_a_one_line_error():
    with pytest.raises(GmosError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        DaskExecutor(address="tcp://127.0.0.1:9", timeout="1s")


# --------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def _double_sci(frame):
    out = frame.copy()
    for ext in out.exts:
        ext.data = ext.data * 2.0
    return out


def _frame_and_offset(pair):
    frame, cal = pair
    return float(frame.exts[0].data.mean() - cal.exts[0].data.mean())


def test_dask_shared_dir_from_the_environment(dask_client, tmp_path, monkeypatch):
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    with DaskExecutor(dask_client) as ex:
        assert ex.shared_dir == str(tmp_path)
    assert tmp_path.is_dir()  # given, so not removed


def test_dask_results_in_order_and_errors_named(dask_client):
    with DaskExecutor(dask_client) as ex:
        assert ex.map(_square_late, range(7)) == [x * x for x in range(7)]
        with pytest.raises(TaskError, match="frame-3: ValueError: three is bad"):
            ex.map(_fail_on_three, range(6), label=lambda x: f"frame-{x}")


def test_dask_frames_travel_by_path(dask_client, tutorial4):
    from gmoswidgets.frame import read_frame
    frames = [read_frame(p) for p in tutorial4.bias[:2]]
    with DaskExecutor(dask_client) as ex:
        assert ex.shared_dir is not None and os.path.isdir(ex.shared_dir)  # workers are local
        doubled = ex.map(_double_sci, frames)
        # one calibration shared by every item is written once
        offsets = ex.map(_frame_and_offset, [(f, frames[0]) for f in frames])
        assert os.listdir(ex.shared_dir) == []  # nothing left behind
    for frame, out in zip(frames, doubled):
        assert out.filename == frame.filename and out.path == frame.path
        for a, b in zip(frame.exts, out.exts):
            np.testing.assert_array_equal(b.data, a.data * 2.0)
    assert offsets[0] == 0.0
    assert offsets[1] == pytest.approx(float(frames[1].exts[0].data.mean()
                                             - frames[0].exts[0].data.mean()))
