"""Serve the Voilà dashboard (``notebooks/dashboard.ipynb``) on 127.0.0.1.

Used by ``make demo`` and by the browser tests.  Voilà runs as a
subprocess; kernels of closed pages are culled (Voilà cannot shut them down
itself, voila-dashboards/voila#1458), and stopping the server with SIGTERM
shuts every kernel down.  The notebook finds its data through the
environment variable :data:`DATA_ENV` (see :func:`gmoswidgets.data.tutorial.tutorial_dirs`).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..data.tutorial import DATA_ENV

__all__ = ["DashboardServer", "find_dashboard", "free_port"]



def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_dashboard() -> Path:
    """The dashboard notebook of this checkout (``notebooks/dashboard.ipynb``)."""
    path = Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb"
    if not path.exists():
        raise FileNotFoundError(f"dashboard notebook not found at {path}; run from a gmoswidgets checkout")
    return path


class DashboardServer:
    """A Voilà server for one notebook, started and stopped from Python.

    Parameters
    ----------
    notebook : path-like
        The notebook to serve.
    data_dir : path-like
        Passed to the notebook as the ``GMOSWIDGETS_DATA`` environment variable.
    port : int, optional
        Port on 127.0.0.1 (a free one by default).
    cull_idle : int
        Seconds after which an idle kernel with no connection is shut down.
    env : dict, optional
        More environment variables for Voilà and its kernels.
    """

    def __init__(self, notebook, data_dir, port: int | None = None, cull_idle: int = 60,
                 env: dict | None = None):
        self.notebook = Path(notebook).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.cull_idle = cull_idle
        self.env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.log_lines: list[str] = []
        self.url = f"http://127.0.0.1:{self.port}/"

    def command(self) -> list:
        """The voila command line."""
        return [sys.executable, "-m", "voila", "--no-browser", f"--port={self.port}",
                "--Voila.ip=127.0.0.1", "--show_tracebacks=True",
                f"--MappingKernelManager.cull_idle_timeout={self.cull_idle}",
                "--MappingKernelManager.cull_interval=10",
                # .js: Aladin Lite may be loaded from a voila/files/ URL (GMOSWIDGETS_ALADIN_LITE)
                r"--VoilaConfiguration.file_allowlist=['.*\.(png|jpg|gif|svg|js)']",
                str(self.notebook.name)]

    def start(self, timeout: float = 120.0) -> str:
        """Start Voilà and wait until it is listening; return the page URL."""
        env = {**os.environ, **self.env, DATA_ENV: str(self.data_dir)}
        # no terminal input: on Ctrl-C Voilà stops at once instead of asking for confirmation
        self.process = subprocess.Popen(self.command(), cwd=self.notebook.parent, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def pump():
            for line in self.process.stdout:
                self.log_lines.append(line.rstrip())
                if re.search(r"is running at", line):
                    ready.set()
        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.is_set():
            if self.process.poll() is not None:
                raise RuntimeError("voila exited:\n" + "\n".join(self.log_lines[-30:]))
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("voila did not start:\n" + "\n".join(self.log_lines[-30:]))
            ready.wait(0.2)
        return self.url

    def stop(self) -> None:
        """Stop Voilà (SIGTERM, which also shuts its kernels down)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
