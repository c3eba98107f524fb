"""A primitive's all-frames measurement declared apart (``@primitive(..., measure=...)``).

Under ``'last'`` and ``'stream'`` the engine measures once over all the
step's inputs (as held), then applies the primitive a few frames at a time,
chained with the per-frame steps after it: only the chain's last outputs are
held.  Under ``'all'`` the primitive measures and applies at once.  Both give
the same frames; events, times, re-runs and skipping behave as for any step.
"""
import numpy as np
import pytest

from gmoswidgets.primitives.base import Param, Primitive, PrimitiveTable, StepContext
from gmoswidgets.recipes import Recipe, RecipeStep
from gmoswidgets.reduction import DONE, SKIPPED, Reduction
from gmoswidgets.steps import PER_FRAME, frame_by_frame, stream_chain


def _shifted(frame, value):
    new = frame.copy()
    for ext in new:
        ext.data = ext.data + np.float32(value)
    return new


def _add_one(frames, ctx):
    return [_shifted(frame, 1) for frame in frames]


class _Scale:
    """A primitive scaling each frame to the mean level of all (the measurement), counting
    what it measured and the frames each application got."""

    def __init__(self):
        self.measured, self.applied = [], []

    def measure(self, frames, ctx, *, offset):
        self.measured.append(len(frames))
        levels = [float(np.mean([ext.data.mean() for ext in frame])) for frame in frames]
        return [np.mean(levels) / level + offset for level in levels]

    def apply(self, frames, ctx, *, measured, offset):
        self.applied.append(len(frames))
        out = []
        for frame, factor in zip(frames, measured):
            new = frame.copy()
            for ext in new:
                ext.data = ext.data * np.float32(factor)
            out.append(new)
        return out


@pytest.fixture
def env(fake_env):
    """prepare (a per-frame fake) -> scaleToMean (measured) -> mosaicDetectors (a per-frame
    fake) -> passThrough (the whole list), on the 3 fake biases."""
    scale = _Scale()
    table = PrimitiveTable([
        Primitive("prepare", _add_one, {}, "_prepared"),
        Primitive("scaleToMean", scale.apply,
                  {"offset": Param("offset", float, 0.0, "Added to each factor.")}, "_scaled",
                  measure=scale.measure),
        Primitive("mosaicDetectors", _add_one, {}, "_mosaic"),
        Primitive("passThrough", lambda frames, ctx: list(frames), {}, "_passed"),
    ])
    assert {"prepare", "mosaicDetectors"} <= PER_FRAME and "scaleToMean" not in PER_FRAME
    recipe = Recipe("measured", tuple(RecipeStep(name) for name in table),
                    frozenset({"GMOS", "BIAS"}), frozenset({"PROCESSED"}))

    def reduction(keep, **options):
        return Reduction(fake_env.biases, recipe, primitives=table, keep=keep, **options)
    return reduction, scale


def _planes(red, index):
    return [[ext.data.copy() for ext in frame] for frame in red.outputs(index)]


def test_measured_once_over_all_frames_then_applied_in_a_chain(env, tmp_path):
    reduction, scale = env
    ref = reduction("all")
    ref.run_all()
    assert scale.measured == [3] and scale.applied == [3]      # at once
    want = [_planes(ref, index) for index in range(4)]

    scale.measured.clear(), scale.applied.clear()
    red = reduction("stream", spill_dir=tmp_path)
    assert frame_by_frame(red.steps[1]) and stream_chain(red.steps, 1, 3) == [1, 2]
    events = []
    red.subscribe(events.append)
    red.run_all()
    assert scale.measured == [3]                                # once, over all the inputs
    assert scale.applied == [2, 1]                              # then batch by batch
    order = [(e.kind, e.step_index) for e in events if e.kind in ("step_started", "step_finished")]
    assert order == [("step_started", 0), ("step_finished", 0),
                     ("step_started", 1), ("step_started", 2),  # chained with mosaicDetectors
                     ("step_finished", 1), ("step_finished", 2),
                     ("step_started", 3), ("step_finished", 3)]
    assert all(s.status == DONE and s.elapsed > 0 for s in red.steps)
    progress = [e.fraction for e in events if e.kind == "progress" and e.step_index == 1]
    assert progress == sorted(progress)
    assert [red.has_outputs(s.index) for s in red.steps] == [False, False, False, True]
    for index in range(4):          # the freed steps recomputed on demand: the same frames
        for got, expected in zip(_planes(red, index), want[index]):
            for a, b in zip(got, expected):
                assert a.tobytes() == b.tobytes(), red.steps[index].label
    red.close()


def test_rerun_and_skip_of_a_measured_step(env):
    reduction, scale = env
    red = reduction("last")
    red.run_all()
    first = _planes(red, 3)
    scale.measured.clear(), scale.applied.clear()
    red.rerun_from("scaleToMean", offset=1.0)
    assert scale.measured == [3] and scale.applied == [2, 1]
    assert red.finished and red.step("scaleToMean").values["offset"] == 1.0
    assert all(not np.array_equal(a[0], b[0]) for a, b in zip(_planes(red, 3), first))

    scale.measured.clear(), scale.applied.clear()
    red.rerun_from("scaleToMean", skip_primitive=True)
    assert scale.measured == [] and scale.applied == []         # neither measured nor applied
    assert red.step("scaleToMean").status == SKIPPED


def test_calling_a_measured_primitive_measures_its_frames(env):
    reduction, scale = env
    red = reduction("all")
    red.run_to(0)
    frames = red.outputs(0)
    prim = red.primitives.get("scaleToMean")
    out = prim(frames, StepContext(), offset=0.5)
    assert scale.measured == [3] and scale.applied == [3] and len(out) == 3
    out = prim.run(frames[1:], StepContext(), prim.arguments({}), measured=[2.0, 3.0])
    assert scale.measured == [3]                                # given: not measured again
    np.testing.assert_array_equal(out[1][0].data, frames[2][0].data * np.float32(3.0))
