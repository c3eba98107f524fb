"""Simulated GMOS imaging data with ground truth.

The embedded default data set of the project and the test bed: the raw
files of the DRAGONS GMOS imaging tutorial (biases, twilight flats, dithered
science frames), written as the Gemini archive delivers them, with the
truth that made them in ``DIR/truth/``.  GMOS-N Hamamatsu (the tutorial's)
by default; GMOS-N/GMOS-S with Hamamatsu, e2vDD or EEV CCDs on request
(``instrument=``, ``detector=``), each with DRAGONS' tables and masks for
that configuration.  This package imports nothing from the pipeline.

>>> from gmoswidgets.data import make_tutorial_dataset, load_truth
>>> ds = make_tutorial_dataset("playdata", binning=4, seed=1)   # doctest: +SKIP
>>> ds.truth.stars[:3]                                           # doctest: +SKIP
>>> make_tutorial_dataset("south", instrument="GMOS-S", detector="eev", binning=4)  # doctest: +SKIP
"""
from .simulate import TutorialDataset, make_tutorial_dataset
from .truth import FrameTruth, Truth, load_truth

__all__ = ["make_tutorial_dataset", "load_truth", "TutorialDataset", "Truth", "FrameTruth"]
