"""The "Find data in the archive" panel against the fake archive (no browser)."""
import socket

from fake_archive import PROPRIETARY

from gmoswidgets.widgets import ArchivePanel, ReductionApp


def _names(panel):
    return [c.value for c in panel.table.children if "gmos-archive-row" in c._dom_classes]


def test_search_tick_add_calibrations_download(fake_archive, tmp_path):
    panel = ArchivePanel(tmp_path / "playdata", server=fake_archive.url, background=False)
    seen = []
    panel.on_downloaded(seen.append)
    panel.program.value, panel.obsclass.value = "GN-2017A-SV-151", "science"
    panel.search_button.click()
    assert "3 file(s) found" in panel.status.value
    assert _names(panel) == ["N20170614S0201.fits", "N20170614S0202.fits", PROPRIETARY]
    labels = [c.value for c in panel.table.children if hasattr(c, "value")
              and isinstance(c.value, str)]
    assert any("IMAGE" in text and "RAW" in text for text in labels)      # the tags column
    panel._checks[PROPRIETARY] = panel._checks["N20170614S0202.fits"] = False
    panel._draw()
    panel.count.value = 2
    panel.calib_button.click()
    assert "Added 4 calibration file(s) for 1 file(s)" in panel.status.value, panel.status.value
    assert _names(panel)[3:] == ["N20170613S0182.fits", "N20170613S0181.fits",
                                 "N20170702S0178.fits", "N20170702S0179.fits"]
    panel.download_button.click()
    assert "Downloaded 5 of 5 file(s)" in panel.status.value, panel.status.value
    assert sorted(p.name for p in (tmp_path / "playdata").iterdir()) == sorted(
        ["N20170614S0201.fits", "N20170613S0182.fits", "N20170613S0181.fits",
         "N20170702S0178.fits", "N20170702S0179.fits"])
    assert seen == [tmp_path / "playdata"] and not panel.download_button.disabled


def test_proprietary_failure_is_shown_per_file(fake_archive, tmp_path):
    panel = ArchivePanel(tmp_path, server=fake_archive.url, background=False)
    panel.date.value = "20170614"
    panel.search_button.click()
    panel.download_button.click()
    assert "Downloaded 2 of 3" in panel.status.value
    assert f"<b>{PROPRIETARY}.bz2</b>: the archive refused" in panel.status.value


def test_cancel_stops_a_download(fake_archive, tmp_path, monkeypatch):
    import gmoswidgets.widgets.archivepanel as module
    panel = ArchivePanel(tmp_path, server=fake_archive.url, background=True)
    panel.date.value = "20170613"
    panel.run_search()
    panel.join(60)
    real, enabled = module.download_files, []

    def clicking_cancel(*args, progress, **kwargs):   # the user clicks Cancel after the 1st block
        def report(*values):
            progress(*values)
            enabled.append(not panel.cancel_button.disabled)
            panel.cancel_button.click()
        return real(*args, progress=report, **kwargs)
    monkeypatch.setattr(module, "download_files", clicking_cancel)
    panel.download_selected()
    panel.join(60)
    assert enabled[:1] == [True] and "Cancelled" in panel.status.value, panel.status.value
    assert not list(tmp_path.glob("*.fits")) and len(list(tmp_path.glob("*.part"))) == 1
    assert panel.cancel_button.disabled and not panel.download_button.disabled


def test_no_network_and_bad_input_are_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    panel = ArchivePanel(tmp_path, server=f"http://127.0.0.1:{port}", background=False)
    panel.search_button.click()
    assert "at least one criterion" in panel.status.value
    panel.date.value = "20170614"
    panel.search_button.click()
    assert panel.status.value.startswith("<b>Failed:</b> cannot reach the archive")
    assert "offline" in panel.status.value and "<br>" not in panel.status.value
    panel.date.value = "June"
    panel.search_button.click()
    assert "not a date" in panel.status.value


def test_network_lost_before_the_download_is_one_line(fake_archive, tmp_path):
    panel = ArchivePanel(tmp_path, server=fake_archive.url, background=False)
    panel.date.value = "20170613"
    panel.search_button.click()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        panel.server = f"http://127.0.0.1:{sock.getsockname()[1]}"
    panel.download_button.click()
    assert panel.status.value.startswith("<b>Failed:</b> cannot reach the archive")
    assert panel.status.value.count("cannot reach") == 1 and list(tmp_path.iterdir()) == []


def test_app_has_the_archive_panel_in_the_files_tab(tmp_path, fake_archive, monkeypatch):
    monkeypatch.setenv("GMOSWIDGETS_ARCHIVE_URL", fake_archive.url)
    app = ReductionApp(tmp_path / "playdata", workdir=tmp_path, database_dir=tmp_path,
                       background=False)
    files_tab = app.tabs.children[0]
    accordion = files_tab.children[-1]
    assert app.archive_panel in accordion.children
    assert app.archive_panel.server == fake_archive.url
    app.archive_panel.obstype.value, app.archive_panel.date.value = "BIAS", "20170613"
    app.archive_panel.search_button.click()
    app.archive_panel.download_button.click()
    assert len(app.file_panel.rows) == 3            # the file panel lists what was downloaded
