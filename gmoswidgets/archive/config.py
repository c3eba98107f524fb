"""Where the Gemini Observatory Archive is, and the user's session cookie: the one place for both.

The API (:mod:`gmoswidgets.archive`), the shell (``gmos-archive``) and the
dashboard panel all take the base URL from :func:`archive_url`:

1. an explicit ``server`` argument (``--server URL``),
2. else ``$GMOSWIDGETS_ARCHIVE_URL``,
3. else :data:`DEFAULT_ARCHIVE_URL`, the real archive.

Proprietary data need the archive's session cookie
(``gemini_archive_session``), which you copy from your browser after logging
in at archive.gemini.edu.  Give it in ``$GEMINI_ARCHIVE_COOKIE`` (recommended:
it never appears in ``ps`` or the shell history) or a file
(``gmos-archive --cookie-file PATH``).  It is sent only to the configured
archive and never logged or shown.
"""
from __future__ import annotations

import os

__all__ = ["DEFAULT_ARCHIVE_URL", "ARCHIVE_URL_ENV", "COOKIE_ENV", "COOKIE_NAME", "archive_url",
           "archive_cookie"]

#: The Gemini Observatory Archive.
DEFAULT_ARCHIVE_URL = "https://archive.gemini.edu"
#: Environment variable overriding the archive's base URL (tests, mirrors).
ARCHIVE_URL_ENV = "GMOSWIDGETS_ARCHIVE_URL"
#: Environment variable holding the value of the archive's session cookie.
COOKIE_ENV = "GEMINI_ARCHIVE_COOKIE"
#: The archive's session cookie name.
COOKIE_NAME = "gemini_archive_session"


def archive_url(server: str | None = None) -> str:
    """The archive's base URL: ``server``, else ``$GMOSWIDGETS_ARCHIVE_URL``, else the real archive.

    Parameters
    ----------
    server : str, optional
        An explicit base URL (``http://127.0.0.1:8000``); a trailing ``/`` is dropped.

    Returns
    -------
    str
    """
    value = (server or os.environ.get(ARCHIVE_URL_ENV) or DEFAULT_ARCHIVE_URL).strip()
    return value.rstrip("/")


def archive_cookie(cookie: str | None = None) -> str | None:
    """The session cookie value: ``cookie``, else ``$GEMINI_ARCHIVE_COOKIE``, else None."""
    value = cookie if cookie is not None else os.environ.get(COOKIE_ENV)
    value = (value or "").strip()
    if value.startswith(COOKIE_NAME + "="):
        value = value[len(COOKIE_NAME) + 1:]
    return value or None
