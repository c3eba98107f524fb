"""The Binder (repo2docker) configuration in binder/: its files, and postBuild run locally.

repo2docker itself cannot run here (no Docker engine, no mybinder.org), so
the files are checked against repo2docker's conventions and postBuild's
commands are run in a throw-away copy of the repository with a throw-away
Python environment (which sees this venv's packages, as Binder's image would
have them from requirements.txt).
"""
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _pins() -> dict:
    pins = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            spec = list(req.specifier)
            assert len(spec) == 1 and spec[0].operator == "==", f"not pinned: {line}"
            pins[req.name.lower().replace("_", "-")] = spec[0].version
    return pins


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_only_requirements_style_configuration():
    # a Dockerfile or an environment.yml would make repo2docker ignore requirements.txt
    names = {p.name for p in BINDER.iterdir()}
    assert {"requirements.txt", "postBuild", "start", "runtime.txt"} <= names
    assert not names & {"Dockerfile", "environment.yml", "environment.yaml"}
    assert not (ROOT / ".binder").exists()


def test_requirements_pin_every_runtime_dependency():
    pins = _pins()
    project = _project()
    for line in project["dependencies"]:
        req = Requirement(line)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req.name} (pyproject.toml) is not pinned in binder/requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"binder pins {name}=={pins[name]}, outside pyproject's {req.specifier}"
    assert "voila" in pins                       # provides the /voila/render/ server extension


def test_runtime_python_satisfies_the_project():
    text = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)", text)
    assert match, f"runtime.txt should read python-X.Y, not {text!r}"
    assert SpecifierSet(_project()["requires-python"]).contains(f"{match[1]}.{match[2]}")


def test_scripts_are_executable_bash():
    for name in ("postBuild", "start"):
        path = BINDER / name
        assert os.access(path, os.X_OK), f"binder/{name} must be executable"
        assert path.read_text().startswith("#!/bin/bash\n")
        subprocess.run(["bash", "-n", str(path)], check=True)        # syntax
    assert "set -euo pipefail" in (BINDER / "postBuild").read_text()
    last = (BINDER / "start").read_text().strip().splitlines()[-1]
    assert last == 'exec "$@"'


def test_start_points_the_notebooks_at_the_dataset(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GMOSWIDGETS_DATA"}
    env["REPO_DIR"] = str(tmp_path)
    out = subprocess.run(["bash", str(BINDER / "start"), "printenv", "GMOSWIDGETS_DATA"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{tmp_path}/demo_data"


@pytest.fixture
def scratch_python(tmp_path):
    """A fresh venv (no pip of its own) that also sees this venv's site-packages."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = next(venv.glob("lib/python3*/site-packages"))
    (purelib / "_outer_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


@pytest.mark.slow
def test_post_build_runs(tmp_path, scratch_python):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("gmoswidgets", "notebooks", "binder"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PATH=f"{scratch_python / 'bin'}{os.pathsep}{os.environ['PATH']}",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    run = subprocess.run([str(repo / "binder" / "postBuild")], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # the package was installed into the scratch environment, not used from this checkout
    where = subprocess.run([str(scratch_python / "bin" / "python"), "-c",
                            "import gmoswidgets.widgets, gmoswidgets; print(gmoswidgets.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(scratch_python))
    vendored = list(scratch_python.glob("lib/python3*/site-packages/gmoswidgets/widgets/vendor/*.js"))
    assert vendored, "the vendored Aladin Lite is missing from the installed package"
    playdata = repo / "demo_data" / "playdata"
    assert len(list(playdata.glob("N2017*.fits"))) == 20
    lists = repo / "demo_data" / "playground"
    assert len((lists / "list_of_bias.txt").read_text().split()) == 10
    assert len((lists / "list_of_science.txt").read_text().split()) == 5
