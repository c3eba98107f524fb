"""The downloader against a local HTTP server on 127.0.0.1 (no internet needed)."""
import base64
import bz2
import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading

import pytest

from gmoswidgets.data.download import (DownloadError, download, download_archive_files,
                                       download_tutorial_package)


class _Handler(http.server.BaseHTTPRequestHandler):
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
    _Handler.files, _Handler.md5_header, _Handler.cut_after = {}, set(), {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def _fits_bytes(n=5000):
    return b"SIMPLE  =                    T" + bytes(range(256)) * (n // 256)


def test_download_with_server_md5(server, tmp_path):
    base, handler = server
    handler.files["/a.fits"] = _fits_bytes()
    handler.md5_header.add("/a.fits")
    out = download(f"{base}/a.fits", tmp_path, progress=False)
    assert out == tmp_path / "a.fits" and out.read_bytes() == _fits_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, handler = server
    handler.files["/a.fits"] = _fits_bytes()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{base}/a.fits", tmp_path, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resume_after_interruption(server, tmp_path):
    base, handler = server
    body = _fits_bytes(3 * 1024 * 1024)
    handler.files["/big.fits"] = body
    handler.cut_after["/big.fits"] = 1024 * 1024 + 17
    with pytest.raises(DownloadError, match="resume"):
        download(f"{base}/big.fits", tmp_path, progress=False, timeout=5)
    assert not (tmp_path / "big.fits").exists()
    partial = (tmp_path / "big.fits.part").stat().st_size
    assert 0 < partial < len(body)
    out = download(f"{base}/big.fits", tmp_path, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert out.read_bytes() == body


def test_http_error_and_offline_messages(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/missing.fits", tmp_path, progress=False)
    with socket.socket() as sock:          # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach"):
        download(f"http://127.0.0.1:{port}/x.fits", tmp_path, progress=False, timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_tutorial_package_is_unpacked_and_bunzipped(server, tmp_path):
    base, handler = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("N20170614S0201.fits", "N20170613S0180.fits"):
            payload = bz2.compress(_fits_bytes() + name.encode())
            info = tarfile.TarInfo(f"gmosimg_tutorial/playdata/{name}.bz2")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    handler.files["/pkg.tar"] = buf.getvalue()
    playdata = download_tutorial_package(tmp_path, url=f"{base}/pkg.tar", progress=False,
                                         sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    assert sorted(p.name for p in playdata.iterdir()) == ["N20170613S0180.fits", "N20170614S0201.fits"]
    assert (playdata / "N20170614S0201.fits").read_bytes().endswith(b"N20170614S0201.fits")
    assert not (tmp_path / "pkg.tar").exists()


def test_archive_files_by_name(server, tmp_path):
    base, handler = server
    payload = bz2.compress(_fits_bytes())
    handler.files["/file/N20170614S0201.fits.bz2"] = payload
    handler.files["/jsonfilelist/N20170614S0201.fits"] = json.dumps(
        [{"name": "N20170614S0201.fits", "filename": "N20170614S0201.fits.bz2",
          "file_md5": hashlib.md5(payload).hexdigest()}]).encode()
    out = download_archive_files(["N20170614S0201.fits"], tmp_path, base=base, progress=False)
    assert out == [tmp_path / "N20170614S0201.fits"]
    assert out[0].read_bytes() == _fits_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["N20170614S0201.fits"]
