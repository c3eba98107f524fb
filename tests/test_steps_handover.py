"""How the engine hands a step's inputs over under keep='last' (each frame freed once used).

Under ``'last'`` and ``'stream'`` nothing but the running step needs the
previous step's outputs: the engine gives them up (``call_step(handover=True)``)
and a primitive mapping its frames with ``ctx.map(..., consume=True)`` lets
each go once done.  Under ``'all'`` and ``'spill'`` they stay held.
Frames are followed with weak references: a frame is freed when nothing holds it.
"""
import gc
import logging
import weakref
from functools import partial

import numpy as np
import pytest

from gmoswidgets.executor import TaskError, ThreadExecutor
from gmoswidgets.primitives.base import Param, Primitive, PrimitiveTable, StepContext, _Unboxed
from gmoswidgets.recipes import Recipe, RecipeStep
from gmoswidgets.reduction import Reduction


def _one_by_one(seen, frames, ctx, *, fail):
    """A primitive mapping its frames one at a time; ``seen`` gets, at each frame, which of
    the step's inputs are still alive.  ``fail``: it fails on the second frame."""
    refs = [weakref.ref(f) for f in frames]
    jobs = list(frames)
    frames.clear()

    def work(frame):
        gc.collect()
        seen.append([ref() is not None for ref in refs])
        if fail and len(seen) == 2:
            raise ValueError("oneByOne was told to fail")
        new = frame.copy()
        for ext in new:
            ext.data = ext.data * np.float32(2)
        return new
    return ctx.map(work, jobs, consume=True)


def _pass_through(frames, ctx):
    return list(frames)


def _add_one(frames, ctx):
    out = []
    for frame in frames:
        new = frame.copy()
        for ext in new:
            ext.data = ext.data + np.float32(1)
        out.append(new)
    return out


@pytest.fixture
def env(fake_env):
    seen = []
    table = PrimitiveTable([
        Primitive("addOne", _add_one, {}, "_added"),
        Primitive("oneByOne", partial(_one_by_one, seen),
                  {"fail": Param("fail", bool, False, "Fail on the second frame.")}, "_doubled"),
        Primitive("passThrough", _pass_through, {}, "_passed"),
    ])
    recipe = Recipe("handover", (RecipeStep("addOne"), RecipeStep("oneByOne"),
                                 RecipeStep("passThrough")),
                    frozenset({"GMOS", "BIAS"}), frozenset({"PROCESSED"}))

    def reduction(keep, **options):
        return Reduction(fake_env.biases, recipe, primitives=table, keep=keep, **options)
    return reduction, seen


def test_under_last_each_input_goes_once_its_frame_is_done(env):
    reduction, seen = env
    red = reduction("last")
    red.run_all()
    # at frame i, the inputs before it have been freed, the others are alive
    assert seen == [[False] * i + [True] * (3 - i) for i in range(3)]


@pytest.mark.parametrize("keep", ["all", "spill"])
def test_under_all_and_spill_the_inputs_stay_held(env, keep, tmp_path):
    reduction, seen = env
    red = reduction(keep, spill_dir=tmp_path)
    red.run_all()
    assert seen == [[True] * 3] * 3
    assert red.has_outputs(0)


@pytest.mark.slow
def test_results_do_not_depend_on_the_hand_over(env):
    reduction, _ = env
    results = {}
    for keep in ("all", "last"):
        red = reduction(keep)
        red.run_all()
        results[keep] = [(f.filename, [ext.data.copy() for ext in f]) for f in red.outputs(2)]
    for (name_all, planes_all), (name_last, planes_last) in zip(results["all"], results["last"]):
        assert name_all == name_last
        for a, b in zip(planes_all, planes_last):
            np.testing.assert_array_equal(a, b)


def test_a_frame_passed_through_is_copied_and_a_held_frame_is_left_alone(env):
    reduction, _ = env
    red = reduction("last")
    red.run_to(1)
    held = list(red.outputs(1))    # the user keeps the step's outputs while the next one runs
    names = [f.filename for f in held]
    history = [len(f.tables["HISTORY"]) for f in held]
    red.run_all()
    assert [f.filename for f in held] == names        # nor their headers stamped
    assert [len(f.tables["HISTORY"]) for f in held] == history
    outputs = red.outputs(2)
    assert [f.filename for f in outputs] == [n.replace("_doubled", "_passed") for n in names]
    assert not any(out is f for out in outputs for f in held)
    np.testing.assert_array_equal(outputs[0][0].data, held[0][0].data)   # pixels shared


@pytest.mark.slow
def test_a_failed_step_recomputes_the_inputs_it_was_handed(env):
    reduction, _ = env
    red = reduction("last")
    red.set_param(1, "fail", True)
    with pytest.raises(TaskError, match="told to fail"):
        red.run_all()
    # handed over and partly freed: not held any more, recomputed for the next run
    assert not red.has_outputs(0) and red.step(0).status == "done"
    red.set_param(1, "fail", False)
    red.run_all()
    assert red.finished and len(red.outputs(2)) == 3


# -- ctx.map(consume=True) -----------------------------------------------------------------------
class Item:
    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"item-{self.value}"


def _square(item):
    if item.value == 3:
        raise ValueError("three")
    return item.value ** 2


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_map_consume_empties_the_list_and_lets_each_item_go_when_done(workers):
    items = [Item(v) for v in (0, 1, 2, 4)]
    refs = [weakref.ref(i) for i in items]
    alive_at_report = []

    def progress(fraction, message):
        gc.collect()
        alive_at_report.append((message, sum(r() is not None for r in refs)))

    ctx = StepContext(logger=logging.getLogger("test"), progress_callback=progress,
                      executor=ThreadExecutor(max_workers=workers))
    with ctx.executor:
        assert ctx.map(_square, items, consume=True) == [0, 1, 4, 16]
    assert items == []
    assert [count for _, count in alive_at_report] == [3, 2, 1, 0]
    assert {message for message, _ in alive_at_report} == {"item-0", "item-1", "item-2", "item-4"}


def test_map_consume_names_a_failed_item_and_keeps_the_task_name():
    ctx = StepContext(logger=logging.getLogger("test"))
    with pytest.raises(TaskError, match="item-3"):
        ctx.map(_square, [Item(1), Item(3)], consume=True, label=repr)
    assert _Unboxed(partial(_square)).__name__ == "_square"   # Dask names its tasks after it
    items = [Item(2)]
    assert ctx.map(_square, items) == [4] and len(items) == 1  # without consume: left alone


def test_on_disk_the_planes_a_step_passes_on_are_not_written_again(env, tmp_path):
    reduction, _ = env
    red = reduction("stream", spill_dir=tmp_path)
    red.run_to(1)
    written = red._store.bytes_written
    assert written > 0
    red.run_all()                                     # passThrough: its inputs' planes
    assert red._store.bytes_written == written
    assert not red.has_outputs(1) and red.has_outputs(2)


# -- giving the freed memory back ----------------------------------------------------------------
def test_trim_heap_only_above_its_floor_and_if_grown_waits_for_the_process_to_grow(monkeypatch):
    from gmoswidgets import heaptrim
    resident, trims = [heaptrim.RESIDENT_FLOOR - 2**20], []
    monkeypatch.setattr(heaptrim, "resident_bytes", lambda: resident[0])
    monkeypatch.setattr(heaptrim, "release_free_heap", lambda: trims.append(resident[0]))
    heaptrim.trim_heap()                              # a small process keeps its heap
    assert trims == []
    resident[0] = heaptrim.RESIDENT_FLOOR + 500 * 2**20
    heaptrim.trim_heap()                              # before a step: always, above RESIDENT_FLOOR
    assert len(trims) == 1
    resident[0] += heaptrim.TRIM_GROWTH // 2
    heaptrim.trim_heap(if_grown=True)                 # a progress report: not grown enough
    assert len(trims) == 1
    resident[0] += heaptrim.TRIM_GROWTH
    heaptrim.trim_heap(if_grown=True)
    assert len(trims) == 2
    heaptrim.trim_heap(if_grown=True)                 # measured from the last trim
    assert len(trims) == 2
    monkeypatch.setattr(heaptrim, "resident_bytes", lambda: None)   # unknown (not Linux)
    heaptrim.trim_heap(if_grown=True)
    heaptrim.trim_heap()
    assert len(trims) == 2


def test_resident_bytes_is_this_process_s_memory():
    from gmoswidgets.heaptrim import resident_bytes
    before = resident_bytes()
    if before is None:
        pytest.skip("no /proc/self/statm here")
    import mmap
    block = mmap.mmap(-1, 64 * 2**20)                 # 64 MB of new pages (not heap the
    np.frombuffer(block, np.uint8)[::4096] = 1        # process may hold already), touched
    assert resident_bytes() - before > 48 * 2**20
    block.close()
