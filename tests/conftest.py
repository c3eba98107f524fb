"""Shared pytest fixtures: simulated tutorial datasets, made once per session."""
import os

import pytest

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture(scope="session")
def tutorial4(tmp_path_factory):
    """The seed's tutorial dataset (biases, flats, science), 4x4 binning: fast."""
    from gmoswidgets.data import make_tutorial_dataset
    return make_tutorial_dataset(tmp_path_factory.mktemp("playdata4"), binning=4, seed=4)


@pytest.fixture(scope="session")
def tutorial2(tmp_path_factory):
    """The seed's tutorial dataset at 2x2 binning, as the real tutorial data."""
    from gmoswidgets.data import make_tutorial_dataset
    return make_tutorial_dataset(tmp_path_factory.mktemp("playdata2"), binning=2, seed=2)


# The fake Gemini Observatory Archive (tests/fake_archive.py): fixtures archive_store (session)
# and fake_archive, defined here once so the store is built once per session.
from fake_archive import archive_store, fake_archive  # noqa: E402,F401
