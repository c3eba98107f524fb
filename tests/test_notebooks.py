"""Every notebook in notebooks/ is executed (nbclient, the venv's python3 kernel) on 4x4 data.

Each notebook runs in its own data directory whose ``playdata`` is the
session's simulated 4x4 dataset, so the tutorials' outputs (lists, master
calibrations, stacks, databases) never mix and nothing is written into the
checkout or the user's home.
"""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from gmoswidgets.caldb import CONFIG_ENV
from gmoswidgets.data.tutorial import DATA_ENV
from gmoswidgets.data.tutorial import BINNING_ENV

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _text(nb) -> str:
    """Every text output of an executed notebook, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"])
            elif "data" in out:
                parts.append(str(out["data"].get("text/plain", "")))
    return "\n".join(parts)


def _widget_views(nb) -> int:
    return sum(WIDGET_VIEW in out.get("data", {}) for cell in nb.cells
               for out in cell.get("outputs", []))


@pytest.fixture
def run_notebook(tutorial4, tmp_path, monkeypatch):
    """Execute a notebook on the 4x4 dataset in a fresh data directory; return (nb, data_dir)."""
    data_dir = tmp_path / "gmosimg_tutorial"
    data_dir.mkdir()
    (data_dir / "playdata").symlink_to(tutorial4.directory, target_is_directory=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv(DATA_ENV, str(data_dir))
    monkeypatch.setenv(BINNING_ENV, "4")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-such-rsys.cfg"))  # never the real home
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))

    def run(path: Path):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()
        return nb, data_dir
    return run


def test_notebooks_are_stored_without_outputs():
    assert {p.name for p in ALL} >= {"01_tutorial_command_line.ipynb", "02_tutorial_api.ipynb",
                                     "dashboard.ipynb"}
    for path in ALL:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, \
                    f"{path.name}: stored outputs (clear them before committing)"


@pytest.mark.slow
def test_command_line_tutorial(run_notebook):
    nb, data_dir = run_notebook(NOTEBOOKS / "01_tutorial_command_line.ipynb")
    text = _text(nb)
    # shell cells do not stop the notebook on failure: look at what they printed
    assert "Traceback" not in text and "error:" not in text, text[-3000:]
    playground = data_dir / "playground"
    assert len((playground / "list_of_bias.txt").read_text().split()) == 10
    assert len((playground / "list_of_science.txt").read_text().split()) == 5
    assert "starfield" in text and "added processed_flat N20170702S0178_flat.fits" in text
    for name in ("N20170613S0180_bias.fits", "N20170702S0178_flat.fits", "N20170614S0201_stack.fits",
                 "calibrations/processed_bias/N20170613S0180_bias.fits", "cal_manager.db"):
        assert (playground / name).is_file(), name
    assert "BUNIT = electron" in text
    assert (data_dir / "playground" / "rsys.cfg").read_text().startswith("[calibs]")
    assert not (data_dir.parent / "home" / ".geminidr").exists()
    images = [out for cell in nb.cells for out in cell.get("outputs", [])
              if "image/png" in out.get("data", {})]
    assert len(images) == 2          # one raw frame and the stack


@pytest.mark.slow
def test_api_tutorial(run_notebook):
    nb, data_dir = run_notebook(NOTEBOOKS / "02_tutorial_api.ipynb")
    text = _text(nb)
    playground = data_dir / "playground_api"
    for name in ("N20170613S0180_bias.fits", "N20170702S0178_flat.fits", "N20170614S0201_stack.fits",
                 "gmos_data_reduction.log", "cal_manager.db"):
        assert (playground / name).is_file(), name
    assert "biases   10" in text and "flats     5" in text and "science   5" in text
    assert "BUNIT = electron" in text
    steps = re.findall(r"^\s*\d+\. (\S+)\s+(\w+)\s+[\d.]+ s$", text, re.M)
    assert steps[-1] == ("storeProcessedScience", "done")
    assert {status for _, status in steps} == {"done"}
    assert _widget_views(nb) == 1    # the ImageView of the stack


@pytest.mark.slow
def test_dashboard_notebook(run_notebook):
    nb, data_dir = run_notebook(NOTEBOOKS / "dashboard.ipynb")
    assert _widget_views(nb) == 1
    assert (data_dir / "playground" / "cal_manager.db").is_file()
    # the app's widget tree was sent to the (absent) front end
    names = {model["state"].get("_model_name") for model in
             nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
             .get("state", {}).values()}
    assert {"TabModel", "FigureModel"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in ALL if p.name not in
                                  ("01_tutorial_command_line.ipynb", "02_tutorial_api.ipynb",
                                   "dashboard.ipynb")], ids=lambda p: p.name)
def test_other_notebooks_execute(run_notebook, path):
    run_notebook(path)
