"""Download real GMOS data: the tutorial data package and raw files from the archive.

Rules every download follows:

* Bytes stream to a ``.part`` file beside the destination, which is renamed
  only when complete and checked (MD5 or SHA-256 where known), so a final
  name never holds half a file.
* An interrupted download (network error, HTTP 5xx, cancel, deadline) keeps
  its ``.part`` and resumes from it with an HTTP Range request next time; the
  final checksum guards the joined file.  A 4xx error (the file is gone or
  forbidden) and a checksum mismatch delete the ``.part``.  On HTTP 416
  ("range not satisfiable") the ``.part`` is accepted only if it matches the
  expected checksum; otherwise it is deleted and the file fetched whole.
* A body without ``Content-Length`` is accepted only with a size cap
  (``max_bytes``), and one delimited by the connection closing (neither a
  length nor chunked encoding) only when a checksum can prove it complete.
* ``deadline`` bounds the whole transfer (a server dripping bytes fails),
  ``timeout`` each network wait; ``cancel`` (anything with ``is_set()``, e.g.
  a :class:`threading.Event`) stops it between blocks.
* ``.bz2`` files are decompressed (streaming) with caps on the output size
  and on the compression ratio (a bzip2 bomb fails), to a ``.part`` first.
* The tutorial package is unpacked into a hidden staging folder beside the
  target, checked member by member (regular files and folders only, no
  absolute or ``..`` names, no sparse or oversized members, total size
  capped), decompressed there, and only then moved into place: a failure
  leaves nothing behind, and the user's own files are never touched.

Only the Python standard library is used (urllib, tarfile, bz2), so this
works in a plain ``pip install`` and on Binder.
"""
from __future__ import annotations

import bz2
import hashlib
import html
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import __version__
from ..errors import GmosError

__all__ = ["DownloadError", "DownloadCancelled", "UnpackLimits", "download", "open_url",
           "read_body", "bunzip2", "safe_file_name", "download_archive_files",
           "download_tutorial_package", "TUTORIAL_PACKAGE_URL", "TUTORIAL_PACKAGE_SHA256",
           "TUTORIAL_SHA256_ENV", "USER_AGENT"]

#: The DRAGONS GMOS imaging tutorial's data package (see the seed's "Downloading the
#: tutorial datasets"), over https.
TUTORIAL_PACKAGE_URL = ("https://www.gemini.edu/sciops/data/software/datapkgs/"
                        "gmosimg_tutorial_datapkg-v1.tar")
#: The package's SHA-256.  Not known: it was written with no internet access, and no
#: copy of the package or of its checksum was at hand.  None fails closed: the package
#: is not unpacked until a checksum is given (``sha256=`` or ``$GMOSWIDGETS_TUTORIAL_SHA256``).
TUTORIAL_PACKAGE_SHA256: str | None = None
#: Environment variable giving the package's SHA-256 when :data:`TUTORIAL_PACKAGE_SHA256` is None.
TUTORIAL_SHA256_ENV = "GMOSWIDGETS_TUTORIAL_SHA256"
#: Sent with every request (the archive blocks clients without one).
USER_AGENT = f"gmoswidgets/{__version__}"
_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class DownloadError(GmosError):
    """A download failed: offline, HTTP error, checksum mismatch, deadline or bad archive.

    Attributes
    ----------
    status : int or None
        The HTTP status, when the server answered with an error.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class DownloadCancelled(DownloadError):
    """The user cancelled; the ``.part`` file is kept so the download can resume."""


@dataclass(frozen=True)
class UnpackLimits:
    """Caps on what a download may unpack to (a bzip2 bomb or a huge tar member fails).

    Attributes
    ----------
    max_download : int
        Bytes of one download whose size the server does not announce.
    max_total : int
        Bytes of all the files unpacked from one package.
    max_member : int
        Bytes of one file, as stored in the tar and after decompression.
    max_ratio : float
        Decompressed bytes per compressed byte, checked once ``ratio_floor`` bytes are out.
    ratio_floor : int
        Output size below which the ratio is not checked (small files compress well).
    """

    max_download: int = 4 << 30
    max_total: int = 8 << 30
    max_member: int = 1 << 30
    max_ratio: float = 1000.0
    ratio_floor: int = 1 << 20


def safe_file_name(name: str, *, source: str = "the server") -> str:
    """Return ``name`` if it is a plain file name, else raise :class:`DownloadError`.

    A plain name has no directory part, no ``..``, no leading dot and only
    letters, digits and ``_.+-``; names given by a server must pass this
    before anything is written under them.
    """
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise DownloadError(f"refusing the file name {name!r} given by {source}: "
                            "not a plain file name")
    return name


def _error_page_text(exc: urllib.error.HTTPError) -> str:
    """A short line from an HTTP error page (its <title> or first text), or ''."""
    try:
        body = exc.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    title = re.search(r"<title[^>]*>(.*?)</title>", body, re.I | re.S)
    text = title.group(1) if title else re.sub(r"<[^>]+>", " ", re.sub(r"<!--|-->", " ", body))
    text = " ".join(html.unescape(text).split())
    return text[:160]


def open_url(url: str, *, start: int = 0, timeout: float = 60.0, headers=None):
    """Open ``url`` (from byte ``start`` with a Range request) and return the response.

    Returns
    -------
    http.client.HTTPResponse or None
        None when ``start`` > 0 and the server answers 416 (range not satisfiable).

    Raises
    ------
    DownloadError
        One line: the HTTP status and the server's error page title, or "cannot reach".
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            return None
        page = _error_page_text(exc)
        detail = f": {page}" if page and page.lower() not in exc.reason.lower() else ""
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}{detail}", exc.code) from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url}: {reason} (are you offline?)") from None


def read_body(response, *, deadline: float | None = None, cancel=None, max_bytes: int = 64 << 20,
              label: str = "the reply") -> bytes:
    """Read a whole (small) response body under a deadline, a cancel flag and a size cap."""
    chunks, size = [], 0
    for block in _blocks(response, time.monotonic() + deadline if deadline else None, cancel,
                         label):
        size += len(block)
        if size > max_bytes:
            raise DownloadError(f"{label} is larger than {max_bytes} bytes: refused")
        chunks.append(block)
    return b"".join(chunks)


def _blocks(response, end: float | None, cancel, label: str):
    """Yield the body's blocks as they arrive (read1: one network read at a time)."""
    reader = getattr(response, "read1", response.read)
    while True:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(f"download of {label} cancelled")
        if end is not None and time.monotonic() > end:
            raise DownloadError(f"download of {label} took longer than its deadline: "
                                "the server is too slow (run it again to resume)")
        try:
            block = reader(_CHUNK)
        except (socket.timeout, ConnectionError, OSError, ValueError) as exc:
            raise DownloadError(f"download of {label} interrupted ({exc.__class__.__name__}: "
                                f"{exc}); run it again to resume") from None
        except Exception as exc:  # http.client.IncompleteRead: a chunked body cut short
            raise DownloadError(f"download of {label} ended early ({exc.__class__.__name__}); "
                                "run it again to resume") from None
        if not block:
            return
        yield block


def _digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, md5: str | None, sha256: str | None) -> str | None:
    """The first checksum that does not match, as 'md5 X (got Y)', or None."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            got = _digest_of(path, algorithm)
            if got != expected.lower():
                return f"expected {algorithm} {expected.lower()}, got {got}"
    return None


def download(url: str, dest, *, md5: str | None = None, sha256: str | None = None,
             progress=True, timeout: float = 60.0, deadline: float | None = 3600.0, cancel=None,
             max_bytes: int | None = None, decompress: bool = True, headers=None,
             limits: UnpackLimits = UnpackLimits(), data_md5: str | None = None) -> Path:
    """Download ``url`` to ``dest``, resumably, and return the final path.

    Parameters
    ----------
    url : str
        The file to fetch (http or https).
    dest : path-like
        Destination file, or an existing directory (the URL's file name is used,
        if it is a plain file name).
    md5, sha256 : str, optional
        Expected checksums of the downloaded bytes.
    progress : bool or callable
        Show a tqdm bar on stderr (True), nothing (False), or call
        ``progress(done_bytes, total_bytes_or_None)`` after each block.
    timeout : float
        Seconds to wait for any one network event.
    deadline : float or None
        Seconds for the whole transfer (None: no limit).
    cancel : object with ``is_set()``, optional
        Checked between blocks; when set, :class:`DownloadCancelled` is raised.
    max_bytes : int, optional
        Refuse a file larger than this; the cap for a body without
        ``Content-Length`` (default ``limits.max_download``).
    decompress : bool
        Decompress a ``.bz2`` download and return the decompressed file.
    headers : dict, optional
        Extra request headers (e.g. the archive's cookie).
    limits : UnpackLimits
        Caps on decompression.
    data_md5 : str, optional
        Expected MD5 of the decompressed file (the archive's ``data_md5``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DownloadError
        Offline, HTTP error, checksum mismatch, too large, too slow, or a corrupt ``.bz2``.
    DownloadCancelled
        ``cancel`` was set.
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / safe_file_name(url.split("?")[0].rstrip("/").rsplit("/", 1)[-1],
                                     source=url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    cap = max_bytes or limits.max_download
    end = time.monotonic() + deadline if deadline else None
    for _attempt in range(2):
        start = part.stat().st_size if part.exists() else 0
        try:
            response = open_url(url, start=start, timeout=timeout, headers=headers)
        except DownloadError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                part.unlink(missing_ok=True)   # gone or forbidden: the partial bytes are useless
            raise
        if response is None:                     # 416: is the .part already the whole file?
            if (md5 or sha256) and _check(part, md5, sha256) is None:
                break
            part.unlink()                        # stale or unverifiable: fetch it whole
            continue
        with response:
            if start and response.status != 206:
                start = 0                        # the server ignored the Range request
            length = response.headers.get("Content-Length")
            total = int(length) + start if length is not None else None
            if total is not None and total > cap:
                raise DownloadError(f"{url} is {total} bytes, more than the {cap} allowed")
            if total is None and not getattr(response, "chunked", False) and not (md5 or sha256):
                raise DownloadError(f"{url}: the server sent no length and no checksum is known, "
                                    "so a truncated reply could not be told apart: refused")
            _stream(response, part, start, total, cap, progress, dest.name, end, cancel)
        break
    problem = _check(part, md5, sha256)
    if problem:
        part.unlink()
        raise DownloadError(f"checksum mismatch for {url}: {problem}; the partial file was "
                            "deleted, try again")
    os.replace(part, dest)
    if decompress and dest.suffix == ".bz2":
        return bunzip2(dest, limits=limits, data_md5=data_md5, cancel=cancel)
    return dest


def _progress_bar(progress, total, start, label):
    if callable(progress):
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label,
                disable=not progress, leave=False)


def _stream(response, part: Path, start: int, total, cap: int, progress, label: str, end,
            cancel) -> None:
    bar = _progress_bar(progress, total, start, label)
    done, too_big = start, False
    try:
        with open(part, "ab" if start else "wb") as out:
            for block in _blocks(response, end, cancel, label):
                done += len(block)
                if done > cap:
                    too_big = True
                    break
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
                else:
                    progress(done, total)
    finally:
        if bar is not None:
            bar.close()
    if too_big:
        part.unlink()
        raise DownloadError(f"download of {label} exceeds the {cap} bytes allowed: refused")
    if total is not None and done < total:
        raise DownloadError(f"download of {label} ended early ({done} of {total} bytes); "
                            "run it again to resume")


def bunzip2(path: Path, *, limits: UnpackLimits = UnpackLimits(), data_md5: str | None = None,
            cancel=None, remove: bool = True) -> Path:
    """Decompress ``x.fits.bz2`` to ``x.fits`` (atomically, with size and ratio caps).

    Parameters
    ----------
    path : pathlib.Path
        The ``.bz2`` file.
    limits : UnpackLimits
        ``max_member`` caps the output, ``max_ratio`` the output per input byte.
    data_md5 : str, optional
        Expected MD5 of the output.
    cancel : object with ``is_set()``, optional
    remove : bool
        Delete the ``.bz2`` after success.

    Returns
    -------
    pathlib.Path
        The decompressed file.

    Raises
    ------
    DownloadError
        Not bzip2, truncated, too large, too compressed, or a checksum mismatch;
        nothing is left under the output name.
    """
    path = Path(path)
    target = path.with_suffix("")
    tmp = target.with_name(target.name + ".part")
    digest = hashlib.md5()
    try:
        _bunzip2_stream(path, tmp, limits, digest, cancel)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if data_md5 and digest.hexdigest() != data_md5.lower():
        tmp.unlink()
        raise DownloadError(f"{path.name} decompresses to data with md5 {digest.hexdigest()}, "
                            f"not the archive's {data_md5.lower()}: deleted")
    os.replace(tmp, target)
    if remove:
        path.unlink()
    return target


def _bunzip2_stream(path: Path, tmp: Path, limits: UnpackLimits, digest, cancel) -> None:
    decompressor = bz2.BZ2Decompressor()
    read_in = written = 0
    with open(path, "rb") as src, open(tmp, "wb") as out:
        while True:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"decompression of {path.name} cancelled")
            if decompressor.eof:                       # end of a stream: another may follow
                block = decompressor.unused_data or src.read(1 << 16)
                if not decompressor.unused_data:
                    read_in += len(block)
                if not block:
                    return
                decompressor = bz2.BZ2Decompressor()
            elif decompressor.needs_input:
                block = src.read(1 << 16)
                if not block:
                    raise DownloadError(f"{path.name} is a truncated bzip2 file")
                read_in += len(block)
            else:
                block = b""
            try:
                data = decompressor.decompress(block, max_length=1 << 20)
            except (OSError, EOFError, ValueError) as exc:
                raise DownloadError(f"{path.name} is not a valid bzip2 file ({exc})") from None
            written += len(data)
            if written > limits.max_member:
                raise DownloadError(f"{path.name} decompresses to more than {limits.max_member} "
                                    "bytes: refused")
            if written > limits.ratio_floor and written > limits.max_ratio * max(read_in, 1):
                raise DownloadError(f"{path.name} decompresses more than {limits.max_ratio:g} "
                                    "times its size (a bzip2 bomb?): refused")
            digest.update(data)
            out.write(data)


def _package_sha256(sha256: str | None) -> str:
    value = sha256 or TUTORIAL_PACKAGE_SHA256 or os.environ.get(TUTORIAL_SHA256_ENV, "")
    value = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise DownloadError("the tutorial package's SHA-256 is not known to gmoswidgets: give it "
                            f"(sha256=... or ${TUTORIAL_SHA256_ENV}) after checking it against "
                            "a copy you trust; nothing was downloaded")
    return value


def download_tutorial_package(directory, *, url: str = TUTORIAL_PACKAGE_URL,
                              sha256: str | None = None, progress=True, timeout: float = 60.0,
                              deadline: float | None = 3600.0, cancel=None,
                              limits: UnpackLimits = UnpackLimits()) -> Path:
    """Fetch the tutorial data package, check its SHA-256, unpack it and bunzip2 its ``playdata``.

    Parameters
    ----------
    directory : path-like
        Where to unpack (the package holds ``gmosimg_tutorial/playdata``).
    url : str
        The package's address (the DRAGONS tutorial's by default).
    sha256 : str, optional
        The package's SHA-256 (default :data:`TUTORIAL_PACKAGE_SHA256`, else
        ``$GMOSWIDGETS_TUTORIAL_SHA256``); required: without one nothing is fetched.
    progress, timeout, deadline, cancel
        As for :func:`download`.
    limits : UnpackLimits
        Caps on the package and on what it unpacks to.

    Returns
    -------
    pathlib.Path
        The ``playdata`` directory.

    Raises
    ------
    DownloadError
        No checksum, a mismatch, a hostile or broken tar, or a cap exceeded;
        nothing is left in ``directory`` but a resumable ``.part``.
    """
    directory = Path(directory)
    expected = _package_sha256(sha256)
    directory.mkdir(parents=True, exist_ok=True)
    tar_path = download(url, directory, sha256=expected, progress=progress, timeout=timeout,
                        deadline=deadline, cancel=cancel, decompress=False, limits=limits,
                        max_bytes=limits.max_download)
    try:
        return _unpack_package(tar_path, directory, limits, cancel)
    finally:
        tar_path.unlink(missing_ok=True)


def _member_path(member: tarfile.TarInfo) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not name.parts or "\\" in member.name:
        raise DownloadError(f"the package holds a member outside its folder ({member.name!r})")
    return name


def _unpack_package(tar_path: Path, directory: Path, limits: UnpackLimits, cancel) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=".gmos-unpack-", dir=directory))
    try:
        total = _extract_checked(tar_path, staging, limits, cancel)
        playdata = [p for p in staging.rglob("playdata") if p.is_dir()]
        if not playdata:
            raise DownloadError(f"{tar_path.name} is not the tutorial package: it has no "
                                "playdata/ folder; nothing was unpacked")
        for compressed in sorted(playdata[0].glob("*.bz2")):
            total += bunzip2(compressed, limits=limits, cancel=cancel).stat().st_size
            if total > limits.max_total:
                raise DownloadError(f"{tar_path.name} unpacks to more than {limits.max_total} "
                                    "bytes: refused")
        final = directory / playdata[0].relative_to(staging)
        _move_into_place(staging, directory)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_checked(tar_path: Path, staging: Path, limits: UnpackLimits, cancel) -> int:
    total = 0
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for member in tar:
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled("unpacking cancelled")
                name = _member_path(member)
                if member.isdir():
                    (staging / name).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg() or member.issparse():
                    raise DownloadError(f"the package member {member.name!r} is not a plain file "
                                        "(link, device or sparse file): refused")
                total += member.size
                if member.size > limits.max_member or total > limits.max_total:
                    raise DownloadError(f"the package member {member.name!r} ({member.size} "
                                        "bytes) is larger than allowed: refused")
                out_path = staging / name
                out_path.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(out_path, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
    except (tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{tar_path.name} is not a valid tar file ({exc})") from None
    return total


def _move_into_place(staging: Path, directory: Path) -> None:
    """Move the staged files into ``directory``; existing files are kept, never replaced."""
    for path in sorted(staging.rglob("*")):
        if path.is_dir():
            continue
        target = directory / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.replace(path, target)


def _archive_entry(name: str, base: str, timeout: float) -> dict:
    """The archive's record of a file (``jsonfilelist``): stored name and MD5, if it gives them."""
    import json
    response = open_url(f"{base}/jsonfilelist/{name}", timeout=timeout)
    with response:
        try:
            entries = json.loads(read_body(response, deadline=120.0, label=f"{name}'s record"))
        except ValueError:
            return {}
    for entry in entries if isinstance(entries, list) else []:
        if name in (entry.get("name"), entry.get("filename")):
            return entry
    return {}


def download_archive_files(names, directory, *, base: str, progress=True,
                           timeout: float = 60.0, cancel=None) -> list:
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
        Archive address (:func:`gmoswidgets.archive.config.archive_url` gives the configured one).
    progress, timeout, cancel
        As for :func:`download`.

    Returns
    -------
    list of pathlib.Path
        The decompressed FITS files (files already present are not fetched again).

    Raises
    ------
    DownloadError
        Also when a name, or the stored name the archive gives, is not a plain file name.
    """
    base = base.rstrip("/")
    out = []
    for name in names:
        safe_file_name(name, source="the caller")
        stem = name[:-4] if name.endswith(".bz2") else name
        target = Path(directory) / stem
        if target.exists():
            out.append(target)
            continue
        entry = _archive_entry(stem, base, timeout)
        stored = safe_file_name(entry.get("filename") or name, source=f"{base}/jsonfilelist")
        out.append(download(f"{base}/file/{stored}", Path(directory) / stored,
                            md5=entry.get("file_md5"), data_md5=entry.get("data_md5"),
                            progress=progress, timeout=timeout, cancel=cancel))
    return out
