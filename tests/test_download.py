"""The downloader against a local HTTP server on 127.0.0.1 (no internet needed)."""
import bz2
import hashlib
import io
import json
import socket
import tarfile

import pytest

from helpers import fits_bytes

from gmoswidgets.data.download import (DownloadError, download, download_archive_files,
                                       download_tutorial_package)


def test_download_with_server_md5(server, tmp_path):
    base, handler = server
    handler.files["/a.fits"] = fits_bytes()
    handler.md5_header.add("/a.fits")
    out = download(f"{base}/a.fits", tmp_path, progress=False)
    assert out == tmp_path / "a.fits" and out.read_bytes() == fits_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, handler = server
    handler.files["/a.fits"] = fits_bytes()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{base}/a.fits", tmp_path, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resume_after_interruption(server, tmp_path):
    base, handler = server
    body = fits_bytes(3 * 1024 * 1024)
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
            payload = bz2.compress(fits_bytes() + name.encode())
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
    payload = bz2.compress(fits_bytes())
    handler.files["/file/N20170614S0201.fits.bz2"] = payload
    handler.files["/jsonfilelist/N20170614S0201.fits"] = json.dumps(
        [{"name": "N20170614S0201.fits", "filename": "N20170614S0201.fits.bz2",
          "file_md5": hashlib.md5(payload).hexdigest()}]).encode()
    out = download_archive_files(["N20170614S0201.fits"], tmp_path, base=base, progress=False)
    assert out == [tmp_path / "N20170614S0201.fits"]
    assert out[0].read_bytes() == fits_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["N20170614S0201.fits"]
