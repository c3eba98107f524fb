"""VAR of a frame mosaicked and then aligned: both interpolations' noise correlation accounted for.

Pure white noise of known variance stands in for the sky on simulated GMOS-N
EEV 4x4 frames (the headers, mosaic geometry and dither of the simulator):
mosaicDetectors places CCD1 and CCD3 with sub-pixel shifts and a rotation,
resampleToCommonFrame shifts the dithered frame by 34.39 pixels (10" at
0.2908"/px).  The truth is the empirical variance of the resulting pixels.
"""
import logging

import numpy as np
import pytest

from gmoswidgets.data import make_tutorial_dataset
from gmoswidgets.frame import Extension, read_frame
from gmoswidgets.primitives.base import StepContext
from gmoswidgets.primitives.mosaic import mosaicDetectors
from gmoswidgets.primitives.resample import resampleToCommonFrame
from gmoswidgets.sections import Section

pytestmark = pytest.mark.slow      # ~15 s: simulates five 4x4 frames

SIGMA = 10.0


def white_noise_frame(path, rng):
    """The raw file's headers, trimmed, with Gaussian noise (variance SIGMA**2) as data."""
    frame = read_frame(path)
    exts = []
    for ext in frame.exts:
        datasec = Section.from_string(ext.header["DATASEC"])
        shape = (datasec.y2 - datasec.y1, datasec.x2 - datasec.x1)
        header = ext.header.copy()
        header["DATASEC"] = Section(0, shape[1], 0, shape[0]).to_string()
        header["CRPIX1"] -= datasec.x1
        header["CRPIX2"] -= datasec.y1
        exts.append(Extension(rng.normal(0.0, SIGMA, shape).astype(np.float32), header,
                              np.full(shape, SIGMA ** 2, np.float32), np.zeros(shape, np.uint16)))
    frame.exts = exts
    return frame


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    dataset = make_tutorial_dataset(tmp_path_factory.mktemp("eev4"), detector="eev", binning=4,
                                    groups=("science",), seed=5)
    rng = np.random.default_rng(5)
    frames = [white_noise_frame(path, rng) for path in dataset.science[:2]]
    ctx = StepContext(logger=logging.getLogger("test"))
    return resampleToCommonFrame(mosaicDetectors(frames, ctx), ctx)


def test_variance_of_twice_resampled_noise(aligned):
    """VAR / empirical variance (seed 5): CCD1 0.995, CCD2 1.009, CCD3 1.006 (without the
    correlation factor of numerics.covariance: CCD1 0.735, CCD3 0.691)."""
    ext = aligned[1].exts[0]          # the dithered frame: CCD1/CCD3 interpolated twice, CCD2 once
    good = (ext.mask == 0) & (ext.variance > 0)
    ny, nx = ext.data.shape
    for name, cols in (("CCD1", slice(nx // 12, nx // 4)),
                       ("CCD2", slice(5 * nx // 12, 7 * nx // 12)),
                       ("CCD3", slice(3 * nx // 4, 11 * nx // 12))):
        box = good[ny // 8:-ny // 8, cols]
        data, var = ext.data[ny // 8:-ny // 8, cols][box], ext.variance[ny // 8:-ny // 8, cols][box]
        assert float(np.mean(var)) == pytest.approx(float(np.var(data)), rel=0.04), name
