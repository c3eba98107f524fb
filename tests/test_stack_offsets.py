"""stackFrames' zero offsets against truth, and scale with zero (DRAGONS: offsets only).

Frames of one scene (a sky gradient and stars) with known additive offsets
and different footprints, as dithered frames after resampleToCommonFrame:
the offsets measured on the pixels two frames share recover the truth; the
difference of whole-frame medians (the former method) is biased by what
each footprint contains, and the failure message shows by how much.
"""
import logging

import numpy as np
import pytest

from gmoswidgets import dq
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.primitives.base import StepContext
from gmoswidgets.primitives.stack import stack_frames

SHAPE = (300, 400)
TRUE_OFFSETS = [0.0, 37.0, -12.5, 80.0]       # added to frame i
FOOTPRINTS = [(0, 400), (0, 220), (150, 400), (60, 330)]   # columns each frame covers


def make_frames(seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    scene = 100.0 + 0.4 * xx + 0.1 * yy                     # sky gradient across the field
    for x, y in rng.uniform(10, 390, (60, 2)):
        scene += 3000.0 * np.exp(-((xx - x) ** 2 + (yy - y % 290) ** 2) / 8.0)
    frames = []
    for i, (offset, (x0, x1)) in enumerate(zip(TRUE_OFFSETS, FOOTPRINTS)):
        data = (scene + offset + rng.normal(0, 5.0, SHAPE)).astype(np.float32)
        mask = np.full(SHAPE, dq.NO_DATA, dq.DTYPE)
        mask[:, x0:x1] = 0
        data[mask != 0] = 0.0
        frame = Frame(fits_header(), [Extension(data, fits_header(), np.full(SHAPE, 25.0,
                                                                            np.float32), mask)])
        frame.filename = f"f{i}.fits"
        frames.append(frame)
    return frames


def fits_header():
    from astropy.io import fits
    return fits.Header({"INSTRUME": "GMOS-N", "BUNIT": "electron"})


def median_method(frames):
    """The former estimate: difference of each frame's median of good pixels."""
    meds = [np.median(f.exts[0].data[f.exts[0].mask == 0]) for f in frames]
    return [meds[0] - m for m in meds]


def test_zero_offsets_from_the_overlap_recover_the_truth():
    frames = make_frames()
    ctx = StepContext(logger=logging.getLogger("test.stack"))
    out = stack_frames(frames, ctx, operation="mean", reject_method="none", zero=True)
    # each frame, once offset, agrees with the first where both have data
    truth = [-o for o in TRUE_OFFSETS]
    old = median_method(frames)
    stacked = out.exts[0].data
    # on columns every frame covers, the mean of the offset frames is the scene of frame 0
    both = slice(150, 220)
    expected = np.mean([f.exts[0].data[:, both] + t for f, t in zip(frames, truth)], axis=0)
    err = np.abs(stacked[:, both] - expected).max()
    old_err = max(abs(a - b) for a, b in zip(old, truth))
    assert err < 0.5, f"stack off by {err:.2f} e-; the median method is off by {old_err:.1f} e-"
    assert old_err > 10   # the test scene does bias the former method


def test_scale_and_zero_together_apply_only_the_offsets(caplog):
    frames = make_frames()
    ctx = StepContext(logger=logging.getLogger("test.stack"))
    both = stack_frames(frames, ctx, operation="mean", reject_method="none", zero=True,
                        scale=True)
    zero = stack_frames(frames, ctx, operation="mean", reject_method="none", zero=True)
    assert np.array_equal(both.exts[0].data, zero.exts[0].data)
    assert "not scaled" in caplog.text


def test_offsets_measured_on_threads_equal_the_sequential_ones():
    from gmoswidgets.executor import ThreadExecutor
    frames = make_frames()
    frames[2].exts[0].mask = None    # a frame without DQ: its NaN-free pixels all count
    options = dict(operation="mean", reject_method="none", zero=True)
    serial = stack_frames(frames, StepContext(logger=logging.getLogger("test.stack")), **options)
    with ThreadExecutor(max_workers=2) as executor:
        threads = stack_frames(frames, StepContext(executor=executor), **options)
    assert np.array_equal(serial.exts[0].data, threads.exts[0].data)
    assert np.array_equal(serial.exts[0].variance, threads.exts[0].variance)
