"""The engine's memory policies on the simulated tutorial: spilled and streamed results are
the in-memory ones, byte for byte; spill files are read lazily, shared when a step passes a
plane on unchanged, and deleted with the steps that used them."""
import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets.frame import Extension, Frame
from gmoswidgets.reduction import Reduction
from gmoswidgets.storage import STREAM_BATCH, StepStore
from gmoswidgets.steps import PER_FRAME

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


def _bias_run(files, keep, tmp_path):
    red = Reduction(files, keep=keep, spill_dir=tmp_path / "tmp", workdir=tmp_path / keep)
    events = []
    red.subscribe(events.append)
    red.run_all()
    return red, events


@pytest.mark.parametrize("keep", ["spill", "stream"])
def test_spilled_and_streamed_steps_equal_the_in_memory_ones(tutorial4, keep, tmp_path):
    files = [str(p) for p in tutorial4.bias]
    ref, _ = _bias_run(files, "all", tmp_path)
    red, events = _bias_run(files, keep, tmp_path)
    for step in ref.steps:
        _assert_same_frames(red.outputs(step.index), ref.outputs(step.index), step.label)
    out = (tmp_path / keep / ref.output_filenames[0]).read_bytes()
    assert len(out) == len((tmp_path / "all" / ref.output_filenames[0]).read_bytes())
    calls = [e for e in events if e.kind == "step_started"]
    assert len(calls) == len(ref.steps)                 # one start per step, streamed or not
    if keep == "stream":
        per_frame = [s for s in red.steps if s.primitive in PER_FRAME]
        assert per_frame and len(files) > STREAM_BATCH
        progress = [e for e in events if e.kind == "progress" and e.step_index == per_frame[-1].index]
        assert progress and progress[-1].fraction == pytest.approx(1.0)
        assert all(b.fraction >= a.fraction for a, b in zip(progress, progress[1:]))


def test_spilled_planes_are_mapped_read_only_and_shared_when_unchanged(tutorial4, tmp_path):
    files = [str(p) for p in tutorial4.bias[:3]]
    red, _ = _bias_run(files, "spill", tmp_path)
    frames = red.outputs(0)
    assert frames[0] is not red.outputs(0)[0]           # mapped anew, not held in memory
    plane = frames[0][0].data
    assert not plane.flags.writeable
    with pytest.raises(ValueError):
        plane[0, 0] = 1
    written = red._store.bytes_written
    produced = sum(f.nbytes for s in red.steps for f in red.outputs(s.index))
    assert 0 < written < produced                       # some planes were passed on unchanged
    spill = list((tmp_path / "tmp").rglob("*.bin"))
    red.close()
    assert spill and not any(p.exists() for p in spill)
    assert not list((tmp_path / "tmp").iterdir())


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
    assert files == ["step00_000.bin", "step01_000.bin"]
    step1 = next(tmp_path.rglob("step01_000.bin"))
    assert step1.stat().st_size == 4 * 5 * 2           # only the new DQ plane
    store.discard(0)                                    # step 1 still maps step 0's SCI and VAR
    again = store.load(1)[0]
    np.testing.assert_array_equal(again[0].data, 1.0)
    np.testing.assert_array_equal(again[0].mask, 1)
    store.discard(1)
    assert not list(tmp_path.rglob("*.bin"))
    store.close()
