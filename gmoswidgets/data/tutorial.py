"""Where the tutorial's data live: the simulated dataset, created on first use.

The notebooks find their data with :func:`tutorial_dirs`: the directory named
by ``$GMOSWIDGETS_DATA`` (default ``../demo_data``, i.e. the checkout's
``demo_data`` seen from ``notebooks/``), with the dataset written at
``$GMOSWIDGETS_BINNING`` (default 2, the tutorial's) when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

from .simulate import make_tutorial_dataset

__all__ = ["DATA_ENV", "BINNING_ENV", "DEFAULT_DATA", "ensure_dataset", "tutorial_dirs"]

#: Environment variable telling the notebooks (and the dashboard) where the data are.
DATA_ENV = "GMOSWIDGETS_DATA"
#: Environment variable: binning of the dataset the notebooks create when it is absent.
BINNING_ENV = "GMOSWIDGETS_BINNING"
#: Data directory of the notebooks when ``$GMOSWIDGETS_DATA`` is not set (relative to notebooks/).
DEFAULT_DATA = "../demo_data"


def ensure_dataset(data_dir: Path, binning: int = 2) -> Path:
    """Create the simulated tutorial dataset under ``data_dir/playdata`` unless it exists.

    Parameters
    ----------
    data_dir : pathlib.Path
        The tutorial's top directory (``gmosimg_tutorial``).
    binning : int
        Binning of the frames written when the dataset is absent.

    Returns
    -------
    pathlib.Path
        ``data_dir/playdata``.
    """
    playdata = Path(data_dir) / "playdata"
    if not list(playdata.glob("N2017*.fits")):
        print(f"Creating the simulated tutorial dataset in {playdata} (binning {binning}x{binning}) ...",
              flush=True)
        make_tutorial_dataset(playdata, binning=binning)
    return playdata


def tutorial_dirs(playground: str = "playground") -> tuple:
    """The data and work directories of a notebook, created if needed.

    Parameters
    ----------
    playground : str
        Name of the work directory next to ``playdata``.

    Returns
    -------
    tuple of pathlib.Path
        ``(playdata, playground)``, absolute.
    """
    data_dir = Path(os.environ.get(DATA_ENV) or DEFAULT_DATA).expanduser().resolve()
    playdata = ensure_dataset(data_dir, int(os.environ.get(BINNING_ENV) or 2))
    work = data_dir / playground
    work.mkdir(parents=True, exist_ok=True)
    return playdata, work
