"""Find GMOS data in the Gemini Observatory Archive: search, calibrations, downloads.

>>> from gmoswidgets import archive
>>> sci = archive.search(program="GN-2017A-SV-151", date="20170614", obsclass="science",
...                      filter="i")                                        # doctest: +SKIP
>>> cals = archive.calibrations_for(sci, caltypes=("bias", "flat"))        # doctest: +SKIP
>>> archive.download_files(sci, "playdata").paths                          # doctest: +SKIP

The base URL comes from ``server=``, else ``$GMOSWIDGETS_ARCHIVE_URL``, else
the real archive (:mod:`gmoswidgets.archive.config`); proprietary data need
the session cookie in ``$GEMINI_ARCHIVE_COOKIE``.  Kernel code: no widgets.
"""
from .config import ARCHIVE_URL_ENV, COOKIE_ENV, DEFAULT_ARCHIVE_URL, archive_url
from .fetch import PLAYDATA, Fetched, download_files, row_tags
from .search import SUMMARY_COLUMNS, calibrations_for, search, summary_table
from .selection import OBSERVATION_CLASSES, ArchiveError, selection

__all__ = ["search", "calibrations_for", "download_files", "summary_table", "selection",
           "row_tags", "Fetched", "ArchiveError", "archive_url", "DEFAULT_ARCHIVE_URL",
           "ARCHIVE_URL_ENV", "COOKIE_ENV", "PLAYDATA", "SUMMARY_COLUMNS", "OBSERVATION_CLASSES"]
