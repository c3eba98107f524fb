"""The in-memory budget of ``keep='spill'``: steps stay in memory within the process's budget,
the least recently used go to disk beyond it, and every step reloads as it was computed."""
import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets import storage
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.membudget import MemoryBudget, held_bytes, spill_budget
from gmoswidgets.reduction import Reduction
from gmoswidgets.storage import StepStore

from test_storage import _assert_same_frames


def _frame(value, name, shape=(40, 50)):
    ext = Extension(np.full(shape, value, np.float32), fits.Header(),
                    np.ones(shape, np.float32),
                    np.broadcast_to(np.zeros((), np.uint16), shape))   # a constant DQ plane
    frame = Frame(fits.Header({"INSTRUME": "GMOS-N"}), [ext])
    frame.filename = name
    return frame


STEP = 2 * 40 * 50 * 4          # bytes one _frame holds (the broadcast DQ plane: next to none)


def on_disk_steps(spill_dir):
    return {int(p.name[4:6]) for p in spill_dir.rglob("*.bin")}


def test_a_plane_counts_as_the_memory_it_holds():
    frame = _frame(1.0, "a.fits")
    planes = [frame[0].data, frame[0].variance, frame[0].mask]
    assert held_bytes(planes) == STEP + 2
    assert held_bytes(planes + [frame[0].data[5:10]]) == STEP + 2    # a view: its base, once


def test_least_recently_used_steps_are_spilled_first():
    budget, spilled = MemoryBudget(3 * 1000), []
    arrays = {k: np.zeros(1000, np.uint8) for k in "abcd"}
    for key in "abc":
        budget.admit(("s", key), [arrays[key]], lambda key=key: spilled.append(key))
    budget.touch(("s", "a"))                             # a was shown: b is now the oldest
    budget.admit(("s", "d"), [arrays["d"]], lambda: spilled.append("d"))
    assert spilled == ["b"] and budget.held == 3000
    budget.admit(("t", "x"), [arrays["a"], arrays["c"]], lambda: spilled.append("x"))
    assert spilled == ["b"] and budget.held == 3000     # planes of two steps counted once
    big = np.zeros(5000, np.uint8)
    budget.admit(("t", "y"), [big], lambda: spilled.append("y"))
    assert spilled == ["b", "c", "a", "d", "x", "y"]     # too large alone: spilled as well
    assert budget.held == 0


@pytest.fixture
def use_budget(monkeypatch):
    """Make the stores made from now on share a new budget of ``limit`` bytes."""
    def use(limit):
        budget = MemoryBudget(limit)
        monkeypatch.setattr(storage, "spill_budget", lambda: budget)
        return budget
    return use


def test_a_store_within_budget_writes_nothing(tmp_path, use_budget):
    budget = use_budget(10 * STEP)
    store = StepStore("spill", spill_dir=tmp_path)
    frames = [_frame(1.0, "a.fits"), _frame(2.0, "b.fits")]
    store.put(0, frames)
    assert store.load(0)[0] is frames[0] and store.bytes_written == 0
    assert not frames[0][0].data.flags.writeable         # as if mapped: never changed
    assert store.result_keeper(None, 1)(frames[1]) is frames[1]   # per-frame results too
    store.close()
    assert budget.held == 0


def test_steps_beyond_the_budget_go_to_disk_and_reload_identical(tmp_path, use_budget):
    budget = use_budget(2 * STEP + 10)
    store = StepStore("spill", spill_dir=tmp_path)
    made = {}
    for index in range(4):
        made[index] = _frame(float(index), f"f{index}.fits")
        want = made[index].copy()
        store.put(index, [made[index]])
        made[index] = want
        if index == 1:
            store.load(0)                               # step 0 shown: step 1 goes first
    assert budget.held <= budget.limit
    assert on_disk_steps(tmp_path) == {0, 1}
    assert store.bytes_written == 2 * STEP               # the constant DQ plane: no file
    for index in range(4):
        got = store.load(index)[0]
        _assert_same_frames([got], [made[index]], f"step {index}")
        assert not got[0].data.flags.writeable
    # a step passing on a plane of a step on disk goes to disk: the plane is not written again
    mapped = store.load(0)[0]
    store.put(4, [Frame(mapped.phu, [Extension(mapped[0].data, mapped[0].header)])])
    assert store.bytes_written == 2 * STEP and budget.held == 2 * (STEP + 2)   # steps 2, 3
    assert not store.load(4)[0][0].data.flags.writeable
    # a plane shared by two steps in memory counts once, and is written once
    kept = store.load(3)[0]
    store.put(5, [Frame(kept.phu, [Extension(kept[0].data, kept[0].header)])])
    assert store.bytes_written == 2 * STEP and budget.held == 2 * (STEP + 2)
    budget.limit = 0
    store.put(6, [_frame(6.0, "g.fits")])               # every step goes to disk
    assert store.bytes_written == 2 * STEP + 3 * STEP   # steps 2, 3 and 6; 5 has nothing new
    np.testing.assert_array_equal(store.load(5)[0][0].data, 3.0)
    assert on_disk_steps(tmp_path) == {0, 1, 2, 3, 6}   # 4 and 5: planes of 0 and 3
    store.close()


def test_the_budget_is_shared_by_the_reductions_of_the_process(tmp_path, use_budget):
    assert StepStore("spill")._budget is StepStore("spill")._budget is spill_budget()
    budget = use_budget(2 * STEP + 10)
    first, second = StepStore("spill", spill_dir=tmp_path), StepStore("spill", spill_dir=tmp_path)
    first.put(0, [_frame(1.0, "a.fits")])
    second.put(0, [_frame(2.0, "b.fits")])
    second.put(1, [_frame(3.0, "c.fits")])              # the other store's older step goes
    assert first.bytes_written == STEP and second.bytes_written == 0
    np.testing.assert_array_equal(first.load(0)[0][0].data, 1.0)
    del first                                           # a store collected: its steps forgotten
    assert budget.held == 2 * (STEP + 2)
    second.close()
    assert budget.held == 0


@pytest.fixture(scope="module")
def bias_all(tutorial4, tmp_path_factory):
    """The 4x4 bias reduced with every step in memory (the reference)."""
    red = Reduction([str(p) for p in tutorial4.bias], keep="all",
                    workdir=tmp_path_factory.mktemp("bias_all"))
    red.run_all()
    return red


@pytest.mark.parametrize("limit", ["small", pytest.param("large", marks=pytest.mark.slow)])
def test_a_spill_reduction_under_a_small_or_large_budget_equals_the_in_memory_one(
        bias_all, tutorial4, tmp_path, monkeypatch, limit):
    per_step = max(held_bytes(p for f in bias_all.outputs(s.index) for e in f.exts
                              for p in (e.data, e.variance, e.mask) if p is not None)
                   for s in bias_all.steps)
    monkeypatch.setattr(spill_budget(), "limit", per_step if limit == "small" else 2**40)
    red = Reduction([str(p) for p in tutorial4.bias], keep="spill", spill_dir=tmp_path / "tmp",
                    workdir=tmp_path / "work")
    red.run_all()
    spilled = list((tmp_path / "tmp").rglob("*.bin"))
    if limit == "small":
        assert spilled and 0 < red._store.bytes_written
        assert spill_budget().held <= spill_budget().limit
    else:
        assert not spilled and red._store.bytes_written == 0
    for step in bias_all.steps:
        _assert_same_frames(red.outputs(step.index), bias_all.outputs(step.index), step.label)
    red.invalidate(2)                                   # re-run from a step: same results
    red.run_all()
    for step in bias_all.steps:
        _assert_same_frames(red.outputs(step.index), bias_all.outputs(step.index),
                            f"re-run {step.label}")
    red.close()
    assert spill_budget().held == 0 and not list((tmp_path / "tmp").rglob("*.bin"))


@pytest.mark.slow
def test_science_under_a_budget_of_half_a_step_equals_the_in_memory_one(tutorial4, masters4,
                                                                       tmp_path, monkeypatch):
    """Per-frame results beyond the budget are written as they come: a step is then part in
    memory, part mapped, and goes to disk whole; every step reloads as computed."""
    ref = Reduction(tutorial4.science, keep="all", user_cals=masters4, workdir=tmp_path / "all")
    ref.run_all()
    sizes = [held_bytes(p for f in ref.outputs(s.index) for e in f.exts
                        for p in (e.data, e.variance, e.mask, e.objmask) if p is not None)
             for s in ref.steps]
    monkeypatch.setattr(spill_budget(), "limit", max(sizes) // 2)
    answers = []
    reserve = MemoryBudget.reserve
    monkeypatch.setattr(MemoryBudget, "reserve",
                        lambda *a, **k: answers.append(reserve(*a, **k)) or answers[-1])
    red = Reduction(tutorial4.science, keep="spill", user_cals=masters4,
                    spill_dir=tmp_path / "tmp", workdir=tmp_path / "spill")
    red.run_all()
    assert True in answers and False in answers        # results kept, and results written
    assert 0 < red._store.bytes_written < sum(sizes)
    assert spill_budget().held <= spill_budget().limit
    for step in ref.steps:
        _assert_same_frames(red.outputs(step.index), ref.outputs(step.index), step.label)
    red.close()
    assert spill_budget().held == 0
