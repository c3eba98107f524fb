"""Download real GMOS data: the tutorial data package and raw files from the archive.

Downloads stream to a ``.part`` file beside the destination and are renamed
only when complete (and checksum-verified where the server gives an MD5), so
the final name never holds half a file.  An interrupted download keeps its
``.part`` file and resumes from it with an HTTP Range request next time;
an HTTP error or a checksum mismatch deletes it.  ``.bz2`` files are
decompressed (streaming) after download, the archive's usual delivery.

Only the Python standard library is used (urllib, tarfile, bz2), so this
works in a plain ``pip install`` and on Binder.
"""
from __future__ import annotations

import base64
import bz2
import hashlib
import json
import os
import shutil
import socket
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import GmosError

__all__ = ["DownloadError", "download", "download_archive_files", "download_tutorial_package",
           "TUTORIAL_PACKAGE_URL", "ARCHIVE_URL"]

#: The DRAGONS GMOS imaging tutorial's data package (see the seed's "Downloading the tutorial datasets").
TUTORIAL_PACKAGE_URL = ("http://www.gemini.edu/sciops/data/software/datapkgs/"
                        "gmosimg_tutorial_datapkg-v1.tar")
#: The Gemini Observatory Archive.
ARCHIVE_URL = "https://archive.gemini.edu"
_CHUNK = 1 << 20


class DownloadError(GmosError):
    """A download failed: offline, HTTP error, checksum mismatch or bad archive."""


def _open_url(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "gmoswidgets"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            return None  # the .part file is already complete
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url}: {reason} (are you offline?)") from None


def _server_md5(response) -> str | None:
    value = response.headers.get("Content-MD5")
    if value:
        try:
            return base64.b64decode(value).hex()
        except ValueError:
            return None
    return None


def _md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest, md5: str | None = None, progress: bool = True,
             timeout: float = 60.0, decompress: bool = True) -> Path:
    """Download ``url`` to ``dest``, resumably, and return the final path.

    Parameters
    ----------
    url : str
        The file to fetch (http or https).
    dest : path-like
        Destination file, or an existing directory (the URL's file name is used).
    md5 : str, optional
        Expected MD5 of the downloaded bytes; the server's ``Content-MD5`` header is
        used when this is not given.
    progress : bool
        Show a tqdm progress bar on stderr.
    timeout : float
        Socket timeout in seconds.
    decompress : bool
        Decompress a ``.bz2`` download and return the decompressed file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DownloadError
        Offline, HTTP error, checksum mismatch, or a corrupt ``.bz2``.
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / url.rstrip("/").rsplit("/", 1)[-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    response = _open_url(url, start, timeout)
    expected = md5
    if response is not None:
        with response:
            if start and response.status != 206:
                start = 0  # the server ignored the Range request: start again
            expected = expected or (None if start else _server_md5(response))
            total = response.headers.get("Content-Length")
            total = int(total) + start if total is not None else None
            _stream(response, part, start, total, progress, dest.name)
    if expected and _md5_of(part) != expected.lower():
        part.unlink()
        raise DownloadError(f"checksum mismatch for {url}: expected md5 {expected}; "
                            "the partial file was deleted, try again")
    os.replace(part, dest)
    if decompress and dest.suffix == ".bz2":
        return _bunzip2(dest)
    return dest


def _stream(response, part: Path, start: int, total, progress: bool, label: str) -> None:
    from tqdm import tqdm
    with open(part, "ab" if start else "wb") as out, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label,
                 disable=not progress, leave=False) as bar:
        while True:
            try:
                block = response.read(_CHUNK)
            except (socket.timeout, ConnectionError, OSError) as exc:
                raise DownloadError(f"download of {label} interrupted ({exc}); run it again to resume "
                                    f"from {part.stat().st_size if part.exists() else 0} bytes") from None
            if not block:
                break
            out.write(block)
            bar.update(len(block))
    if total is not None and part.stat().st_size < total:
        raise DownloadError(f"download of {label} ended early ({part.stat().st_size} of {total} bytes); "
                            "run it again to resume")


def _bunzip2(path: Path) -> Path:
    """Decompress ``x.fits.bz2`` to ``x.fits`` (atomically) and delete the ``.bz2``."""
    target = path.with_suffix("")
    tmp = target.with_name(target.name + ".part")
    try:
        with bz2.open(path, "rb") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    except (OSError, EOFError) as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"{path.name} is not a valid bzip2 file ({exc})") from None
    os.replace(tmp, target)
    path.unlink()
    return target


def download_tutorial_package(directory, url: str = TUTORIAL_PACKAGE_URL, progress: bool = True,
                              timeout: float = 60.0) -> Path:
    """Fetch and unpack the tutorial data package, then bunzip2 its ``playdata`` files.

    Parameters
    ----------
    directory : path-like
        Where to unpack (the package holds ``gmosimg_tutorial/playdata``).
    url : str
        The package's address (the DRAGONS tutorial's by default).

    Returns
    -------
    pathlib.Path
        The ``playdata`` directory.
    """
    directory = Path(directory)
    tar_path = download(url, directory, progress=progress, timeout=timeout, decompress=False)
    try:
        with tarfile.open(tar_path) as tar:
            tar.extractall(directory, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DownloadError(f"{tar_path.name} is not a valid tar file ({exc})") from None
    playdata = next((p for p in directory.rglob("playdata") if p.is_dir()), directory)
    for compressed in sorted(playdata.glob("*.bz2")):
        _bunzip2(compressed)
    tar_path.unlink()
    return playdata


def _archive_entry(name: str, base: str, timeout: float) -> dict:
    """The archive's record of a file (``jsonfilelist``): stored name and MD5, if it gives them."""
    response = _open_url(f"{base}/jsonfilelist/{name}", 0, timeout)
    with response:
        try:
            entries = json.load(response)
        except ValueError:
            return {}
    for entry in entries if isinstance(entries, list) else []:
        if name in (entry.get("name"), entry.get("filename")):
            return entry
    return {}


def download_archive_files(names, directory, base: str = ARCHIVE_URL, progress: bool = True,
                           timeout: float = 60.0) -> list:
    """Download raw files by name (``N20170614S0201.fits``) from the Gemini Observatory Archive.

    The archive stores files bzip2-compressed; the stored file is fetched,
    checked against the archive's ``file_md5`` and decompressed.

    Parameters
    ----------
    names : iterable of str
        File names as the archive lists them (with or without ``.bz2``).
    directory : path-like
        Destination directory.
    base : str
        Archive address (tests point it at a local server).

    Returns
    -------
    list of pathlib.Path
        The decompressed FITS files (files already present are not fetched again).
    """
    out = []
    for name in names:
        stem = name[:-4] if name.endswith(".bz2") else name
        target = Path(directory) / stem
        if target.exists():
            out.append(target)
            continue
        entry = _archive_entry(stem, base, timeout)
        stored = entry.get("filename") or name
        out.append(download(f"{base}/file/{stored}", Path(directory) / stored,
                            md5=entry.get("file_md5"), progress=progress, timeout=timeout))
    return out
