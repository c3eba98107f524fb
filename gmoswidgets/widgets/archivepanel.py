"""ArchivePanel: "Find data in the archive" - search, add the matching calibrations, download.

Only calls :mod:`gmoswidgets.archive` and shows what it returns.  Searches,
calibration look-ups and downloads run in a background thread; "Cancel"
stops a download between blocks (its ``.part`` is kept, so it resumes).
"""
from __future__ import annotations

import html
import threading
from pathlib import Path

import ipywidgets as W
import numpy as np
from astropy.table import vstack

from ..archive import (OBSERVATION_CLASSES, ArchiveError, archive_url, calibrations_for,
                       download_files, row_tags, search)
from ..data.download import DownloadCancelled, DownloadError
from ..errors import GmosError

__all__ = ["ArchivePanel"]

#: (archive column, heading) shown in the results table.
COLUMNS = (("name", "file"), ("data_label", "data label"), ("object", "object"),
           ("filter_name", "filter"), ("exposure_time", "exptime"), ("detector_binning", "bin"),
           ("detector_roi_setting", "ROI"), ("ut_datetime", "UT"), ("file_size", "size"),
           ("qa_state", "QA"))
_MAX_ROWS = 300


def _cell(value) -> str:
    if value is None or np.ma.is_masked(value):
        return "--"
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


class ArchivePanel(W.VBox):
    """Search the Gemini Observatory Archive, pick files and their calibrations, download them.

    Parameters
    ----------
    directory : path-like, optional
        Where downloaded FITS files go (the tutorial's ``playdata``).
    server : str, optional
        The archive's base URL (default :func:`gmoswidgets.archive.archive_url`:
        ``$GMOSWIDGETS_ARCHIVE_URL`` or the real archive).
    cookie : str, optional
        Session cookie for proprietary data (default ``$GEMINI_ARCHIVE_COOKIE``).
    background : bool
        Work in a thread so the notebook stays responsive.
    """

    def __init__(self, directory=None, *, server: str | None = None, cookie: str | None = None,
                 background: bool = True):
        self.server, self.cookie, self.background = archive_url(server), cookie, background
        self.results = None                  # astropy Table of the rows shown
        self._checks: dict = {}              # file name -> checkbox value
        self._callbacks = []
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        text = dict(layout=W.Layout(width="300px"), style={"description_width": "90px"})
        self.program = W.Text(description="Program", placeholder="GN-2017A-SV-151", **text)
        self.date = W.Text(description="UT date", placeholder="20170614 or 20170601-20170630",
                           **text)
        self.object = W.Text(description="Object", placeholder="M101 or NGC*", **text)
        self.filter = W.Text(description="Filter", placeholder="i", **text)
        self.obsclass = W.Dropdown(description="Class", options=("", *OBSERVATION_CLASSES), **text)
        self.obstype = W.Dropdown(description="Type", options=("", "OBJECT", "BIAS", "FLAT"), **text)
        self.instrument = W.Dropdown(description="Instrument", options=("", "GMOS-N", "GMOS-S",
                                                                        "GMOS"), **text)
        self.binning = W.Dropdown(description="Binning", options=("", "1x1", "2x2", "4x4"), **text)
        for name in ("program", "date", "object", "filter", "obsclass", "obstype", "instrument",
                     "binning"):
            getattr(self, name).add_class(f"gmos-archive-{name}")
        self.caltypes = W.Text(value="bias,flat", description="Calibrations", **text)
        self.processed = W.Checkbox(description="processed", indent=False,
                                    layout=W.Layout(width="110px"))
        self.count = W.BoundedIntText(value=5, min=0, max=50, description="Best",
                                      tooltip="best N per file and type (0: all)",
                                      layout=W.Layout(width="140px"),
                                      style={"description_width": "40px"})
        for name in ("caltypes", "processed", "count"):
            getattr(self, name).add_class(f"gmos-archive-{name}")
        self.directory = W.Text(value=str(directory or ""), description="Into",
                                layout=W.Layout(width="60%"), style={"description_width": "90px"})
        self.search_button = self._button("Search", "search", "gmos-archive-search", self.run_search)
        self.calib_button = self._button("Add the matching calibrations", "plus",
                                         "gmos-archive-calibrations", self.add_calibrations)
        self.download_button = self._button("Download selected", "download",
                                            "gmos-archive-download", self.download_selected)
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("gmos-archive-cancel")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.all_box = W.Checkbox(value=True, description="all", indent=False,
                                  layout=W.Layout(width="60px"))
        self.all_box.observe(lambda ch: self._check_all(ch["new"]), names="value")
        self.table = W.GridBox(layout=W.Layout(grid_gap="0 8px", overflow="auto",
                                               max_height="420px"))
        self.table.add_class("gmos-archive-table")
        self.progress = W.IntProgress(value=0, min=0, max=100, layout=W.Layout(width="60%",
                                                                              visibility="hidden"))
        self.status = W.HTML("")
        self.status.add_class("gmos-archive-status")
        super().__init__([
            W.HTML(f"Search the Gemini Observatory Archive ({html.escape(self.server)}); tick "
                   "files, add the calibrations the archive matches to them, download them "
                   "(checked against the archive's MD5) into the data folder."),
            W.HBox([W.VBox([self.program, self.date, self.object, self.filter]),
                    W.VBox([self.obsclass, self.obstype, self.instrument, self.binning])]),
            W.HBox([self.search_button]),
            self.all_box, self.table,
            W.HBox([self.caltypes, self.processed, self.count, self.calib_button]),
            self.directory, W.HBox([self.download_button, self.cancel_button]),
            self.progress, self.status])
        self.add_class("gmos-archivepanel")

    def _button(self, text, icon, css, action):
        button = W.Button(description=text, icon=icon, layout=W.Layout(width="auto"))
        button.add_class(css)
        button.on_click(lambda _: action())
        return button

    # -- public API -----------------------------------------------------------------------
    def on_downloaded(self, callback) -> None:
        """Call ``callback(directory)`` after a download that fetched or found files."""
        self._callbacks.append(callback)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background job to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def selected(self) -> list:
        """Names of the ticked files."""
        return [name for name, ticked in self._checks.items() if ticked]

    def run_search(self) -> None:
        """Search with the form's criteria; the results replace the table."""
        criteria = {name: getattr(self, name).value.strip() or None
                    for name in ("program", "date", "object", "filter", "obsclass", "obstype",
                                 "instrument", "binning")}
        if not any(criteria.values()):
            self.status.value = "<b>Give at least one criterion</b> (a date, a program, ...)."
            return
        self._start(lambda: self._search(criteria), "Searching ...")

    def add_calibrations(self) -> None:
        """Ask the archive's calibration manager for the ticked files' calibrations; add them."""
        if self.results is None or not self.selected():
            self.status.value = "<b>Search and tick some files first.</b>"
            return
        self._start(self._calibrations, "Asking the archive for calibrations ...")

    def download_selected(self) -> None:
        """Download the ticked files into the directory."""
        if not self.selected():
            self.status.value = "<b>Tick the files to download first.</b>"
            return
        if not self.directory.value.strip():
            self.status.value = "<b>Choose the folder to download into first.</b>"
            return
        self._start(self._download, "Downloading ...", cancellable=True)

    def cancel(self) -> None:
        """Stop the running download (its partial file is kept to resume later)."""
        self._cancel.set()

    # -- jobs (run in the background thread) ------------------------------------------------
    def _search(self, criteria) -> str:
        table = search(**criteria, server=self.server, cookie=self.cookie, cancel=self._cancel)
        self._show(table, replace=True)
        note = f" <b>{html.escape(table.meta['note'])}</b>" if table.meta["truncated"] else ""
        return f"{len(table)} file(s) found.{note}"

    def _calibrations(self) -> str:
        chosen = self.selected()
        cals = calibrations_for(chosen, caltypes=[t for t in self.caltypes.value.split(",") if
                                                  t.strip()],
                                processed=self.processed.value, count=self.count.value or None,
                                server=self.server, cookie=self.cookie, cancel=self._cancel)
        names = [n for n in dict.fromkeys(cals["name"]) if n not in self._checks]
        found = [search(file=name, server=self.server, cookie=self.cookie, cancel=self._cancel)
                 for name in names]
        found = [t for t in found if len(t)]
        if found:
            self._show(vstack(found, metadata_conflicts="silent"), replace=False)
        problems = "; ".join(dict.fromkeys(cals.meta["problems"]))
        extra = f" ({html.escape(problems)})" if problems else ""
        return f"Added {len(found)} calibration file(s) for {len(chosen)} file(s).{extra}"

    def _download(self) -> str:
        chosen = set(self.selected())
        table = self.results[np.array([str(n) in chosen for n in self.results["name"]])]
        total = len(table)

        def progress(name, index, count, done, size):
            fraction = (done / size) if size else 0.0
            self.progress.value = int(100 * (index + fraction) / max(count, 1))
            self.progress.description = f"{index + 1}/{count}"
        target = Path(self.directory.value.strip()).expanduser()
        result = download_files(table, target, server=self.server, cookie=self.cookie,
                                progress=progress, cancel=self._cancel)
        self.progress.value = 100
        lines = [f"Downloaded {len(result.fetched)} of {total} file(s) into "
                 f"{html.escape(str(target))} ({len(result.paths) - len(result.fetched)} were "
                 "already there)."]
        lines += [f"<br><b>{html.escape(name)}</b>: {html.escape(reason)}"
                  for name, reason in result.failed]
        if result.paths:
            for callback in self._callbacks:
                callback(target)
        return "".join(lines)

    # -- plumbing ---------------------------------------------------------------------
    def _start(self, job, busy: str, *, cancellable: bool = False) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.status.value = "<i>Busy: wait for the current job, or cancel it.</i>"
            return
        self._cancel.clear()
        self._set_busy(True, cancellable)
        self.status.value = f"<i>{busy}</i>"
        if self.background:
            self._thread = threading.Thread(target=self._run, args=(job,), daemon=True)
            self._thread.start()
        else:
            self._run(job)

    def _run(self, job) -> None:
        try:
            self.status.value = job()
        except DownloadCancelled:
            self.status.value = ("<b>Cancelled.</b> The partial file is kept: download again "
                                 "to resume.")
        except (ArchiveError, DownloadError, GmosError) as exc:
            self.status.value = f"<b>Failed:</b> {html.escape(str(exc))}"
        finally:
            self._set_busy(False, False)

    def _set_busy(self, busy: bool, cancellable: bool) -> None:
        for button in (self.search_button, self.calib_button, self.download_button):
            button.disabled = busy
        self.cancel_button.disabled = not (busy and cancellable)
        self.progress.layout.visibility = "visible" if busy and cancellable else "hidden"
        if busy and cancellable:
            self.progress.value = 0

    def _show(self, table, *, replace: bool) -> None:
        if replace or self.results is None:
            self.results, self._checks = table, {}
        else:
            self.results = vstack([self.results, table], metadata_conflicts="silent")
        for name in self.results["name"]:
            self._checks.setdefault(str(name), True)
        self._draw()

    def _check_all(self, value: bool) -> None:
        for name in self._checks:
            self._checks[name] = value
        self._draw()

    def _draw(self) -> None:
        cells = [W.HTML("")] + [W.HTML(f"<b>{heading}</b>") for _, heading in COLUMNS]
        cells.append(W.HTML("<b>tags</b>"))
        rows = list(self.results)[:_MAX_ROWS]
        for row in rows:
            name = str(row["name"])
            check = W.Checkbox(value=self._checks.get(name, True), indent=False,
                               layout=W.Layout(width="24px"))
            check.observe(lambda ch, n=name: self._checks.__setitem__(n, ch["new"]), names="value")
            first = W.HTML(html.escape(name))
            first.add_class("gmos-archive-row")
            cells += [check, first]
            cells += [W.Label(_cell(row[key]) if key in row.colnames else "--")
                      for key, _ in COLUMNS[1:]]
            cells.append(W.Label(" ".join(sorted(row_tags(row)))))
        self.table.children = cells
        self.table.layout.grid_template_columns = "24px " + " ".join(["auto"] * (len(COLUMNS) + 1))
        if len(self.results) > _MAX_ROWS:
            self.status.value += f" (showing the first {_MAX_ROWS})"
