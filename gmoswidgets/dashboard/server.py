"""Serve the Voilà dashboard (``notebooks/dashboard.ipynb``) on 127.0.0.1.

Used by ``make demo`` and by the browser tests.  Voilà runs as a
subprocess in its own process group; kernels of closed pages are culled
(Voilà cannot shut them down itself, voila-dashboards/voila#1458), and
stopping the server with SIGTERM shuts every kernel down.

What the server accepts (see README, "Security"): only requests whose
``Host`` is a loopback name or address (no DNS rebinding), only with the
random token of the printed URL (the page sets a cookie from it), only
kernel websockets speaking the v1 protocol, and at most ``max_kernels``
kernels at once (see :mod:`gmoswidgets.dashboard.voila_guard`).  The notebook finds its data through the
environment variable :data:`DATA_ENV` (see :func:`gmoswidgets.data.tutorial.tutorial_dirs`).
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..data.tutorial import DATA_ENV

__all__ = ["DashboardServer", "find_dashboard", "free_port", "stop_group"]


def stop_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group ``pgid``, then SIGKILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


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

    The URL to open (with its token) is :attr:`url`.

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
    first_connection : int
        Seconds a new kernel waits for its page to connect before ``cull_idle`` applies
        (the page's scripts load after the notebook ran).
    max_kernels : int
        Most kernels (open pages) at once; one more page gets HTTP 503.
    token : str, optional
        The access token (default: a new random one); ``""`` serves without
        one (the Host check still applies).
    env : dict, optional
        More environment variables for Voilà and its kernels.
    """

    def __init__(self, notebook, data_dir, port: int | None = None, cull_idle: int = 60,
                 max_kernels: int = 4, token: str | None = None, env: dict | None = None,
                 first_connection: int = 300):
        self.notebook = Path(notebook).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.cull_idle = cull_idle
        self.first_connection = int(first_connection)
        self.max_kernels = int(max_kernels)
        self.token = secrets.token_urlsafe(24) if token is None else token
        self.env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.log_lines: list[str] = []
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.url = self.base_url + (f"?token={self.token}" if self.token else "")

    name = "Voilà"

    def command(self) -> list:
        """The voila command line."""
        guard = "gmoswidgets.dashboard.voila_guard"
        host_check = {"allow_remote_access": False,
                      "local_hostnames": ["localhost", "localhost.localdomain"]}
        return [sys.executable, "-m", "voila", "--no-browser", f"--port={self.port}",
                "--Voila.ip=127.0.0.1", "--show_tracebacks=False",
                f"--Voila.token={self.token}",
                # Voilà sets allow_remote_access=True; its tornado_settings are applied after
                f"--Voila.tornado_settings={host_check!r}",
                f"--Voila.kernel_websocket_connection_class={guard}.V1OnlyConnection",
                f"--VoilaConfiguration.multi_kernel_manager_class={guard}.BoundedKernelManager",
                f"--BoundedKernelManager.max_kernels={self.max_kernels}",
                f"--BoundedKernelManager.first_connection_timeout={self.first_connection}",
                f"--MappingKernelManager.cull_idle_timeout={self.cull_idle}",
                f"--MappingKernelManager.cull_interval={max(1, min(10, self.cull_idle // 2))}",
                # .js: Aladin Lite may be loaded from a voila/files/ URL (GMOSWIDGETS_ALADIN_LITE)
                r"--VoilaConfiguration.file_allowlist=['.*\.(png|jpg|gif|svg|js)']",
                str(self.notebook.name)]

    def start(self, timeout: float = 120.0) -> str:
        """Start Voilà and wait until it is listening; return the page URL."""
        env = {**os.environ, **self.env, DATA_ENV: str(self.data_dir)}
        # no terminal input: on Ctrl-C Voilà stops at once instead of asking for confirmation
        # its own process group: stop() reaches Voilà and its kernels whatever signals the
        # caller ignores (a shell's background job ignores SIGINT)
        self.process = subprocess.Popen(self.command(), cwd=self.notebook.parent, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
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
        while not _listening(self.port):     # JupyterLab logs its URL before it listens
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} is not listening:\n" + "\n".join(self.log_lines[-30:]))
            time.sleep(0.2)
        return self.url

    def stop(self) -> None:
        """Stop Voilà: SIGTERM (which shuts its kernels down), then SIGKILL to its process group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        stop_group(self.process.pid)
        self.process.wait()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
