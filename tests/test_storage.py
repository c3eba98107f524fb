"""The engine's memory policies on the simulated tutorial: spilled and streamed results are
the in-memory ones, byte for byte; spill files are read lazily, shared when a step passes a
plane on unchanged, and deleted with the steps that used them."""
import gc
import weakref

import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets.frame import Extension, Frame
from gmoswidgets.reduction import PENDING, Reduction, ReductionCancelled
from gmoswidgets import storage
from gmoswidgets.storage import STREAM_BATCH, StepStore
from gmoswidgets.membudget import spill_budget
from gmoswidgets.steps import PER_FRAME


@pytest.fixture(autouse=True)
def _spill_every_step(monkeypatch):
    """These tests are about the spill files: 'spill' holds no step in memory (the in-memory
    budget of 'spill': tests/test_membudget.py)."""
    monkeypatch.setattr(spill_budget(), "limit", 0)

_PLANES = ("data", "variance", "mask", "objmask")
#: Keywords holding the time a step ran: they differ between any two runs.
_TIMES = {"GEM-TLM", "DATE"}


def _assert_same_frames(got, want, where):
    assert [f.filename for f in got] == [f.filename for f in want], where
    for a, b in zip(got, want):
        phu_a = {k: v for k, v in a.phu.items() if k not in _TIMES and k.strip()}
        phu_b = {k: v for k, v in b.phu.items() if k not in _TIMES and k.strip()}
        assert phu_a.keys() == phu_b.keys(), where
        assert sorted(a.tables) == sorted(b.tables), where
        for ea, eb in zip(a.exts, b.exts, strict=True):
            assert ea.header.tostring() == eb.header.tostring(), (where, a.filename)
            for plane in _PLANES:
                pa, pb = getattr(ea, plane), getattr(eb, plane)
                assert (pa is None) == (pb is None), (where, plane)
                if pa is not None:
                    assert pa.dtype == pb.dtype and pa.shape == pb.shape, (where, plane)
                    assert pa.tobytes() == pb.tobytes(), f"{where} {a.filename} {plane}"
            assert (ea.objcat is None) == (eb.objcat is None), where
            if ea.objcat is not None:
                assert ea.objcat.colnames == eb.objcat.colnames, where
                for name in ea.objcat.colnames:
                    np.testing.assert_array_equal(ea.objcat[name], eb.objcat[name], err_msg=where)


def _bias_run(files, keep, tmp_path):
    red = Reduction(files, keep=keep, spill_dir=tmp_path / "tmp", workdir=tmp_path / keep)
    events = []
    red.subscribe(events.append)
    red.run_all()
    return red, events


def test_streamed_steps_equal_the_in_memory_ones_and_their_files_go(tutorial4, tmp_path):
    files = [str(p) for p in tutorial4.bias[:3]]        # streamed as 2 + 1 frames
    assert len(files) > STREAM_BATCH
    ref, _ = _bias_run(files, "all", tmp_path)
    red, events = _bias_run(files, "stream", tmp_path)
    assert len([e for e in events if e.kind == "step_started"]) == len(ref.steps)
    per_frame = [s for s in red.steps if s.primitive in PER_FRAME]
    progress = [e.fraction for e in events
                if e.kind == "progress" and e.step_index == per_frame[-1].index]
    assert progress[-1] == pytest.approx(1.0) and progress == sorted(progress)
    assert progress[0] <= 0.5                           # the first batch: part of the step
    assert [red.has_outputs(s.index) for s in red.steps] == [False] * 5 + [True]
    produced = sum(f.nbytes for s in ref.steps for f in ref.outputs(s.index))
    assert 0 < red._store.bytes_written < produced      # some planes were passed on unchanged
    for step in ref.steps:                              # earlier steps recomputed on demand
        _assert_same_frames(red.outputs(step.index), ref.outputs(step.index), step.label)
    out = (tmp_path / "stream" / ref.output_filenames[0])
    assert out.stat().st_size == (tmp_path / "all" / ref.output_filenames[0]).stat().st_size

    frames = red.outputs(0)
    assert frames[0] is not red.outputs(0)[0]           # mapped anew, not held in memory
    plane = frames[0][0].data
    assert not plane.flags.writeable
    with pytest.raises(ValueError):
        plane[0, 0] = 1
    spill = list((tmp_path / "tmp").rglob("*.bin"))
    kept = sum(len(red.outputs(s.index)) for s in red.steps)
    assert 0 < len(spill) <= kept                       # no file but those of kept frames
    red.invalidate(3)
    assert len(list((tmp_path / "tmp").rglob("*.bin"))) < len(spill)
    red.close()
    assert not any(p.exists() for p in spill)
    assert not list((tmp_path / "tmp").iterdir())


def test_a_stream_cancelled_mid_step_recomputes_what_it_had_consumed(tutorial4, tmp_path):
    files = [str(p) for p in tutorial4.bias[:3]]
    ref, _ = _bias_run(files, "all", tmp_path)
    red = Reduction(files, keep="stream", spill_dir=tmp_path / "tmp", workdir=tmp_path / "stream")
    step = red.step("overscanCorrect")

    def cancel_after_first_batch(event):  # progress 1/3, 2/3: first batch (2 frames); 3/3: second
        if event.kind == "progress" and event.step_index == step.index and event.fraction > 0.7:
            red.cancel()
    red.subscribe(cancel_after_first_batch)
    with pytest.raises(ReductionCancelled):
        red.run_all()
    assert step.status == PENDING and not red.has_outputs(step.index - 1)  # partly consumed
    red.unsubscribe(cancel_after_first_batch)
    red.run_all()
    _assert_same_frames(red.outputs(len(red.steps) - 1), ref.outputs(len(ref.steps) - 1), "final")


def _frame(value, name):
    ext = Extension(np.full((4, 5), value, np.float32), fits.Header(),
                    np.ones((4, 5), np.float32), np.zeros((4, 5), np.uint16))
    frame = Frame(fits.Header({"INSTRUME": "GMOS-N"}), [ext])
    frame.filename = name
    return frame


def test_store_shares_an_unchanged_plane_until_its_last_user_goes(tmp_path):
    store = StepStore("spill", spill_dir=tmp_path)
    store.put(0, [_frame(1.0, "a.fits")])
    first = store.load(0)[0]
    passed_on = Frame(first.phu, [Extension(first[0].data, first[0].header, first[0].variance,
                                            first[0].mask + 1)])
    store.put(1, [passed_on])
    files = sorted(p.name for p in tmp_path.rglob("*.bin"))
    assert [name.split("-")[0] for name in files] == ["step00_000", "step01_000"]
    step1 = next(tmp_path.rglob("step01_000-*.bin"))
    assert step1.stat().st_size == 4 * 5 * 2           # only the new DQ plane
    store.discard(0)                                    # step 1 still maps step 0's SCI and VAR
    again = store.load(1)[0]
    np.testing.assert_array_equal(again[0].data, 1.0)
    np.testing.assert_array_equal(again[0].mask, 1)
    store.discard(1)
    assert not list(tmp_path.rglob("*.bin"))
    store.close()


def test_a_rerun_step_never_reads_the_mappings_of_its_discarded_files(tmp_path):
    store = StepStore("spill", spill_dir=tmp_path)
    store.put(0, [_frame(1.0, "a.fits")])
    old = store.load(0)[0]                              # still mapped (a viewer holds it)
    store.put(0, [_frame(2.0, "a.fits")])               # the step re-run
    np.testing.assert_array_equal(store.load(0)[0][0].data, 2.0)
    store.put(1, [Frame(old.phu, [Extension(old[0].data, old[0].header)])])
    np.testing.assert_array_equal(store.load(1)[0][0].data, 1.0)  # written, not taken as step 0's
    np.testing.assert_array_equal(old[0].data, 1.0)
    store.close()


def test_a_released_file_is_written_over_only_once_no_mapping_views_it(tmp_path):
    store = StepStore("spill", spill_dir=tmp_path)
    store.put(0, [_frame(1.0, "a.fits")])
    held = store.load(0)[0]                             # a viewer keeps step 0's frame
    store.discard(0)
    assert not list(tmp_path.rglob("*.bin"))            # released: in the pool, renamed
    store.put(1, [_frame(2.0, "a.fits")])
    assert store.bytes_reused == 0                      # step 0's file is still viewed
    np.testing.assert_array_equal(held[0].data, 1.0)
    frame_bytes = store.bytes_written // 2
    del held
    gc.collect()
    store.put(2, [_frame(3.0, "a.fits")])               # step 0's file, no longer viewed
    assert store.bytes_reused == frame_bytes and store.bytes_written == 3 * frame_bytes
    np.testing.assert_array_equal(store.load(1)[0][0].data, 2.0)
    np.testing.assert_array_equal(store.load(2)[0][0].data, 3.0)
    store.close()
    assert not list(tmp_path.iterdir())


def test_a_plane_passed_on_from_a_released_file_takes_the_file_back(tmp_path):
    store = StepStore("spill", spill_dir=tmp_path)
    store.put(0, [_frame(1.0, "a.fits")])
    first = store.load(0)[0]
    store.discard(0)                                    # released while its planes are viewed
    store.put(1, [Frame(first.phu, [Extension(first[0].data, first[0].header,
                                              first[0].variance)])])
    written = store.bytes_written
    assert written == _frame(1.0, "a.fits").nbytes      # step 0 only: SCI, VAR not written again
    del first
    gc.collect()
    store.put(2, [_frame(2.0, "a.fits")])               # the taken-back file is not written over
    np.testing.assert_array_equal(store.load(1)[0][0].data, 1.0)
    assert store.bytes_reused == 0
    store.close()


def test_the_pool_of_released_files_keeps_at_most_its_bytes(tmp_path, monkeypatch):
    frame_bytes = _frame(1.0, "a.fits").nbytes
    store = StepStore("spill", spill_dir=tmp_path)
    for index in range(4):
        store.put(index, [_frame(float(index), "a.fits")])
    file_bytes = next(tmp_path.rglob("*.bin")).stat().st_size   # planes aligned
    monkeypatch.setattr(storage, "POOL_BYTES", 2 * file_bytes)
    for index in range(4):
        store.discard(index)
    pooled = [p.stat().st_size for p in next(tmp_path.iterdir()).iterdir()]
    assert pooled == [file_bytes] * 2
    store.put(4, [_frame(4.0, "a.fits"), _frame(5.0, "b.fits"), _frame(6.0, "c.fits")])
    assert store.bytes_reused == 2 * frame_bytes        # two pooled files, then a new one
    assert [f[0].data[0, 0] for f in store.load(4)] == [4.0, 5.0, 6.0]
    store.close()
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def masters(masters4):
    """The session's 4x4 master bias and flat (streamed runs equal in-memory ones: tested above)."""
    return masters4


@pytest.mark.slow
def test_science_spilled_and_streamed_equal_in_memory(tutorial4, masters, tmp_path,
                                                     monkeypatch):
    monkeypatch.setattr(storage, "LAST_IN_MEMORY", 0)   # 'last' on disk from the first step
    runs = {}
    for keep in ("all", "spill", "stream", "last"):
        runs[keep] = Reduction(tutorial4.science, keep=keep, user_cals=masters,
                               spill_dir=tmp_path / "tmp", workdir=tmp_path / keep)
        runs[keep].run_all()
    for keep in ("spill", "stream"):
        for step in runs["all"].steps:
            _assert_same_frames(runs[keep].outputs(step.index), runs["all"].outputs(step.index),
                                f"{keep} {step.label}")
    last = len(runs["all"].steps) - 1
    _assert_same_frames(runs["last"].outputs(last), runs["all"].outputs(last), "last on disk")
    assert runs["last"]._store.bytes_reused > 0         # released files were written over


def test_last_holds_large_outputs_on_disk_from_the_first_large_step(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "LAST_IN_MEMORY", 2 * _frame(1.0, "a.fits").nbytes)
    store = StepStore("last", spill_dir=tmp_path)
    small = [_frame(1.0, "a.fits"), _frame(2.0, "b.fits")]
    store.put(0, small)
    assert store.load(0)[0] is small[0] and not list(tmp_path.rglob("*.bin"))
    assert store.result_keeper(None, 1) is None and not store.on_disk  # all in memory
    store.put(1, [_frame(3.0, "a.fits"), _frame(4.0, "b.fits"), _frame(5.0, "c.fits")])
    assert 0 not in store                               # 'last': the earlier step is forgotten
    held = store.load(1)
    assert [f[0].data[0, 0] for f in held] == [3.0, 4.0, 5.0]
    assert not held[0][0].data.flags.writeable          # mapped from disk
    assert len(list(tmp_path.rglob("*.bin"))) == 3
    assert store.result_keeper(None, 2) is not None     # and so are later steps' results
    assert store.on_disk and store.streams
    store.discard(2)
    store.append(2, [_frame(6.0, "a.fits")])            # small again, but still on disk
    store.finish(2)
    assert not store.load(2)[0][0].data.flags.writeable
    assert len(list(tmp_path.rglob("*.bin"))) == 1
    stack = _frame(7.0, "a.fits")
    store.put(3, [stack])             # a small step made at once (a stack) stays in memory
    assert store.load(3)[0] is stack and stack[0].data.flags.writeable
    assert not list(tmp_path.rglob("*.bin")) and store.on_disk
    monkeypatch.setattr(storage, "HELD_STEP_BYTES", 2 * stack.nbytes)
    store.put(4, [_frame(8.0, name) for name in ("a.fits", "b.fits", "c.fits")])  # too large
    assert not store.load(4)[0][0].data.flags.writeable
    store.close()


def test_last_decides_before_the_first_step_from_the_inputs_size(tutorial4, tmp_path,
                                                                 monkeypatch):
    files = [str(p) for p in tutorial4.bias[:3]]
    ref = Reduction(files, keep="all", workdir=tmp_path / "all")
    ref.run_all()
    per_frame = storage.expected_frame_bytes(ref.headers)
    expected = sum(per_frame)
    weights = [sum(f.nbytes for f in ref.outputs(s.index)) for s in ref.steps[:-1]]
    assert max(weights) <= expected < 2 * max(weights)  # an upper bound, not far above
    assert StepStore("last", frame_bytes=per_frame).batch == STREAM_BATCH
    assert StepStore("last", frame_bytes=[storage.STREAM_BYTES] * 3).batch == 1  # large frames

    monkeypatch.setattr(storage, "LAST_IN_MEMORY", expected * 2 // 3)  # two frames' worth
    large = Reduction(files, keep="last", spill_dir=tmp_path / "tmp", workdir=tmp_path / "large")
    small = Reduction(files[:2], keep="last", spill_dir=tmp_path / "tmp",
                      workdir=tmp_path / "small")
    assert large._store.on_disk and not small._store.on_disk
    large.run_next()                                    # prepare, two frames at a time:
    assert 0 < large._store.bytes_written <= weights[0]  # on disk from the first step
    assert not large.outputs(0)[0][0].data.flags.writeable
    small.run_all()
    assert small._store.bytes_written == 0
    large.run_all()
    _assert_same_frames(large.outputs(len(large.steps) - 1), ref.outputs(len(ref.steps) - 1),
                        "final")
    large.close()


def test_last_in_memory_lets_go_of_a_per_frame_steps_inputs_as_it_goes(tutorial4, tmp_path):
    files = [str(p) for p in tutorial4.bias[:3]]        # a batch of 2, then 1
    red = Reduction(files, keep="last", workdir=tmp_path)
    step = red.step("overscanCorrect")
    assert step.primitive in PER_FRAME
    red.run_to(step.index - 1)
    inputs = [weakref.ref(frame) for frame in red.outputs(step.index - 1)]
    alive = []

    def watch(event):
        if event.kind == "progress" and event.step_index == step.index:
            alive.append([ref() is not None for ref in inputs])
    red.subscribe(watch)
    red.run_next()
    assert alive[0] == [True, True, True]               # the first batch is running
    assert alive[-1] == [False, False, True]            # the second: the first batch's inputs gone
    assert not red.has_outputs(step.index - 1) and red.has_outputs(step.index)
    assert red._store.bytes_written == 0                # all in memory


def test_per_frame_steps_stream_as_one_chain_and_only_its_last_outputs_are_written(tutorial4,
                                                                                   tmp_path):
    files = [str(p) for p in tutorial4.bias[:3]]
    ref, _ = _bias_run(files, "all", tmp_path)
    red, events = _bias_run(files, "stream", tmp_path)
    chain = [s.index for s in red.steps if s.primitive in PER_FRAME]
    assert chain == [0, 1, 2, 3]                        # prepare .. overscanCorrect
    order = [(e.kind, e.step_index) for e in events if e.kind in ("step_started", "step_finished")]
    assert order.index(("step_started", 3)) < order.index(("step_finished", 0))  # batch by batch
    assert [s.status for s in red.steps] == [s.status for s in ref.steps]
    assert all(s.elapsed > 0 for s in red.steps)
    weights = [sum(f.nbytes for f in ref.outputs(s.index)) for s in ref.steps]
    assert 0 < red._store.bytes_written <= sum(weights[3:])  # not the chain's first steps'
    for step in ref.steps:
        _assert_same_frames(red.outputs(step.index), ref.outputs(step.index), step.label)


def test_last_on_disk_holds_a_stack_in_memory_instead_of_writing_it(tutorial4, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(storage, "LAST_IN_MEMORY", 0)   # 'last' on disk from the first step
    files = [str(p) for p in tutorial4.bias[:3]]        # the per-frame chain: batches of 2 + 1
    ref, _ = _bias_run(files, "all", tmp_path)
    red = Reduction(files, keep="last", spill_dir=tmp_path / "tmp", workdir=tmp_path / "last")
    stack_step = red.step("stackBiases")
    red.run_to(stack_step.index - 1)
    written = red._store.bytes_written
    assert red._store.on_disk and written > 0           # the chain's outputs went to disk
    assert not red.outputs(stack_step.index - 1)[0][0].data.flags.writeable   # mapped
    red.run_all()
    assert red._store.bytes_written == written          # the stack (and its copy) were not
    held = red.outputs(stack_step.index + 1)
    assert held[0][0].data.flags.writeable              # in memory, not mapped back
    assert not list((tmp_path / "tmp").rglob("*.bin"))  # the chain's files went with its step
    last = len(ref.steps) - 1
    _assert_same_frames(held, ref.outputs(last), "final")
    _assert_same_frames(red.outputs(stack_step.index), ref.outputs(stack_step.index), "stack")
    red.close()


def test_a_spill_directory_left_at_exit_is_deleted_by_a_detached_process(tmp_path):
    import subprocess
    import sys
    import time
    script = ("import sys, numpy as np\n"
              "from astropy.io import fits\n"
              "from gmoswidgets.frame import Extension, Frame\n"
              "from gmoswidgets.storage import StepStore\n"
              "store = StepStore('stream', spill_dir=sys.argv[1])\n"
              "frame = Frame(fits.Header(), [Extension(np.ones((4, 5), np.float32), fits.Header())])\n"
              "store.put(0, [frame])\n"
              "assert store.bytes_written > 0\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=120)
    deadline = time.monotonic() + 30
    while list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(tmp_path.iterdir())
