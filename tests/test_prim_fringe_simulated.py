"""Fringe frame and fringe correction on a simulated z-band tutorial data set (4x4).

The biases, flats and the makeProcessedFringe recipe run through the
engine; the flat-corrected science frames (an intermediate step of that
reduction) are then fringe-corrected with the fringe frame it made, and
the residual fringe amplitude is measured against the simulator's true
fringe pattern.
"""
import logging

import numpy as np
import pytest

from gmoswidgets.data import make_tutorial_dataset
from gmoswidgets.frame import read_frame
from gmoswidgets.primitives import StepContext, get_primitive
from gmoswidgets.reduce import Reduce
from gmoswidgets.reduction import Reduction

pytestmark = pytest.mark.slow  # whole reductions


@pytest.fixture(scope="module")
def zband(tmp_path_factory):
    data = make_tutorial_dataset(tmp_path_factory.mktemp("zband4"), binning=4, seed=5,
                                 filter_name="z", fringe=True)
    work = tmp_path_factory.mktemp("zwork")
    bias = Reduce(files=[str(p) for p in data.bias], workdir=work).runr()[0]
    flat = Reduce(files=[str(p) for p in data.flat], workdir=work,
                  ucals={"processed_bias": bias}).runr()[0]
    reduction = Reduction([str(p) for p in data.science], recipe="makeProcessedFringe",
                          workdir=work, keep="all",
                          user_cals={"processed_bias": bias, "processed_flat": flat})
    fringe_path = reduction.run_all()[0]
    flat_corrected = reduction.outputs("flatCorrect")
    return data.truth, flat_corrected, read_frame(fringe_path)


def fringe_amplitude(frame, truth):
    """Least-squares amplitude (e-) of the true unit fringe pattern in a per-amp frame.

    Uses the unflagged pixels within 5 sigma of the extension's median
    (stars and cosmic rays left out), each extension about its own mean.
    """
    num = den = 0.0
    for index, ext in enumerate(frame.exts):
        pattern = truth.fringe_pattern(index)
        good = ext.mask == 0
        if good.sum() < 100:
            continue                                  # unilluminated amplifier
        level = np.median(ext.data[good])
        good &= np.abs(ext.data - level) < 5 * np.sqrt(ext.variance)
        s = ext.data[good] - ext.data[good].mean()
        f = pattern[good] - pattern[good].mean()
        num += float(np.dot(s, f))
        den += float(np.dot(f, f))
    return num / den


def test_fringe_frame_is_the_true_pattern(zband):
    truth, science, fringe = zband
    assert {"FRINGE", "PROCESSED"} <= fringe.tags
    assert fringe.shapes == science[0].shapes          # per amplifier, like the inputs
    mean_fringe = np.mean([truth.frame(f.phu["ORIGNAME"]).fringe_e for f in science])
    assert fringe_amplitude(fringe, truth) == pytest.approx(mean_fringe, rel=0.05)


def test_fringe_correction_removes_fringes(zband, caplog):
    truth, science, fringe = zband
    prim = get_primitive("fringeCorrect")
    ctx = StepContext(logging.getLogger("test.fringe"),
                      calibration_lookup=lambda frame, caltype: (fringe, None, "test"))
    with caplog.at_level(logging.INFO):
        corrected = prim(science, ctx)
    for before_frame, after_frame in zip(science, corrected):
        expected = truth.frame(before_frame.phu["ORIGNAME"]).fringe_e
        before = fringe_amplitude(before_frame, truth)
        after = fringe_amplitude(after_frame, truth)
        assert before == pytest.approx(expected, rel=0.05)
        assert abs(after) < 0.1 * abs(before)
