"""Per-frame work over an executor: the same science stack whichever executor runs it.

The science recipe at 4x4 runs with its per-frame steps (overscanCorrect,
biasCorrect, flatCorrect, QECorrect, mosaicDetectors, detectSources,
resampleToCommonFrame; flagCosmicRaysByStacking splits its work over the
threads) one after the other in this thread,
on local threads and on local processes; every step's output and the stack
must be identical.  Progress is reported per frame whatever the executor.
"""
import numpy as np
import pytest

from gmoswidgets.executor import ProcessExecutor, SequentialExecutor, ThreadExecutor
from gmoswidgets.reduction import Reduction


PER_FRAME = ("overscanCorrect", "biasCorrect", "flatCorrect", "QECorrect", "mosaicDetectors",
             "detectSources (1)", "resampleToCommonFrame", "flagCosmicRaysByStacking")


@pytest.fixture(scope="module")
def masters(masters4):
    """The session's 4x4 master bias and flat."""
    return masters4


def _run(files, masters, workdir, executor):
    red = Reduction(files, workdir=workdir, user_cals=masters, keep="all", executor=executor)
    events = []
    red.subscribe(events.append)
    with executor:
        red.run_all()
    return red, events


def _same(frames_a, frames_b, where):
    assert [f.filename for f in frames_a] == [f.filename for f in frames_b], where
    for a, b in zip(frames_a, frames_b):
        for ea, eb in zip(a.exts, b.exts):
            for plane in ("data", "variance", "mask", "objmask"):
                pa, pb = getattr(ea, plane), getattr(eb, plane)
                assert (pa is None) == (pb is None), (where, plane)
                if pa is not None:
                    np.testing.assert_array_equal(pa, pb, err_msg=f"{where} {a.filename} {plane}")
            if ea.objcat is not None:
                assert len(ea.objcat) == len(eb.objcat), where
                np.testing.assert_array_equal(ea.objcat["X_IMAGE"], eb.objcat["X_IMAGE"])


@pytest.mark.slow
def test_threads_and_processes_give_the_sequential_result(tutorial4, masters, tmp_path):
    files = [str(p) for p in tutorial4.science]
    ref, ref_events = _run(files, masters, tmp_path / "sync", SequentialExecutor())
    for name, executor in (("threads", ThreadExecutor(2)), ("processes", ProcessExecutor(2))):
        red, events = _run(files, masters, tmp_path / name, executor)
        for label in PER_FRAME + (red.steps[-1].label,):
            _same(ref.outputs(label), red.outputs(label), f"{name} {label}")
        step = red.step("mosaicDetectors").index
        progress = [e.fraction for e in events if e.kind == "progress" and e.step_index == step]
        assert sorted(progress) == [(i + 1) / len(files) for i in range(len(files))]
