"""Talking to the archive: one GET of a JSON endpoint, with the archive's answers turned into one line.

* No network: "cannot reach the archive at URL (are you offline?)".
* HTTP 403: proprietary data (or a blocked client): says how to give the
  session cookie (:data:`~gmoswidgets.archive.config.COOKIE_ENV`).
* Other HTTP errors (404 with an empty body is the archive's "no such file"):
  the status and the error page's title; a reply that is not JSON
  (truncated, or an HTML page).
* A deadline for the whole reply, a cap on its size, and ``cancel``.
"""
from __future__ import annotations

import json

from ..data.download import DownloadCancelled, DownloadError, open_url, read_body
from .config import COOKIE_ENV, COOKIE_NAME, archive_cookie
from .selection import ArchiveError

__all__ = ["get_json", "cookie_headers", "explain"]

#: The archive's own server timeout: a JSON reply taking longer has failed.
JSON_DEADLINE = 150.0
_JSON_CAP = 256 << 20


def cookie_headers(cookie: str | None = None) -> dict:
    """The ``Cookie`` header for the session cookie (argument or environment), or {}."""
    value = archive_cookie(cookie)
    return {"Cookie": f"{COOKIE_NAME}={value}"} if value else {}


def explain(exc: DownloadError, what: str) -> DownloadError:
    """The same error, reworded for the archive (403: proprietary; cookie hint)."""
    if isinstance(exc, DownloadCancelled):
        return exc
    if exc.status == 403:
        return ArchiveError(f"the archive refused {what} (HTTP 403): proprietary data need your "
                            f"archive session cookie in ${COOKIE_ENV} (or --cookie-file)")
    if exc.status is None and str(exc).startswith("cannot reach"):
        return ArchiveError(f"cannot reach the archive for {what}: {str(exc).split(': ', 1)[-1]}")
    return ArchiveError(str(exc))


def get_json(url: str, *, cookie: str | None = None, timeout: float = 60.0,
             deadline: float = JSON_DEADLINE, cancel=None, what: str = "the query"):
    """GET ``url`` and parse its JSON body (whatever the Content-Type: jsoncalmgr says text/plain).

    Raises
    ------
    ArchiveError
        Offline, an HTTP error, or a body that is not JSON (one line).
    """
    try:
        response = open_url(url, timeout=timeout, headers=cookie_headers(cookie))
        with response:
            body = read_body(response, deadline=deadline, cancel=cancel, max_bytes=_JSON_CAP,
                             label=f"the archive's answer to {what}")
    except DownloadError as exc:
        raise explain(exc, what) from None
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        start = " ".join(body[:80].decode("utf-8", "replace").split())
        raise ArchiveError(f"the archive's answer to {what} is not JSON (truncated, or an error "
                           f"page: {start!r}); try again") from None
