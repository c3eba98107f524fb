"""Download the files of a search or calibration table into the tutorial's layout, and tag its rows.

Each file is fetched as the archive stores it (``N...fits.bz2`` from
``/file/``), checked against ``file_md5`` (the MD5 of the ``.bz2``), then
decompressed and, when the table gives it, checked against ``data_md5`` (the
MD5 of the FITS), all through :func:`gmoswidgets.data.download.download`
(``.part`` files, resume, deadline, cancel, bzip2 caps).  File names given
by the archive must be plain names: anything else is refused before a byte
is written.
"""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..data.download import DownloadCancelled, DownloadError, download, safe_file_name
from ..gmos.keywords import GEM_TLM
from ..gmos.tags import tags_of
from ..logutils import get_logger
from .client import cookie_headers, explain
from .config import archive_url

__all__ = ["Fetched", "download_files", "row_tags", "PLAYDATA"]

_log = get_logger("archive")
#: The tutorial's folder of raw files.
PLAYDATA = "playdata"
_TRACKING = {"SIDEREAL", "NON_SIDEREAL", "AZEL_TARGET", "AT_ZENITH"}


@dataclass
class Fetched:
    """What :func:`download_files` did.

    Attributes
    ----------
    paths : list of pathlib.Path
        The FITS files now in the directory (fetched or already there), in table order.
    fetched : list of str
        Names actually downloaded.
    failed : list of (str, str)
        (file name, one-line reason) of the files that could not be had.
    """

    paths: list = field(default_factory=list)
    fetched: list = field(default_factory=list)
    failed: list = field(default_factory=list)


def _value(row, name):
    if name not in row.colnames:
        return None
    value = row[name]
    if np.ma.is_masked(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _archive_tags(row) -> set:
    import ast
    text = _value(row, "types")
    try:
        return set(ast.literal_eval(text)) if text else set()
    except (ValueError, SyntaxError):
        return set()


def row_tags(row) -> frozenset:
    """The tags gmoswidgets would give the file of a jsonsummary row, before it is downloaded.

    The row's values stand in for the headers the tags are computed from
    (:func:`gmoswidgets.gmos.tags.tags_of`); the tracking tags, which need
    headers the summary does not have, come from the archive's own ``types``.
    """
    reduction = str(_value(row, "reduction") or "RAW")
    phu = {"OBSERVAT": _value(row, "telescope") or "", "INSTRUME": _value(row, "instrument") or "",
           "OBSTYPE": _value(row, "observation_type") or "", "OBJECT": _value(row, "object") or "",
           "OBSCLASS": _value(row, "observation_class") or "",
           "OBSMODE": "IMAGE" if _value(row, "mode") == "imaging" else "SPECT",
           "GRATING": _value(row, "disperser") or "", "TRKFRAME": "FK5", "RATRACK": 0.0,
           "DECTRACK": 0.0}
    if reduction != "RAW":
        phu[GEM_TLM] = "archive"
        phu["PREPARE"] = "archive"
        marker = {"PROCESSED_BIAS": "PROCBIAS", "PROCESSED_FLAT": "PROCFLAT",
                  "PROCESSED_FRINGE": "PROCFRNG", "PROCESSED_SCIENCE": "PROCSCI",
                  "PROCESSED_BPM": "PROCBPM"}.get(reduction)
        if marker:
            phu[marker] = "archive"
    tags = set(tags_of(SimpleNamespace(phu=phu))) - _TRACKING
    return frozenset(tags | (_archive_tags(row) & _TRACKING or {"SIDEREAL"}))


def _entries(table) -> list:
    """(stored name, file_md5, data_md5, present) per distinct file of the table."""
    seen, out = set(), []
    for row in table:
        stored = _value(row, "filename") or (_value(row, "name") or "") + ".bz2"
        if stored in seen:
            continue
        seen.add(stored)
        if "url" in row.colnames:              # a calibration table: no URL = not present
            present = _value(row, "url") is not None
        else:
            present = _value(row, "present") is not False
        out.append((stored, _value(row, "file_md5"), _value(row, "data_md5"), present))
    return out


def download_files(table, directory=PLAYDATA, *, server: str | None = None,
                   cookie: str | None = None, progress=None, cancel=None, timeout: float = 60.0,
                   deadline: float | None = 1800.0) -> Fetched:
    """Download, check and decompress the files of a search or calibration table.

    Parameters
    ----------
    table : astropy.table.Table
        From :func:`~gmoswidgets.archive.search` (uses ``filename``, ``file_md5``,
        ``data_md5``) or :func:`~gmoswidgets.archive.calibrations_for` (``filename``,
        ``file_md5``); a file listed twice is fetched once.
    directory : path-like
        Where the FITS files go (default ``playdata``, the tutorial's layout).
    server, cookie
        As for :func:`~gmoswidgets.archive.search`.
    progress : callable, optional
        ``progress(name, index, count, done_bytes, total_bytes)``; None shows a
        tqdm bar per file on stderr, False nothing.
    cancel : object with ``is_set()``, optional
        Stops between blocks; the current file's ``.part`` is kept to resume.
    timeout, deadline : float
        Per network wait, and per file.

    Returns
    -------
    Fetched
        Files already present are not fetched again.  A file that fails (e.g.
        proprietary, HTTP 403) is listed in ``failed`` and the others go on.

    Raises
    ------
    DownloadCancelled
        ``cancel`` was set.
    ArchiveError
        The archive cannot be reached (no network): one line, at the first file.
    """
    base, headers = archive_url(server), cookie_headers(cookie)
    directory = Path(directory)
    entries = _entries(table)
    result = Fetched()
    for index, (stored, md5, data_md5, present) in enumerate(entries):
        try:
            safe_file_name(stored, source="the archive")
            name = stored[:-4] if stored.endswith(".bz2") else stored
            target = directory / name
            if target.exists():
                result.paths.append(target)
                continue
            if not present:
                raise DownloadError("the archive lists it but does not hold it (not present)")
            if progress is None:
                report = True
            elif progress is False:
                report = False
            else:
                def report(done, total, _i=index, _n=name):
                    progress(_n, _i, len(entries), done, total)
            file_url = f"{base}/file/{urllib.parse.quote(stored)}"
            path = download(file_url, directory / stored, md5=md5, data_md5=data_md5,
                            progress=report, timeout=timeout, deadline=deadline, cancel=cancel,
                            headers=headers)
        except DownloadCancelled:
            raise
        except DownloadError as exc:
            if exc.status is None and str(exc).startswith("cannot reach"):
                raise explain(exc, stored) from None     # no network: the rest would fail too
            message = str(explain(exc, stored))
            result.failed.append((stored, message))
            _log.warning(message if stored in message else f"{stored}: {message}")
            continue
        result.paths.append(path)
        result.fetched.append(path.name)
    return result
