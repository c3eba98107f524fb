"""``make demo``: python -m gmoswidgets.dashboard serves the dashboard with Voilà, until Ctrl-C."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from gmoswidgets.dashboard.server import DashboardServer, find_dashboard, free_port
from gmoswidgets.dashboard.demo import main as demo_main


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_no_serve_prints_the_file_lists(tutorial4, tmp_path, capsys):
    (tmp_path / "playdata").symlink_to(tutorial4.directory, target_is_directory=True)
    assert demo_main(["--data", str(tmp_path), "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert "$ typewalk -d ../playdata/" in out and "list_of_bias.txt: 10 files" in out
    assert "list_of_flats.txt: 5 files" in out and "list_of_science.txt: 5 files" in out
    assert out.count("starfield") == 5


def test_voila_command_line():
    cmd = DashboardServer(find_dashboard(), "demo_data", port=1234).command()
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=1234" in cmd and "--no-browser" in cmd
    assert any(c.startswith("--MappingKernelManager.cull_idle_timeout=") for c in cmd)
    assert cmd[-1] == "dashboard.ipynb"


@pytest.mark.slow
def test_make_demo_serves_the_dashboard(tutorial4, tmp_path):
    (tmp_path / "playdata").symlink_to(tutorial4.directory, target_is_directory=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gmoswidgets.dashboard", "--data", str(tmp_path),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, url = [], []
    found = threading.Event()

    def pump():
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"served at (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url.append(match[1])
                found.set()
    threading.Thread(target=pump, daemon=True).start()
    try:
        assert found.wait(120), "no URL printed:\n" + "".join(lines)
        assert url[0] == f"http://127.0.0.1:{port}/"
        start = time.monotonic()
        with urllib.request.urlopen(url[0], timeout=120) as response:   # runs the notebook
            assert response.status == 200
            page = response.read().decode()
        print(f"voila page fetched in {time.monotonic() - start:.1f} s")
        assert "gmoswidgets dashboard" in page
        assert "application/vnd.jupyter.widget-view+json" in page      # the app was displayed
        assert "Traceback" not in page           # Voilà runs with --show_tracebacks=True
    finally:
        os.killpg(proc.pid, signal.SIGINT)     # Ctrl-C in a terminal: demo and Voilà get SIGINT
        code = proc.wait(60)
    assert code == 0, "".join(lines)
    assert "Stopped." in "".join(lines)
    assert not _port_open(port), "Voilà still listening after Ctrl-C"
