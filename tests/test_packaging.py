"""``pip install .`` into a clean virtualenv gives working widgets (issue 11, packaging)."""
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_widget_libraries_are_dependencies_of_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert {"ipywidgets", "bqplot", "bqplot-image-gl", "ipyaladin", "pillow", "voila"} <= names
    assert project["license"] == "BSD-3-Clause"          # SPDX: no setuptools licence warnings
    assert "jupyterlab" in " ".join(project["optional-dependencies"]["lab"])


@pytest.mark.slow
def test_pip_install_into_a_clean_venv_gives_reduction_app(tmp_path):
    """A real clean venv (no system site-packages), pip's cache and the machine's wheel mirror."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    # --no-compile: no .pyc for every installed package (the import below compiles what it uses)
    build = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--quiet",
                            "--disable-pip-version-check", "--no-compile", str(ROOT)],
                           capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    assert "SetuptoolsDeprecationWarning" not in build.stderr and "license" not in build.stderr.lower()
    code = ("from gmoswidgets import ReductionApp; import gmoswidgets, ipywidgets, bqplot, "
            "ipyaladin, voila; app = ReductionApp(); print(type(app).__name__, gmoswidgets.__file__)")
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ReductionApp ") and str(venv) in run.stdout


def test_notebook_outputs_are_ignored_by_git():
    import shutil
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["notebooks/gmos_tour/playdata/N20170614S0201.fits", "notebooks/.ipynb_checkpoints/x.ipynb",
             ".ipynb_checkpoints/y.ipynb", "demo_data/playground/list_of_bias.txt", "build/lib/x.py"]
    result = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == paths
    kept = subprocess.run(["git", "check-ignore", "notebooks/dashboard.ipynb"], cwd=ROOT,
                          capture_output=True, text=True)
    assert kept.returncode == 1                                  # the notebooks themselves are kept
