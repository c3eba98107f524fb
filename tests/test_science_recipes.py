"""Science recipes at 4x4: parameters and suffix, alignAndStack, fringe frames through caldb."""
import contextlib
import json
import os

import numpy as np
import pytest

from gmoswidgets.caldb import CalibrationService
from gmoswidgets.caldb import service as caldb_service
from gmoswidgets.frame import read_frame
from gmoswidgets.reduce import Reduce
from gmoswidgets.reduction import Reduction

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def default_service(caldb):
    """Make ``caldb`` the default service (as the seed's set_calservice()) while in the block."""
    saved = caldb_service._DEFAULT["service"]
    caldb_service._DEFAULT["service"] = caldb
    try:
        yield caldb
    finally:
        caldb_service._DEFAULT["service"] = saved


def make_calibrations(data, playground):
    """A new calibration database in ``playground`` holding the data set's master bias and flat."""
    caldb = CalibrationService(database_dir=playground)
    caldb.init()
    with default_service(caldb):
        for files in (data.bias, data.flat):
            red = Reduce(files=[str(f) for f in files], workdir=playground)
            red.runr()
            caldb.add_cal(playground / red.output_filenames[0])
    return caldb


@pytest.fixture(scope="module")
def calibrated4(tutorial4, masters4, tmp_path_factory):
    """A playground with the session's 4x4 master bias and flat in its calibration database."""
    playground = tmp_path_factory.mktemp("science4")
    caldb = CalibrationService(database_dir=playground)
    caldb.init()
    for path in masters4.values():
        caldb.add_cal(path)
    return playground, caldb, tutorial4


@pytest.fixture
def using(calibrated4):
    """Make the playground's database the default one, as the seed's set_calservice() does."""
    playground, caldb, data = calibrated4
    with default_service(caldb):
        yield playground, caldb, data


def test_stack_scale_parameter_and_suffix(using):
    """`-p stackFrames:scale=True` reaches the stack; --suffix renames the output.

    With the recipe's zero=True only the offsets are applied (DRAGONS), so the
    stack is unchanged; with zero=False the scaling changes it.
    """
    playground, caldb, data = using
    science = [str(f) for f in data.science]
    red = Reduction(science, workdir=playground, suffix="_newsuffix", calservice=caldb)
    stack_step = next(s.index for s in red.steps if s.primitive == "stackFrames")
    red.run_to(stack_step)
    plain = red.outputs(stack_step)[0][0].data.copy()
    assert red.steps[stack_step].values["zero"] is True          # fixed by the recipe
    red.rerun_from(stack_step, scale=True)
    step = red.steps[stack_step]
    assert step.values["scale"] is True and step.source("scale") == "user"
    assert np.array_equal(red.outputs(stack_step)[0][0].data, plain)     # zero wins
    red.rerun_from(stack_step, scale=True, zero=False)
    scaled = red.outputs(stack_step)[0][0].data
    good = np.isfinite(plain) & (plain != 0)
    assert not np.allclose(scaled[good], plain[good])
    # scaling to the reference changes the level only slightly: same exposure times
    assert abs(np.median(scaled[good]) / np.median(plain[good]) - 1) < 0.05
    outputs = red.run_all()
    assert [os.path.basename(o) for o in outputs] == ["N20170614S0201_newsuffix.fits"]
    stack = read_frame(playground / outputs[0])
    history = stack.tables["HISTORY"]
    row = [r for r in history if r["primitive"] == "stackFrames"][0]
    assert json.loads(str(row["args"]))["scale"] is True


def test_align_and_stack_two_half_stacks(using):
    """The seed's alignAndStack: stack two separately reduced halves of the dither."""
    playground, _, data = using
    science = [str(f) for f in data.science]
    halves = []
    for part in (science[:3], science[3:]):
        red = Reduce(files=part, workdir=playground)
        red.runr()
        halves.append(str(playground / red.output_filenames[0]))
    assert [os.path.basename(h) for h in halves] == ["N20170614S0201_stack.fits",
                                                     "N20170614S0204_stack.fits"]
    red = Reduce(files=halves, recipename="alignAndStack", suffix="_aligned", workdir=playground)
    red.runr()
    combined = read_frame(playground / red.output_filenames[0])
    first = read_frame(halves[0])
    assert [os.path.basename(o) for o in red.output_filenames] == ["N20170614S0201_aligned.fits"]
    assert "PROCESSED_SCIENCE" in combined.tags and combined[0].objcat is not None
    # more exposure behind the combined image: its sky variance is lower than a half's
    c_var = np.median(combined[0].variance[combined[0].mask == 0])
    h_var = np.median(first[0].variance[first[0].mask == 0])
    assert c_var < 0.8 * h_var
    # the same stars, at the same sky positions
    assert len(combined[0].objcat) >= 0.8 * len(first[0].objcat)


def test_fringe_frame_through_caldb(tmp_path):
    """makeProcessedFringe -> caldb add -> the science reduction finds and applies it."""
    from gmoswidgets.data import make_tutorial_dataset
    data = make_tutorial_dataset(tmp_path / "playdata", binning=4, seed=7, filter_name="z")
    playground = tmp_path / "playground"
    playground.mkdir()
    caldb = make_calibrations(data, playground)
    with default_service(caldb):
        science = [str(f) for f in data.science]
        red = Reduce(files=science, recipename="makeProcessedFringe", workdir=playground)
        red.runr()
        assert [os.path.basename(o) for o in red.output_filenames] == ["N20170614S0201_fringe.fits"]
        added = caldb.add_cal(playground / red.output_filenames[0])
        assert added.entry.caltype == "processed_fringe"
        assert (playground / "calibrations" / "processed_fringe" / "N20170614S0201_fringe.fits").exists()
        match = caldb.get_calibration(data.science[0], "processed_fringe")
        assert match.path is not None and match.path.name == "N20170614S0201_fringe.fits"
        red = Reduction(science, workdir=playground, calservice=caldb)
        step = next(s.index for s in red.steps if s.primitive == "fringeCorrect")
        red.run_to(step)
        corrected = red.outputs(step)[0]
        assert corrected.phu.get("FRINGEIM") == "N20170614S0201_fringe.fits"
        before = red.outputs(step - 1)[0]
        # the fringe pattern is gone from an illuminated amplifier
        truth = data.truth
        amp = 5
        pattern = truth.fringe_pattern(amp)
        lit = before[amp].mask == 0
        def amplitude(img):
            resid = img - np.median(img[lit])
            return abs(np.polyfit(pattern[lit], resid[lit], 1)[0])
        assert amplitude(corrected[amp].data) < 0.1 * amplitude(before[amp].data)
