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

from gmoswidgets.dashboard.server import DashboardServer, find_dashboard, free_port, stop_group
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
    server = DashboardServer(find_dashboard(), "demo_data", port=1234)
    cmd = server.command()
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=1234" in cmd and "--no-browser" in cmd
    assert any(c.startswith("--MappingKernelManager.cull_idle_timeout=") for c in cmd)
    assert len(server.token) >= 24 and f"--Voila.token={server.token}" in cmd
    assert server.url == f"http://127.0.0.1:1234/?token={server.token}"
    assert any("'allow_remote_access': False" in c for c in cmd)
    assert any(c.endswith("voila_guard.V1OnlyConnection") for c in cmd)
    assert any(c.endswith("voila_guard.BoundedKernelManager") for c in cmd)
    assert cmd[-1] == "dashboard.ipynb"
    assert DashboardServer(find_dashboard(), "demo_data", port=1234).token != server.token


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
            match = re.search(r"served at (http://127\.0\.0\.1:\d+/\?token=\S+)", line)
            if match:
                url.append(match[1])
                found.set()
    threading.Thread(target=pump, daemon=True).start()
    try:
        assert found.wait(120), "no URL printed:\n" + "".join(lines)
        assert url[0].startswith(f"http://127.0.0.1:{port}/?token=")
        start = time.monotonic()
        with urllib.request.urlopen(url[0], timeout=120) as response:   # runs the notebook
            assert response.status == 200
            page = response.read().decode()
        print(f"voila page fetched in {time.monotonic() - start:.1f} s")
        assert "gmoswidgets dashboard" in page
        assert "application/vnd.jupyter.widget-view+json" in page      # the app was displayed
        assert "Traceback" not in page and "There was an error" not in page
    finally:
        # SIGTERM to the group: works whatever the signal disposition the test inherited
        # (a shell's background job ignores SIGINT)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(60)
        finally:
            stop_group(proc.pid)
    assert code == 0, "".join(lines)
    assert "Stopped." in "".join(lines)
    assert not _port_open(port), "Voilà still listening after SIGTERM"
    out = "".join(lines)
    assert "warning" not in out.lower() and "setuptools" not in out.lower(), out
    assert "dataselect --tags FLAT --expr 'filter_name==\"i\"'" in out


# -- what the server accepts (issue 12, items 5-7) ---------------------------------------------

def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def _kernel_pids(pid: int) -> list:
    """Kernel processes started by the Voilà process ``pid``."""
    kernels = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"ipykernel" in cmdline:
            kernels.append(int(entry))
    return kernels


def _get(url: str, headers=None, timeout: float = 120):
    """(status, body) of a GET, without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def _legacy_message(msg_type: str, content: dict, session: str, metadata=None) -> str:
    import json
    import uuid
    return json.dumps({"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type,
                                  "session": session, "username": "x", "version": "5.3",
                                  "date": "2026-01-01T00:00:00Z"},
                       "parent_header": {}, "metadata": metadata or {}, "content": content,
                       "channel": "shell", "buffers": []})


async def _websocket(url: str, headers=None, subprotocols=None, messages=(), watch=None):
    """Open a websocket; send ``messages``; return the HTTP status of a refusal, or 101.

    ``watch(seconds_elapsed)`` is called every 0.2 s for 3 s after sending,
    and may raise to stop at once (the RSS cap).
    """
    import asyncio
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect
    request = HTTPRequest(url, headers=headers or {}, request_timeout=30)
    try:
        conn = await websocket_connect(request, subprotocols=subprotocols)
    except HTTPClientError as err:
        return err.code
    try:
        for message in messages:
            await conn.write_message(message)
        for i in range(15):
            await asyncio.sleep(0.2)
            if watch is not None:
                watch(0.2 * (i + 1))
    finally:
        conn.close()
    return 101


@pytest.mark.slow
def test_server_refuses_foreign_hosts_legacy_websockets_and_extra_kernels(tutorial4, tmp_path):
    import asyncio
    import re as _re
    (tmp_path / "playdata").symlink_to(tutorial4.directory, target_is_directory=True)
    server = DashboardServer(find_dashboard(), tmp_path, max_kernels=2, cull_idle=600)
    server.start()
    pid = server.process.pid
    token = server.token
    base = server.base_url
    try:
        # item 5: DNS rebinding (a foreign Host) is refused, and so is a request without the token
        assert _get(server.url, {"Host": "evil.example.com"})[0] == 403
        assert _get(server.url, {"Host": f"evil.example.com:{server.port}"})[0] == 403
        assert _get(base)[0] in (302, 403)              # to the login page, no kernel started
        assert _kernel_pids(pid) == []
        status, page = _get(server.url)
        assert status == 200 and "application/vnd.jupyter.widget-view+json" in page
        kernel_id = _re.search(r'"kernelId"\s*:\s*"([0-9a-f-]{36})"', page)
        kernel_id = kernel_id[1] if kernel_id else _re.search(r"([0-9a-f]{8}-[0-9a-f-]{27})", page)[1]
        ws = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels?token={token}"
        v1 = ["v1.kernel.websocket.jupyter.org"]
        assert asyncio.run(_websocket(ws, {"Host": "evil.example.com"}, v1)) == 403
        no_token = ws.split("?")[0]
        assert asyncio.run(_websocket(no_token, {"Origin": "http://evil.example.com"}, v1)) == 403
        assert asyncio.run(_websocket(no_token, {}, v1)) == 403
        # item 6: the legacy protocol with comm_open + request_states grew Voilà by ~38 MB/s;
        # bounded reproduction: 3 s at most, stopped as soon as the RSS grows by 40 MB
        start_rss = _rss_mb(pid)

        def cap(elapsed):
            grown = _rss_mb(pid) - start_rss
            if grown > 40:
                server.stop()
                pytest.fail(f"Voilà grew by {grown:.0f} MB in {elapsed:.1f} s (legacy websocket)")
        comm = "c0ffee" * 5
        legacy = [_legacy_message("comm_open", {"comm_id": comm, "target_name":
                                                "jupyter.widget.control", "data": {}}, "s1",
                                  {"version": "1.0.0"}),
                  _legacy_message("comm_msg", {"comm_id": comm,
                                               "data": {"method": "request_states"}}, "s1")]
        assert asyncio.run(_websocket(ws + "&session_id=s1", messages=legacy, watch=cap)) == 400
        assert asyncio.run(_websocket(ws + "&session_id=s2", subprotocols=v1, watch=cap)) == 101
        assert _rss_mb(pid) - start_rss < 40
        # item 7: each GET starts a kernel, at most max_kernels of them
        assert len(_kernel_pids(pid)) == 1
        assert _get(server.url)[0] == 200
        assert _get(server.url)[0] != 200                # the third is refused
        assert len(_kernel_pids(pid)) == 2
        assert server.process.poll() is None             # still serving
    finally:
        server.stop()
    assert _kernel_pids(pid) == [] and not _port_open(server.port)


def _serve_and_fetch(args, tmp_path, pattern: str, path_check):
    """Run a server module in its own process group, fetch its printed URL, stop it with SIGTERM."""
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, url = [], []
    found = threading.Event()

    def pump():
        for line in proc.stdout:
            lines.append(line)
            match = re.search(pattern, line)
            if match:
                url.append(match[1])
                found.set()
    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 180
        while not found.wait(0.5):
            assert proc.poll() is None and time.monotonic() < deadline, \
                "no URL printed:\n" + "".join(lines)
        status, body = _get(url[0])
        path_check(url[0], status, body)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(60)
        finally:
            stop_group(proc.pid)
    return code, "".join(lines), url[0]


@pytest.mark.slow
def test_make_lab_serves_the_notebooks_in_jupyterlab(tutorial4, tmp_path):
    pytest.importorskip("jupyterlab", reason="make lab installs the 'lab' extra")
    (tmp_path / "playdata").symlink_to(tutorial4.directory, target_is_directory=True)
    port = free_port()

    def check(url, status, body):
        assert url.startswith(f"http://127.0.0.1:{port}/lab?token=")
        assert status == 200 and "JupyterLab" in body
        token = url.split("token=")[1]
        status, listing = _get(f"http://127.0.0.1:{port}/api/contents?token={token}")
        assert status == 200 and "dashboard.ipynb" in listing and "03_widgets_tour.ipynb" in listing
        assert _get(f"http://127.0.0.1:{port}/api/contents")[0] == 403     # no token
        assert _get(url, {"Host": "evil.example.com"})[0] == 403
    code, out, _ = _serve_and_fetch(["gmoswidgets.dashboard.lab", "--data", str(tmp_path),
                                     "--port", str(port)], tmp_path,
                                    r"served at (http://127\.0\.0\.1:\d+/lab\?token=\S+)", check)
    assert code == 0 and "Stopped." in out, out
    assert not _port_open(port)


def test_makefile_lab_target_uses_the_lab_extra():
    from pathlib import Path
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "\nlab: $(LAB_STAMP)\n\t$(PY) -m gmoswidgets.dashboard.lab --data $(DEMO_DIR)" in makefile
    assert "-e '.[test,lab]'" in makefile


# -- kernel culling: a new kernel waits for its page ---------------------------------------------

@pytest.mark.slow          # two kernels: ~3 s
def test_a_new_kernel_waits_for_its_page_before_it_can_be_culled(tmp_path):
    """Voilà runs the notebook, then the page's scripts ask for the kernel; a kernel culled in
    between gave a page with the notebook's text and no widget, and no error (seen once in
    the browser walk, cull_idle 30 s on a busy machine).  A real kernel, the real culler."""
    import asyncio
    from gmoswidgets.dashboard.voila_guard import BoundedKernelManager

    async def scenario():
        km = BoundedKernelManager(cull_idle_timeout=1, first_connection_timeout=600,
                                  connection_dir=str(tmp_path), root_dir=str(tmp_path))
        waiting = await km.start_kernel(kernel_name="python3")
        visited = await km.start_kernel(kernel_name="python3")
        try:
            km.notify_connect(visited)          # its page connected, then was closed
            km.notify_disconnect(visited)
            for _ in range(40):                 # until both have been idle for cull_idle_timeout
                await asyncio.sleep(0.5)
                await km.cull_kernels()
                if visited not in km.list_kernel_ids():
                    break
            assert km.list_kernel_ids() == [waiting]
            km.first_connection_timeout = 0     # a page that never connects: culled in the end
            await km.cull_kernels()
            assert km.list_kernel_ids() == [] and km._unconnected == {}
        finally:
            await km.shutdown_all(now=True)
    asyncio.run(scenario())
