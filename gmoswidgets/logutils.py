"""Logging set-up: once to the screen, once to a log file, never twice.

The seed tutorial's advice, with our package name::

    from gmoswidgets import logutils
    logutils.config(file_name='gmos_data_reduction.log')

Only the ``'gmoswidgets'`` logger is configured, with ``propagate=False`` so
that a root handler (Jupyter, ``logging.basicConfig``) does not print every
message a second time.  Calling :func:`config` again replaces the handlers it
installed before; it never adds duplicates.
"""
from __future__ import annotations

import logging
import sys

__all__ = ["LOGGER_NAME", "config", "get_logger", "show_info"]

#: Name of the package logger every module logs under.
LOGGER_NAME = "gmoswidgets"
_FILE_FORMAT = "%(asctime)s %(levelname)-8s %(name)s - %(message)s"
_MARK = "_gmoswidgets_logutils"


class _ConsoleHandler(logging.StreamHandler):
    """Prints through ``tqdm.write`` so that log lines do not break a progress bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never raise
            self.handleError(record)


def get_logger(name: str = "") -> logging.Logger:
    """The package logger, or its child ``gmoswidgets.<name>``."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def config(file_name: str | None = None, mode: str = "standard", stomp: bool = False,
           level: int = logging.INFO, file_level: int = logging.DEBUG,
           stream=None) -> logging.Logger:
    """Configure the ``'gmoswidgets'`` logger: screen plus optional log file.

    Parameters
    ----------
    file_name : str, optional
        Log file; every message at ``file_level`` or above goes there.
    mode : {'standard', 'quiet'}
        ``'quiet'`` logs to the file only.
    stomp : bool
        Overwrite the log file instead of appending to it.
    level : int
        Lowest level shown on the screen.
    file_level : int
        Lowest level written to the file.
    stream : file-like, optional
        Screen stream (default ``sys.stdout``).

    Returns
    -------
    logging.Logger
        The configured ``'gmoswidgets'`` logger.
    """
    if mode not in ("standard", "quiet"):
        raise ValueError(f"mode must be 'standard' or 'quiet', not {mode!r}")
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    levels = []
    if mode == "standard":
        console = _ConsoleHandler(stream or sys.stdout)
        console.setLevel(level)
        console.setFormatter(logging.Formatter("%(message)s"))
        setattr(console, _MARK, True)
        logger.addHandler(console)
        levels.append(level)
    if file_name:
        handler = logging.FileHandler(file_name, mode="w" if stomp else "a", encoding="utf-8")
        handler.setLevel(file_level)
        handler.setFormatter(logging.Formatter(_FILE_FORMAT))
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
        levels.append(file_level)
    logger.setLevel(min(levels) if levels else level)
    logger.propagate = False
    return logger


def show_info() -> logging.Logger:
    """Let INFO records through the package logger if nobody has set its level.

    For front ends that show the log themselves (the step panel's log box)
    without :func:`config`; a level set by :func:`config` or the user is kept.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger
