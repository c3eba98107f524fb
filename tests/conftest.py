"""Shared pytest fixtures: simulated tutorial datasets (made once per session), the fake
engine environment, and a local HTTP server."""
import base64
import fcntl
import hashlib
import http.server
import os
import pickle
import socket
import threading

import pytest

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


def _once_per_run(tmp_path_factory, name, make):
    """``make(directory)`` once per test run, also when pytest-xdist runs the tests in several
    processes (``make test-fast``): the first worker makes it in the run's shared temporary
    directory, the others wait for it (a file lock) and load what it returned (pickled)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent          # shared by the run's workers
    made = root / f"{name}.pickle"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)                  # released when the file closes
        if not made.exists():
            (root / name).mkdir()
            made.write_bytes(pickle.dumps(make(root / name)))
        return pickle.loads(made.read_bytes())


@pytest.fixture(scope="session")
def tutorial4(tmp_path_factory):
    """The seed's tutorial dataset (biases, flats, science), 4x4 binning: fast."""
    from gmoswidgets.data import make_tutorial_dataset
    return _once_per_run(tmp_path_factory, "playdata4",
                         lambda directory: make_tutorial_dataset(directory, binning=4, seed=4))


@pytest.fixture(scope="session")
def tutorial2(tmp_path_factory):
    """The seed's tutorial dataset at 2x2 binning, as the real tutorial data."""
    from gmoswidgets.data import make_tutorial_dataset
    return _once_per_run(tmp_path_factory, "playdata2",
                         lambda directory: make_tutorial_dataset(directory, binning=2, seed=2))


@pytest.fixture(scope="session")
def masters4(tutorial4, tmp_path_factory):
    """The master bias and flat of :func:`tutorial4` (``reduce`` with the defaults), made once
    per session: ``{"processed_bias": path, "processed_flat": path}``.  Read-only for tests."""
    from gmoswidgets.reduce import Reduce

    def make(work):
        bias = Reduce(files=[str(p) for p in tutorial4.bias], workdir=work).runr()[0]
        flat = Reduce(files=[str(p) for p in tutorial4.flat], workdir=work,
                      ucals={"processed_bias": bias}).runr()[0]
        return {"processed_bias": bias, "processed_flat": flat}
    return _once_per_run(tmp_path_factory, "masters4", make)


# -- the engine on fakes --------------------------------------------------------------------
@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    """3 fake biases, 1 fake flat and the fake primitives (tests/fakes.py); cwd = a work dir.

    Engines are built with the fakes given explicitly: ``fake_env.reduction(...)``.
    """
    from fakes import FakeEnv, preserved_logger
    env = FakeEnv(tmp_path)
    monkeypatch.chdir(env.workdir)
    with preserved_logger():
        yield env


@pytest.fixture
def fake_defaults(fake_env, monkeypatch):
    """``fake_env`` with the fakes as the package's defaults, for the front ends.

    The command-line tools and ``Reduce`` take no tables: they use the
    package's primitive table and recipe book, replaced here by the fakes
    (plus the real recipes).
    """
    import gmoswidgets.primitives as primitives
    import gmoswidgets.recipes as recipes
    monkeypatch.setattr(primitives, "default_table", lambda: fake_env.primitives)
    monkeypatch.setattr(recipes, "RECIPES", fake_env.recipes)
    return fake_env


# -- a local HTTP server ----------------------------------------------------------------------
class LocalHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files``; ``md5_header`` paths with Content-MD5; ``cut_after`` drops mid-way."""

    files = {}          # path -> bytes
    md5_header = set()  # paths served with Content-MD5
    cut_after = {}      # path -> bytes sent before dropping the connection (first time only)

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        if self.path in self.md5_header:
            self.send_header("Content-MD5", base64.b64encode(hashlib.md5(body).digest()).decode())
        self.end_headers()
        cut = self.cut_after.pop(self.path, None)
        if cut is not None:
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1: ``(base_url, handler class)``; fill ``handler.files``."""
    LocalHandler.files, LocalHandler.md5_header, LocalHandler.cut_after = {}, set(), {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LocalHandler)
    # shutdown() waits for the loop's next poll: 0.05 s, not the default 0.5 s per test
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", LocalHandler
    httpd.shutdown()
    httpd.server_close()


# The fake Gemini Observatory Archive (tests/fake_archive.py): fixtures archive_store (session)
# and fake_archive, defined here once so the store is built once per session.
from fake_archive import archive_store, fake_archive  # noqa: E402,F401


@pytest.fixture(scope="module", autouse=True)
def restore_logging():
    """Put the ``gmoswidgets`` logger back as it was (level, handlers) after each module.

    Test modules that run ``Reduce`` or a command (also in their module
    fixtures) configure logging as a user's session would; no module sees
    what an earlier one left."""
    import logging
    logger = logging.getLogger("gmoswidgets")
    saved = logger.level, list(logger.handlers), logger.propagate
    yield
    for handler in [h for h in logger.handlers if h not in saved[1]]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(saved[0])
    logger.propagate = saved[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fake home with the seed's ~/.geminidr/rsys.cfg; the real home is never touched."""
    from gmoswidgets.caldb.config import CONFIG_ENV
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "home" / ".geminidr" / "rsys.cfg"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[calibs]\nstandalone = True\ndatabase_dir = ~/playground\n")
    return tmp_path
