"""The dashboard's download panel, against a local HTTP server (no internet)."""
import bz2
import hashlib
import json
import socket

from helpers import fits_bytes

from gmoswidgets.widgets import DownloadPanel, ReductionApp


def test_download_button_fetches_archive_files(server, tmp_path):
    base, handler = server
    payload = bz2.compress(fits_bytes())
    handler.files["/file/N20170614S0201.fits.bz2"] = payload
    handler.files["/jsonfilelist/N20170614S0201.fits"] = json.dumps(
        [{"name": "N20170614S0201.fits", "filename": "N20170614S0201.fits.bz2",
          "file_md5": hashlib.md5(payload).hexdigest()}]).encode()
    panel = DownloadPanel(tmp_path, archive_url=base, background=False)
    seen = []
    panel.on_downloaded(seen.append)
    panel.names.value = "N20170614S0201.fits"
    panel.archive_button.click()
    assert (tmp_path / "N20170614S0201.fits").read_bytes() == fits_bytes()
    assert "Downloaded 1 file" in panel.status.value and seen == [tmp_path]
    assert not panel.archive_button.disabled


def test_download_errors_are_shown_not_raised(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    panel = DownloadPanel(tmp_path, archive_url=f"http://127.0.0.1:{port}",
                          package_url=f"http://127.0.0.1:{port}/pkg.tar", background=False)
    panel.names.value = "N20170614S0201.fits"
    panel.archive_button.click()
    assert "Download failed" in panel.status.value and "cannot reach" in panel.status.value
    panel.names.value = ""
    panel.archive_button.click()
    assert "give the file names" in panel.status.value
    panel.package_button.click()
    assert "Download failed" in panel.status.value
    assert list(tmp_path.iterdir()) == []


def test_app_has_the_download_panel_and_rescans(tmp_path, tutorial4):
    app = ReductionApp(tutorial4.directory, workdir=tmp_path, database_dir=tmp_path,
                       background=False)
    assert app.download_panel.directory.value == str(tutorial4.directory)
    app.download_panel._callbacks[0](tutorial4.directory)       # as after a download
    assert len(app.file_panel.rows) == 20
