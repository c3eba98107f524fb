"""The dashboard's "Find data in the archive" in headless Chromium, against the fake archive.

Voilà serves the real dashboard notebook with ``$GMOSWIDGETS_ARCHIVE_URL``
pointing at the fake archive of tests/fake_archive.py; the data folder
starts with one file of the tutorial (so no dataset is simulated), and the
test searches, ticks, adds the matching calibrations, downloads, and sees
the file panel list the new files.  Screenshot:
``test-artifacts/browser/archive_01_downloaded.png``.
"""
import shutil
import tempfile

import pytest
from fake_archive import PROPRIETARY, FakeArchive
from test_browser_dashboard import (ARTIFACTS, CHROMIUM_FLAGS, EXPECTED_PAGE_ERRORS,
                                    FATAL_PAGE_ERRORS, RENDER_TIMEOUT, _require_browser)

from gmoswidgets.dashboard.server import DashboardServer, find_dashboard
from gmoswidgets.data.tutorial import BINNING_ENV

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SEED_FILE = "N20170615S0534.fits"        # a bias the fake archive does not hold


def _wait_text(page, selector, text, timeout=60_000):
    page.wait_for_function(
        "([sel, text]) => [...document.querySelectorAll(sel)].some(e => e.innerText.includes(text))",
        arg=[selector, text], timeout=timeout)


def test_find_select_download_and_list(archive_store, tutorial4, tmp_path):
    import re
    sync_playwright, chromium = _require_browser()
    playdata = tmp_path / "playdata"
    playdata.mkdir()
    shutil.copy(tutorial4.directory / SEED_FILE, playdata)
    errors = []
    with FakeArchive(archive_store, lifetime=900) as archive, \
            DashboardServer(find_dashboard(), tmp_path, cull_idle=30,
                            env={BINNING_ENV: "4", "GMOSWIDGETS_ARCHIVE_URL": archive.url}) as server, \
            sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 2000})
        try:
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url, wait_until="domcontentloaded", timeout=RENDER_TIMEOUT)
            page.wait_for_selector(".gmos-file-table .gmos-file-row", timeout=RENDER_TIMEOUT)
            _wait_text(page, ".gmos-file-message", "1 of 1 file(s) selected")
            page.get_by_text("Find data in the archive").click()
            page.locator(".gmos-archive-program input").fill("GN-2017A-SV-151")
            page.locator(".gmos-archive-obsclass select").select_option("science")
            page.click(".gmos-archive-search")
            _wait_text(page, ".gmos-archive-status", "3 file(s) found")
            rows = page.locator(".gmos-archive-table .gmos-archive-row")
            assert rows.all_inner_texts() == ["N20170614S0201.fits", "N20170614S0202.fits",
                                              PROPRIETARY]
            checks = page.locator(".gmos-archive-table .widget-checkbox input")
            checks.nth(1).uncheck()            # keep N20170614S0201 only
            checks.nth(2).uncheck()
            page.locator(".gmos-archive-count input").fill("2")
            page.locator(".gmos-archive-count input").press("Enter")
            page.click(".gmos-archive-calibrations")
            _wait_text(page, ".gmos-archive-status", "Added 4 calibration file(s) for 1 file(s)")
            assert rows.count() == 7
            page.click(".gmos-archive-download")
            _wait_text(page, ".gmos-archive-status", "Downloaded 5 of 5 file(s)")
            _wait_text(page, ".gmos-file-message", "6 of 6 file(s) selected")
            listed = page.locator(".gmos-file-table .gmos-file-row").all_inner_texts()
            assert sorted(listed) == sorted([SEED_FILE, "N20170614S0201.fits",
                                             "N20170613S0182.fits", "N20170613S0181.fits",
                                             "N20170702S0178.fits", "N20170702S0179.fits"])
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.locator(".gmos-app-tabs").first.screenshot(
                path=str(ARTIFACTS / "archive_01_downloaded.png"))
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "failure_archive.png"))
            raise
        finally:
            context.close()
    unexpected = [e for e in errors if any(re.search(p, e) for p in FATAL_PAGE_ERRORS)
                  or not any(re.search(p, e) for p in EXPECTED_PAGE_ERRORS)]
    assert not unexpected, unexpected
    assert sorted(p.name for p in playdata.iterdir()) == sorted(listed)
