"""``reduce --scheduler`` on a real Dask cluster: a scheduler and two workers on 127.0.0.1.

The cluster runs as separate ``dask scheduler`` / ``dask worker`` processes
in their own process group (stopped whatever happens); ``reduce`` runs as a
command.  The workers' transition logs show which per-frame tasks each one
computed; the stack must equal the one made locally.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import cloudpickle
import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets.reduce import Reduce


DASK = shutil.which("dask", path=os.path.dirname(sys.executable))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """``tcp://127.0.0.1:PORT`` of a scheduler with two single-threaded workers."""
    if DASK is None:
        pytest.skip("the dask command is not installed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    commands = {"scheduler": [DASK, "scheduler", "--host", "127.0.0.1",
                              "--port", address.rsplit(":", 1)[1], "--no-dashboard"]}
    for name in ("w1", "w2"):
        commands[name] = [DASK, "worker", address, "--name", name, "--nthreads", "1",
                          "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
                          "--local-directory", str(tmp_path / name)]
    procs = []
    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "w") as log:
                procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
            if name == "scheduler":
                time.sleep(1.0)
        from distributed import Client
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _frame_tasks(dask_worker):
    """Keys of the gmoswidgets tasks this worker computed (from its transition log)."""
    return sorted({str(entry[0]) for entry in dask_worker.state.log
                   if str(entry[0]).startswith("gmoswidgets-")
                   and entry[1:3] == ("executing", "memory")})


def _reduce(workdir, files, *extra):
    workdir.mkdir()
    (workdir / "sci.lis").write_text("\n".join(str(f) for f in files))
    env = {k: v for k, v in os.environ.items() if k != "GMOSWIDGETS_SCHEDULER"}
    done = subprocess.run([sys.executable, "-m", "gmoswidgets.cli.reduce", "@sci.lis",
                           "--no-progress", *extra], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr + done.stdout
    return workdir / "N20170614S0201_stack.fits"


@pytest.mark.slow
def test_reduce_on_a_dask_cluster(cluster, tutorial4, tmp_path):
    from distributed import Client
    cals = tmp_path / "cals"
    bias = Reduce(files=[str(p) for p in tutorial4.bias], workdir=cals).runr()[0]
    flat = Reduce(files=[str(p) for p in tutorial4.flat], workdir=cals,
                  ucals={"processed_bias": bias}).runr()[0]
    user_cals = ["--user_cal", f"processed_bias:{bias}", f"processed_flat:{flat}"]
    local = _reduce(tmp_path / "local", tutorial4.science, *user_cals)
    remote = _reduce(tmp_path / "remote", tutorial4.science, *user_cals, "--scheduler", cluster)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    with Client(cluster) as client:
        tasks = client.run(_frame_tasks)
    assert len(tasks) == 2 and all(tasks.values()), tasks  # both workers did per-frame work
    names = {key.split("-")[1] for keys in tasks.values() for key in keys}
    assert {"mosaic_frame", "detect_frame", "resample_frame"} <= names, names
    with fits.open(local) as a, fits.open(remote) as b:
        for ha, hb in zip(a, b):
            if ha.header.get("EXTNAME") in ("SCI", "VAR", "DQ"):
                np.testing.assert_array_equal(ha.data, hb.data)
