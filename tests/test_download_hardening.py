"""Hostile or broken servers never cost data, never hang, never write outside the target (issue 12, 3/8/9).

A local server on 127.0.0.1 plays each bad behaviour; every test here failed
before the downloader was hardened.
"""
import bz2
import hashlib
import http.server
import io
import json
import tarfile
import threading
import time

import pytest

from gmoswidgets.data.download import (TUTORIAL_PACKAGE_SHA256, TUTORIAL_PACKAGE_URL,
                                       DownloadCancelled, DownloadError, UnpackLimits, download,
                                       download_archive_files, download_tutorial_package)

BODY = b"SIMPLE  =                    T" + bytes(range(256)) * 40


class _Bad(http.server.BaseHTTPRequestHandler):
    """Serves ``routes[path] = (behaviour, body)``; records requests."""
    routes: dict = {}
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Range")))
        behaviour, body = self.routes.get(self.path, ("404", b""))
        if behaviour == "404":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif behaviour == "500":
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
            page = b"<html><head><title>Internal Server Error</title></head></html>"
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif behaviour == "416" and self.headers.get("Range"):
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif behaviour == "drip":                     # 1 byte per 0.5 s, within any socket timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(min(len(body), 40)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:                           # the client gave up, as it should
                pass
        elif behaviour in ("close", "close-cut"):       # HTTP/1.0 style: no length, ends at close
            self.close_connection = True
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if behaviour == "close-cut" else body)
        elif behaviour == "chunked-cut":
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = body[:len(body) // 2]
            self.wfile.write(f"{len(half):x}\r\n".encode() + half + b"\r\n")
            self.close_connection = True
        else:                                          # "ok" (416 without Range too)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture
def bad():
    _Bad.routes, _Bad.seen = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Bad
    httpd.shutdown()
    httpd.server_close()


def _md5(data):
    return hashlib.md5(data).hexdigest()


def _tar(members) -> bytes:
    """A tar of (name, bytes) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _serve_package(bad, tarbytes, behaviour="ok"):
    base, handler = bad
    handler.routes["/pkg.tar"] = (behaviour, tarbytes)
    return f"{base}/pkg.tar", hashlib.sha256(tarbytes).hexdigest()


def _files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- item 3: server-given file names ---------------------------------------------------------

def test_archive_file_name_from_the_server_cannot_escape(bad, tmp_path):
    base, handler = bad
    payload = bz2.compress(BODY)
    handler.routes["/jsonfilelist/N20170614S0201.fits"] = ("ok", json.dumps(
        [{"name": "N20170614S0201.fits", "filename": "../../x.fits.bz2",
          "file_md5": _md5(payload)}]).encode())
    handler.routes["/file/../../x.fits.bz2"] = ("ok", payload)
    target = tmp_path / "a" / "b"
    target.mkdir(parents=True)
    with pytest.raises(DownloadError, match="refusing the file name '../../x.fits.bz2'"):
        download_archive_files(["N20170614S0201.fits"], target, base=base, progress=False)
    assert _files(tmp_path) == ["a", "a/b"]


# -- item 8: the tutorial package -----------------------------------------------------------

def test_package_over_https_and_fails_closed_without_a_known_checksum(bad, tmp_path, monkeypatch):
    assert TUTORIAL_PACKAGE_URL.startswith("https://")
    monkeypatch.delenv("GMOSWIDGETS_TUTORIAL_SHA256", raising=False)
    url, _ = _serve_package(bad, _tar([("gmosimg_tutorial/playdata/a.fits.bz2",
                                        bz2.compress(BODY))]))
    if TUTORIAL_PACKAGE_SHA256 is None:
        with pytest.raises(DownloadError, match="SHA-256 is not known"):
            download_tutorial_package(tmp_path, url=url, progress=False)
        assert bad[1].seen == []          # nothing was even requested
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_tutorial_package(tmp_path, url=url, progress=False, sha256="0" * 64)
    assert _files(tmp_path) == []


def test_package_bzip2_bomb_is_refused_and_leaves_nothing(bad, tmp_path):
    bomb = bz2.compress(b"\0" * (32 << 20))             # 32 MiB of zeros in ~100 bytes
    url, sha = _serve_package(bad, _tar([("gmosimg_tutorial/playdata/good.fits.bz2",
                                          bz2.compress(BODY)),
                                         ("gmosimg_tutorial/playdata/huge.fits.bz2", bomb)]))
    with pytest.raises(DownloadError, match="bzip2 bomb"):
        download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False)
    assert _files(tmp_path) == []                       # no partial tree, no 0-byte huge.fits


def test_package_size_caps(bad, tmp_path):
    members = [(f"gmosimg_tutorial/playdata/f{i}.fits.bz2", bz2.compress(BODY)) for i in range(3)]
    url, sha = _serve_package(bad, _tar(members))
    with pytest.raises(DownloadError, match="more than 20000 bytes"):
        download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False,
                                  limits=UnpackLimits(max_total=20_000))
    with pytest.raises(DownloadError, match="decompresses to more than 5000 bytes"):
        download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False,
                                  limits=UnpackLimits(max_member=5000))
    assert _files(tmp_path) == []


def _header_only_tar(info) -> bytes:
    return info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024


def test_package_sparse_or_huge_members_are_refused(bad, tmp_path):
    huge = tarfile.TarInfo("gmosimg_tutorial/playdata/huge.fits")
    huge.size = 50 << 30                                  # 50 GiB declared
    url, sha = _serve_package(bad, _header_only_tar(huge))
    with pytest.raises(DownloadError, match="larger than allowed"):
        download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False)
    sparse = tarfile.TarInfo("gmosimg_tutorial/playdata/sparse.fits")
    sparse.type = tarfile.GNUTYPE_SPARSE
    url, sha = _serve_package(bad, _header_only_tar(sparse))
    with pytest.raises(DownloadError, match="sparse"):
        download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False)
    assert _files(tmp_path) == []


def test_package_links_and_escapes_are_refused(bad, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("gmosimg_tutorial/playdata/x.fits")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    url, sha = _serve_package(bad, buf.getvalue())
    with pytest.raises(DownloadError, match="not a plain file"):
        download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False)
    url, sha = _serve_package(bad, _tar([("../escape.fits.bz2", b"x")]))
    with pytest.raises(DownloadError, match="outside its folder"):
        download_tutorial_package(tmp_path / "t", url=url, sha256=sha, progress=False)
    assert _files(tmp_path) == ["t"] and not (tmp_path / "escape.fits.bz2").exists()


def test_no_content_length_is_accepted_only_under_a_cap(bad, tmp_path):
    base, handler = bad
    handler.routes["/big.fits"] = ("close", BODY)
    with pytest.raises(DownloadError, match="exceeds the 1000 bytes"):
        download(f"{base}/big.fits", tmp_path, md5=_md5(BODY), progress=False, max_bytes=1000)
    assert _files(tmp_path) == []
    out = download(f"{base}/big.fits", tmp_path, md5=_md5(BODY), progress=False)
    assert out.read_bytes() == BODY


def test_tar_without_playdata_never_touches_the_users_files(bad, tmp_path):
    mine = tmp_path / "mine.fits.bz2"
    mine.write_bytes(bz2.compress(b"my own data"))
    url, sha = _serve_package(bad, _tar([("other/thing.fits.bz2", bz2.compress(BODY))]))
    with pytest.raises(DownloadError, match="no playdata/ folder"):
        download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False)
    assert _files(tmp_path) == ["mine.fits.bz2"]
    assert bz2.decompress(mine.read_bytes()) == b"my own data"


def test_package_never_replaces_an_existing_file(bad, tmp_path):
    (tmp_path / "gmosimg_tutorial" / "playdata").mkdir(parents=True)
    mine = tmp_path / "gmosimg_tutorial" / "playdata" / "a.fits"
    mine.write_bytes(b"mine")
    url, sha = _serve_package(bad, _tar([("gmosimg_tutorial/playdata/a.fits.bz2",
                                          bz2.compress(BODY)),
                                         ("gmosimg_tutorial/playdata/b.fits.bz2",
                                          bz2.compress(BODY))]))
    playdata = download_tutorial_package(tmp_path, url=url, sha256=sha, progress=False)
    assert mine.read_bytes() == b"mine" and (playdata / "b.fits").read_bytes() == BODY
    assert _files(tmp_path) == ["gmosimg_tutorial", "gmosimg_tutorial/playdata",
                                "gmosimg_tutorial/playdata/a.fits",
                                "gmosimg_tutorial/playdata/b.fits"]


# -- item 9: deadlines, cancel, truncation, stale .part ---------------------------------------

@pytest.mark.slow
def test_a_dripping_server_fails_at_the_deadline(bad, tmp_path):
    base, handler = bad
    handler.routes["/slow.fits"] = ("drip", BODY)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="deadline"):
        download(f"{base}/slow.fits", tmp_path, progress=False, timeout=2, deadline=3)
    assert time.monotonic() - started < 6
    assert not (tmp_path / "slow.fits").exists()


def test_cancel_stops_and_keeps_the_part_for_resuming(bad, tmp_path):
    base, handler = bad
    handler.routes["/slow.fits"] = ("drip", BODY)
    cancel = threading.Event()

    def progress(done, total):
        if done >= 2:
            cancel.set()
    with pytest.raises(DownloadCancelled):
        download(f"{base}/slow.fits", tmp_path, progress=progress, cancel=cancel, deadline=20)
    assert not (tmp_path / "slow.fits").exists()
    assert (tmp_path / "slow.fits.part").stat().st_size >= 2


def test_truncated_reply_without_content_length_is_detected(bad, tmp_path):
    base, handler = bad
    handler.routes["/cut.fits"] = ("close-cut", BODY)
    with pytest.raises(DownloadError, match="no length and no checksum"):
        download(f"{base}/cut.fits", tmp_path, progress=False)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{base}/cut.fits", tmp_path, md5=_md5(BODY), progress=False)
    handler.routes["/chunk.fits"] = ("chunked-cut", BODY)
    with pytest.raises(DownloadError, match="ended early|interrupted"):
        download(f"{base}/chunk.fits", tmp_path, progress=False, timeout=5)
    assert not (tmp_path / "cut.fits").exists() and not (tmp_path / "chunk.fits").exists()


@pytest.mark.parametrize("md5", [True, False])
def test_stale_part_is_not_trusted_on_416(bad, tmp_path, md5):
    base, handler = bad
    handler.routes["/a.fits"] = ("416", BODY)
    (tmp_path / "a.fits.part").write_bytes(b"stale junk " * 2000)   # longer than the file
    out = download(f"{base}/a.fits", tmp_path, md5=_md5(BODY) if md5 else None, progress=False)
    assert out.read_bytes() == BODY
    assert not (tmp_path / "a.fits.part").exists()


def test_complete_part_is_kept_on_416_when_its_checksum_matches(bad, tmp_path):
    base, handler = bad
    handler.routes["/a.fits"] = ("416", BODY)
    (tmp_path / "a.fits.part").write_bytes(BODY)
    assert download(f"{base}/a.fits", tmp_path, md5=_md5(BODY), progress=False).read_bytes() == BODY
    assert [r for _, r in handler.seen] == [f"bytes={len(BODY)}-"]   # no second, whole fetch


def test_part_is_kept_on_5xx_and_deleted_on_4xx(bad, tmp_path):
    base, handler = bad
    handler.routes["/a.fits"] = ("500", b"")
    (tmp_path / "a.fits.part").write_bytes(BODY[:100])
    with pytest.raises(DownloadError, match="HTTP 500 .*Internal Server Error"):
        download(f"{base}/a.fits", tmp_path, progress=False)
    assert (tmp_path / "a.fits.part").read_bytes() == BODY[:100]     # resumable later
    handler.routes["/a.fits"] = ("404", b"")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/a.fits", tmp_path, progress=False)
    assert _files(tmp_path) == []


def test_the_download_panel_can_cancel(bad, tmp_path):
    from gmoswidgets.widgets import DownloadPanel
    base, handler = bad
    payload = bz2.compress(BODY)
    handler.routes["/jsonfilelist/N20170614S0201.fits"] = ("ok", json.dumps(
        [{"name": "N20170614S0201.fits", "filename": "N20170614S0201.fits.bz2",
          "file_md5": _md5(payload)}]).encode())
    handler.routes["/file/N20170614S0201.fits.bz2"] = ("drip", payload)
    panel = DownloadPanel(tmp_path, archive_url=base, background=True)
    panel.names.value = "N20170614S0201.fits"
    panel.archive_button.click()
    deadline = time.monotonic() + 20
    while not list(tmp_path.glob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.1)                      # the first bytes have arrived
    assert not panel.cancel_button.disabled
    started = time.monotonic()
    panel.cancel_button.click()
    panel.join(10)
    assert time.monotonic() - started < 3 and "Cancelled" in panel.status.value
    assert [p.name for p in tmp_path.iterdir()] == ["N20170614S0201.fits.bz2.part"]
    assert panel.cancel_button.disabled and not panel.archive_button.disabled


def test_bunzip2_streams_truncation_and_garbage(tmp_path):
    from gmoswidgets.data.download import bunzip2
    multi = tmp_path / "multi.fits.bz2"
    multi.write_bytes(bz2.compress(BODY) + bz2.compress(b"second stream"))  # as pbzip2 writes
    assert bunzip2(multi, data_md5=_md5(BODY + b"second stream")).read_bytes() == \
        BODY + b"second stream"
    for name, payload, message in (("cut.fits.bz2", bz2.compress(BODY)[:-20], "truncated"),
                                   ("junk.fits.bz2", b"not bzip2 at all", "not a valid bzip2"),
                                   ("empty.fits.bz2", b"", "truncated")):
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(DownloadError, match=message):
            bunzip2(path)
        assert not path.with_suffix("").exists() and path.exists()     # nothing half-written
    wrong = tmp_path / "wrong.fits.bz2"
    wrong.write_bytes(bz2.compress(BODY))
    with pytest.raises(DownloadError, match="not the archive's"):
        bunzip2(wrong, data_md5="0" * 32)
    assert not (tmp_path / "wrong.fits").exists()
