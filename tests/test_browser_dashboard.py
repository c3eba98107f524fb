"""The Voilà dashboard in headless Chromium: the tutorial clicked through, with screenshots.

Debian's ``chromium`` is driven by Playwright's Python package through
``executable_path`` (Playwright's own browser download is never used).
Without Chromium or Playwright these tests skip, except in CI (``$CI`` set)
where that is a failure.  Aladin Lite is served from the copy vendored in
gmoswidgets, so no request leaves the machine except those listed in
:data:`EXPECTED_PAGE_ERRORS`.

Screenshots and the measured timings go to ``test-artifacts/browser/``.
With ``GMOSWIDGETS_UPDATE_SCREENSHOT=1`` the final screenshot also replaces
the README's ``docs/dashboard.png``.  ``GMOSWIDGETS_BROWSER_BINNING`` (default
2, the tutorial's; 4 is about 25 s faster) sets the binning of the dataset
reduced in the browser.
"""
import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from gmoswidgets import read_frame
from gmoswidgets.dashboard.server import DashboardServer, find_dashboard
from gmoswidgets.data.tutorial import BINNING_ENV

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
README_SCREENSHOT = ROOT / "docs" / "dashboard.png"
BINNING = int(os.environ.get("GMOSWIDGETS_BROWSER_BINNING", "2"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
#: Page errors that are expected without internet: Aladin Lite's HiPS survey
#: background and its start-up logger cannot reach the CDS servers.
EXPECTED_PAGE_ERRORS = (r"Failed to fetch", r"HiPS not found", r"rootURL is not defined",
                        r"NetworkError", r"alasky", r"cds\.unistra\.fr")
#: Page errors that are never expected, even if they match the above: a widget
#: loading its code from a CDN, or bqplot-gl missing.
FATAL_PAGE_ERRORS = (r"dynamically imported module", r"getScales is not a function",
                     r"Could not create a view")
RENDER_TIMEOUT = 120_000        # ms: a cold first render takes up to ~20 s on 2 busy cores
REDUCE_TIMEOUT = 400_000        # ms: one reduction in the browser


def _chromium() -> str | None:
    for candidate in (os.environ.get("GMOSWIDGETS_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _require_browser():
    """Playwright's sync API and the Chromium binary, or skip (fail in CI)."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright Python package is not installed (pip install playwright)"
    chromium = _chromium()
    if problem is None and chromium is None:
        problem = ("no Chromium found: install Debian's chromium package "
                   "(apt-get install chromium) or set GMOSWIDGETS_CHROMIUM to its path")
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI, but {problem}")
        pytest.skip(problem)
    return sync_playwright, chromium


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """Voilà serving the dashboard on a fresh dataset, and one Chromium page to walk through it.

    The tests below are the tutorial's stages, in order, on this one page.
    """
    sync_playwright, chromium = _require_browser()
    from gmoswidgets.data import make_tutorial_dataset
    data_dir = tmp_path_factory.mktemp("browser_data")
    make_tutorial_dataset(data_dir / "playdata", binning=BINNING)
    server = DashboardServer(find_dashboard(), data_dir, cull_idle=30,
                             env={BINNING_ENV: str(BINNING)})
    started = time.monotonic()
    server.start()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 2400})  # tall: every panel fits, no inner scrolling
            try:
                walk = Walk(context.new_page(), server, started)
                yield walk
                (ARTIFACTS / "timings.json").write_text(json.dumps(walk.timings, indent=2) + "\n")
                (ARTIFACTS / "page_errors.json").write_text(json.dumps(walk.errors, indent=2) + "\n")
                print("\nbrowser timings:", walk.timings)
            finally:
                context.close()
    finally:
        server.stop()


class Walk:
    """One browser page on the dashboard, with its page errors, screenshots and timings."""

    def __init__(self, page, server, started):
        self.page = page
        self.server = server
        self.started = started
        self.done: set = set()
        self.errors: list = []
        self.timings: dict = {}
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def stage(self, name: str, *needs: str):
        """Run one stage of the walk: needs earlier stages; screenshot on failure."""
        missing = [n for n in needs if n not in self.done]
        if missing:
            pytest.fail(f"an earlier stage failed: {', '.join(missing)}")
        try:
            yield self.page
        except BaseException:
            self.page.screenshot(path=str(ARTIFACTS / f"failure_{name}.png"))
            raise
        self.done.add(name)

    def unexpected_errors(self) -> list:
        return [e for e in self.errors if any(re.search(p, e) for p in FATAL_PAGE_ERRORS)
                or not any(re.search(p, e) for p in EXPECTED_PAGE_ERRORS)]

    def shot(self, name: str, selector: str | None = None) -> Path:
        path = ARTIFACTS / f"{name}.png"
        target = self.page.locator(selector).first if selector else self.page
        target.screenshot(path=str(path))
        return path

    def tab(self, label: str) -> None:
        self.page.locator(".gmos-app-tabs .lm-TabBar-tab", has_text=label).click()

    def visible(self, selector: str):
        return self.page.locator(f"{selector} >> visible=true").first

    def wait_text(self, selector: str, text: str, timeout: float = REDUCE_TIMEOUT) -> None:
        self.page.wait_for_function(
            "([sel, text]) => [...document.querySelectorAll(sel)].some(e => e.innerText.includes(text))",
            arg=[selector, text], timeout=timeout)

    def wait_drawn(self, locator, timeout: float = 60.0, min_std: float = 5.0) -> np.ndarray:
        """Wait until an element's screenshot is not flat (an image was drawn); return its pixels."""
        deadline = time.monotonic() + timeout
        while True:
            pixels = _element_pixels(locator)
            if pixels.std() > min_std or time.monotonic() > deadline:
                return pixels
            self.page.wait_for_timeout(300)

    def wait_stage(self, stage: str) -> None:
        """Wait for the app's status line to report the end of a reduction (or fail at once)."""
        self.page.wait_for_function(
            "(stage) => { const t = document.querySelector('.gmos-app-status').innerText;"
            " return t.includes(stage + ': wrote') || t.includes('stopped before its end'); }",
            arg=stage, timeout=REDUCE_TIMEOUT)
        status = self.page.locator(".gmos-app-status").inner_text()
        error = self.page.locator(".gmos-step-error").inner_text()
        assert f"{stage}: wrote" in status, f"{status}\n{error}"


def _element_pixels(locator) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("L"), dtype=float)


def test_dashboard_renders(walk):
    with walk.stage("render") as page:
        page.goto(walk.server.url, wait_until="domcontentloaded", timeout=RENDER_TIMEOUT)
        page.wait_for_selector(".gmos-file-table .gmos-file-row", timeout=RENDER_TIMEOUT)
        walk.timings["voila_start_to_rendered_s"] = round(time.monotonic() - walk.started, 1)
        walk.wait_text(".gmos-file-message", "20 of 20 file(s) selected", 30_000)


def test_select_files(walk):
    with walk.stage("select", "render") as page:       # as dataselect --tags BIAS
        tags = page.locator(".gmos-tags input")
        tags.fill("BIAS")
        tags.press("Enter")
        page.click(".gmos-apply-filter")
        walk.wait_text(".gmos-file-message", "10 of 20 file(s) selected", 30_000)
        page.wait_for_function(
            "document.querySelectorAll('.gmos-file-table .gmos-file-row').length == 10",
            timeout=30_000)
        assert page.locator(".gmos-list-name input").input_value() == "list_of_bias.txt"
        walk.shot("01_file_table", ".gmos-filepanel")


def test_make_bias_and_look_at_a_step(walk):
    with walk.stage("bias", "render") as page:
        # the bias goes to caldb by hand below, as the tutorial's `caldb add`
        page.locator(".widget-checkbox", has_text="caldb add the result").locator("input").uncheck()
        walk.tab("3. Master bias")
        page.click(".gmos-make-bias")
        walk.wait_stage("bias")
        walk.visible(".gmos-step-list").locator(".gmos-step", has_text="overscanCorrect").click()
        walk.wait_text(".gmos-step-output", "overscanCorrect", 30_000)
        figure = page.locator(".gmos-step-output .gmos-image-figure").first
        figure.scroll_into_view_if_needed()
        assert walk.wait_drawn(figure).std() > 5, "the step's image is blank"
        walk.shot("02_overscan_corrected", ".gmos-steppanel")


def test_caldb_add_the_bias(walk):
    with walk.stage("caldb", "bias") as page:
        walk.tab("2. Calibration database")
        page.locator(".gmos-caldb-path input").fill("N20170613S0180_bias.fits")
        page.click(".gmos-caldb-add")
        walk.wait_text(".gmos-caldb-table", "N20170613S0180_bias.fits", 30_000)
        walk.wait_text(".gmos-caldb-table", "processed_bias", 30_000)
        walk.shot("03_caldb_table", ".gmos-caldbpanel")


def test_make_flat(walk):
    with walk.stage("flat", "caldb") as page:           # this time the app adds it to caldb
        page.locator(".widget-checkbox", has_text="caldb add the result").locator("input").check()
        walk.tab("4. Master flat")
        page.click(".gmos-make-flat")
        walk.wait_stage("flat")
        walk.tab("2. Calibration database")
        walk.wait_text(".gmos-caldb-table", "N20170702S0178_flat.fits", 30_000)


def test_reduce_science_shows_the_stack_and_the_sky(walk):
    with walk.stage("science", "flat") as page:
        walk.tab("5. Science")
        clicked = time.monotonic()
        page.click(".gmos-reduce-science")
        walk.tab("6. Stack and sky")
        walk.wait_text(".gmos-imageview", "N20170614S0201_stack.fits", REDUCE_TIMEOUT)
        result = walk.visible(".gmos-imageview")
        assert walk.wait_drawn(result.locator(".gmos-image-figure")).std() > 5, "blank stack"
        walk.timings[f"reduce_science_click_to_stack_s_{BINNING}x{BINNING}"] = round(
            time.monotonic() - clicked, 1)
        walk.wait_stage("science")
        # the source markers on the stack are those of its OBJCAT
        stack = read_frame(walk.server.data_dir / "playground" / "N20170614S0201_stack.fits")
        catalogued = sum(len(ext.objcat) for ext in stack if ext.objcat is not None)
        walk.timings["stack_objcat_sources"] = catalogued
        assert catalogued > 100
        assert result.locator(".gmos-image-figure .dot").count() == catalogued
        # the SkyView: Aladin Lite (the local copy) draws the frames' footprints
        page.locator(".gmos-aladin canvas >> visible=true").first.wait_for(timeout=60_000)
        sky = page.locator(".gmos-skyview").first
        sky.scroll_into_view_if_needed()
        assert walk.wait_drawn(sky).std() > 5, "the SkyView is blank"
        final = walk.shot("04_stack_and_sky", ".gmos-app-tabs")
        if os.environ.get("GMOSWIDGETS_UPDATE_SCREENSHOT"):
            shutil.copy(final, README_SCREENSHOT)


def test_detected_sources_are_marked(walk):
    with walk.stage("sources", "science") as page:
        # the first detectSources runs on the mosaics (the second, on the stack)
        walk.visible(".gmos-step-list").locator(".gmos-step", has_text="detectSources").first.click()
        walk.wait_text(".gmos-step-output", "detectSources", 30_000)
        page.locator(".gmos-step-output .gmos-image-figure").first.scroll_into_view_if_needed()
        page.wait_for_function(
            "document.querySelectorAll('.gmos-step-output .gmos-image-figure .dot').length > 10",
            timeout=30_000)
        walk.shot("06_detected_sources", ".gmos-steppanel")


def test_stack_readout(walk):
    with walk.stage("readout", "science") as page:
        walk.tab("6. Stack and sky")
        result = walk.visible(".gmos-imageview")
        result.scroll_into_view_if_needed()
        box = result.locator(".gmos-image-figure svg image").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        readout = result.locator(".gmos-readout")
        page.wait_for_function("(el) => /value=.*RA=/.test(el.innerText)",
                               arg=readout.element_handle(), timeout=30_000)
        text = readout.inner_text()
        assert "ext=1" in text and "VAR=" in text, text


def test_no_unexpected_page_errors(walk):
    assert "render" in walk.done
    assert not walk.unexpected_errors(), walk.unexpected_errors()
