"""DownloadPanel: fetch real GMOS data (the tutorial package, or archive files by name)."""
from __future__ import annotations

import html
import re
import threading
from pathlib import Path

import ipywidgets as W

from ..archive.config import archive_url as _archive_url
from ..data.download import (TUTORIAL_PACKAGE_URL, DownloadCancelled, DownloadError,
                             download_archive_files, download_tutorial_package)

__all__ = ["DownloadPanel"]


class DownloadPanel(W.VBox):
    """Buttons that download real data into a directory, with the outcome shown below.

    Parameters
    ----------
    directory : path-like, optional
        Where files go (raw archive files directly; the tutorial package is
        unpacked there and its ``playdata`` folder used).
    archive_url : str, optional
        The Gemini Observatory Archive (default :func:`gmoswidgets.archive.config.archive_url`).
    package_url : str
        The tutorial package (tests use a local server).
    background : bool
        Download in a thread so the notebook stays responsive.
    """

    def __init__(self, directory=None, *, archive_url: str | None = None,
                 package_url: str = TUTORIAL_PACKAGE_URL, background: bool = True):
        self.archive_url = _archive_url(archive_url)
        self.package_url, self.background = package_url, background
        self._callbacks = []
        self._thread: threading.Thread | None = None
        self.directory = W.Text(value=str(directory or ""), description="Into",
                                layout=W.Layout(width="60%"))
        self.names = W.Textarea(placeholder="N20170614S0201.fits N20170614S0202.fits ...",
                                description="Files", layout=W.Layout(width="60%", height="60px"))
        self.sha256 = W.Text(placeholder="its SHA-256 (64 hex digits), checked before unpacking",
                             description="Package", layout=W.Layout(width="60%"))
        self.sha256.add_class("gmos-download-sha256")
        self.archive_button = W.Button(description="Download from the archive", icon="download")
        self.package_button = W.Button(description="Download the tutorial package", icon="download")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("gmos-download-cancel")
        self.cancel_button.on_click(lambda _: self.cancel())
        self._cancel = threading.Event()
        self.archive_button.add_class("gmos-download-archive")
        self.package_button.add_class("gmos-download-package")
        self.status = W.HTML("")
        self.status.add_class("gmos-download-status")
        self.archive_button.on_click(lambda _: self._start(self._archive))
        self.package_button.on_click(lambda _: self._start(self._package))
        super().__init__([
            W.HTML("Real data: the raw files of the tutorial from the Gemini Observatory Archive "
                   "(by name), or the tutorial's whole data package. Downloads resume if "
                   "interrupted and are checked against the archive's MD5."),
            self.directory, self.names, self.sha256,
            W.HBox([self.archive_button, self.package_button, self.cancel_button]),
            self.status])
        self.add_class("gmos-download")

    def on_downloaded(self, callback) -> None:
        """Call ``callback(directory)`` after a successful download."""
        self._callbacks.append(callback)

    def cancel(self) -> None:
        """Stop the running download between blocks (its ``.part`` is kept to resume)."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background download to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _start(self, job) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.status.value = "<i>A download is already running.</i>"
            return
        target = Path(self.directory.value).expanduser()
        if not self.directory.value.strip():
            self.status.value = "<b>Choose a directory first.</b>"
            return
        self._cancel.clear()
        self._set_busy(True)
        if self.background:
            self._thread = threading.Thread(target=self._run, args=(job, target), daemon=True)
            self._thread.start()
        else:
            self._run(job, target)

    def _run(self, job, target: Path) -> None:
        try:
            message, folder = job(target)
        except DownloadCancelled:
            self.status.value = ("<b>Cancelled.</b> The partial file is kept: download again "
                                 "to resume.")
        except DownloadError as exc:
            self.status.value = f"<b>Download failed:</b> {html.escape(str(exc))}"
        else:
            self.status.value = message
            for callback in self._callbacks:
                callback(folder)
        finally:
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.archive_button.disabled = self.package_button.disabled = busy
        self.cancel_button.disabled = not busy
        if busy:
            self.status.value = "<i>Downloading ...</i>"

    def _archive(self, target: Path):
        names = [n for n in re.split(r"[\s,;]+", self.names.value) if n]
        if not names:
            raise DownloadError("give the file names to fetch, e.g. N20170614S0201.fits")
        paths = download_archive_files(names, target, base=self.archive_url, progress=False,
                                       cancel=self._cancel)
        return f"Downloaded {len(paths)} file(s) into {html.escape(str(target))}.", target

    def _package(self, target: Path):
        playdata = download_tutorial_package(target, url=self.package_url, progress=False,
                                             sha256=self.sha256.value.strip() or None,
                                             cancel=self._cancel)
        count = len(list(playdata.glob("*.fits")))
        return (f"Unpacked the tutorial package: {count} FITS file(s) in "
                f"{html.escape(str(playdata))}.", playdata)
