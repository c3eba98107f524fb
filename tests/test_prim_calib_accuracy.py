"""Accuracy of the bias and flat primitives against the simulator's ground truth (4x4).

Truth conventions (gmoswidgets.data.truth.CONVENTIONS): the bias structure is
added to the data pixels only, on top of a level that the overscan shares, so
an overscan-subtracted master bias must equal the structure itself, with no
offset; the true flat is the relative response, compared here up to one
global factor (normalizeFlat divides by a CCD2 level, not the truth's centre).
"""
import numpy as np
import pytest

from gmoswidgets import dq
from gmoswidgets.frame import read_frame
from gmoswidgets.sections import Section
from helpers import run_steps


def run(frames, steps, bias=None):
    """The steps, with ``bias`` as the processed_bias the calibration lookup returns (no BPM)."""
    def lookup(frame, caltype):
        return (bias if caltype == "processed_bias" else None), None, "test"
    return run_steps(frames, steps, lookup)

BIAS_RECIPE = [("prepare", {"require_wcs": False}), ("addDQ", {"add_illum_mask": False}),
               ("addVAR", {"read_noise": True}), ("overscanCorrect", {})]
FLAT_START = [("prepare", {"require_wcs": False}), ("addDQ", {}), ("addVAR", {"read_noise": True}),
              ("overscanCorrect", {}), ("biasCorrect", {}), ("ADUToElectrons", {}),
              ("addVAR", {"poisson_noise": True})]


@pytest.fixture(scope="module")
def master_bias(tutorial4):
    frames = [read_frame(p) for p in tutorial4.bias]
    return run(frames, BIAS_RECIPE + [("stackBiases", {}), ("storeProcessedBias", {})])[0]


@pytest.fixture(scope="module")
def master_flat(tutorial4, master_bias):
    frames = [read_frame(p) for p in tutorial4.flat]
    steps = FLAT_START + [("stackFlats", {}), ("normalizeFlat", {}), ("storeProcessedFlat", {})]
    return run(frames, steps, master_bias)[0]


def test_master_bias_reproduces_the_bias_structure(tutorial4, master_bias):
    truth = tutorial4.truth
    nbias = len(tutorial4.bias)
    assert {"PROCESSED", "BIAS"} <= master_bias.tags
    for index, ext in enumerate(master_bias):
        expected = truth.amps["read_noise"][index] / truth.amps["gain"][index] / np.sqrt(nbias)
        residual = ext.data - truth.bias_structure(index)
        assert abs(float(residual.mean())) < 0.1, index
        assert residual.std() <= 1.2 * expected, (index, residual.std() / expected)
        # the propagated VAR describes that residual
        assert float(ext.variance.mean()) == pytest.approx(residual.var(), rel=0.15), index


def test_master_flat_reproduces_the_true_response(tutorial4, master_flat):
    truth = tutorial4.truth
    assert {"PROCESSED", "FLAT"} <= master_flat.tags
    ratios, responses = [], []
    for index, ext in enumerate(master_flat):
        true_flat = truth.true_flat(index)
        use = (ext.mask == 0) & (true_flat > 0.5)
        ratios.append(ext.data[use])
        responses.append(true_flat[use])
    ratio = np.concatenate(ratios) / np.concatenate(responses)
    assert ratio.size > 100000
    relative = ratio / np.median(ratio) - 1
    assert np.sqrt(np.mean(relative ** 2)) < 0.005
    # CCD2 was normalized to ~1 (its histogram mode, not the truth's centre)
    assert float(np.median(master_flat[5].data)) == pytest.approx(1.0, abs=0.02)


def test_illumination_mask_matches_the_dark_pixels(tutorial4, master_flat):
    truth = tutorial4.truth
    dark = lit = flagged_dark = flagged_lit = 0
    for index, ext in enumerate(master_flat):
        true_flat = truth.true_flat(index)
        flagged = (ext.mask & dq.UNILLUMINATED) != 0
        dark += np.count_nonzero(true_flat < 0.05)
        flagged_dark += np.count_nonzero(flagged & (true_flat < 0.05))
        lit += np.count_nonzero(true_flat > 0.5)
        flagged_lit += np.count_nonzero(flagged & (true_flat > 0.5))
    assert flagged_dark / dark > 0.99
    assert flagged_lit / lit < 0.01


def test_variance_matches_the_pixel_scatter_of_one_frame(tutorial4, master_bias):
    truth = tutorial4.truth
    # a flat in electrons: signal = level x true response; CCD2's central amplifiers
    [flat] = run([read_frame(tutorial4.flat[0])], FLAT_START, master_bias)
    level = truth.frame(flat.filename[:-5]).sky_e
    for index in (5, 6):
        ext = flat[index]
        use = ext.mask == 0
        residual = ext.data[use] - level * truth.true_flat(index)[use]
        assert float(ext.variance[use].mean()) == pytest.approx(residual.var(), rel=0.10)
    # a bias in ADU, corrected with a master made without it
    others = run([read_frame(p) for p in tutorial4.bias[1:]], BIAS_RECIPE + [("stackBiases", {})])
    [bias] = run([read_frame(tutorial4.bias[0])], BIAS_RECIPE + [("biasCorrect", {})], others[0])
    for ext in bias:
        assert float(ext.variance.mean()) == pytest.approx(ext.data.var(), rel=0.10)


def test_saturated_pixels_are_flagged(tutorial4, master_bias):
    raw = read_frame(tutorial4.science[0])
    saturated = [ext.data >= 65535 for ext in raw]
    assert sum(int(s.sum()) for s in saturated) > 0
    [out] = run([raw], [("prepare", {}), ("addDQ", {}), ("addVAR", {"read_noise": True}),
                        ("overscanCorrect", {}), ("biasCorrect", {}), ("ADUToElectrons", {})],
                master_bias)
    for ext, sat, raw_ext in zip(out, saturated, raw):
        datasec = raw_ext.header["DATASEC"]
        flagged = (ext.mask & dq.SATURATED) != 0
        np.testing.assert_array_equal(flagged, sat[Section.from_string(datasec).slices])
