"""Replacing an existing output: said in the log, and the calibration database kept true.

As DRAGONS, a reduction replaces an output file of the same name (re-running
``reduce @list_of_bias.txt`` makes the master bias again).  Here the
replacement is never silent: :func:`replacing` logs it, and when the
calibration database has an entry for that very file the entry is updated
from the new file (``caldb add`` again), or, if the new file is not a
processed calibration any more, the entry is removed, with a warning.  The
database therefore never points at a file whose content it does not
describe.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import GmosError

__all__ = ["replacing", "refresh_calibration_entry"]


def _open(service):
    """The CalibrationService behind ``service`` (a lazy DefaultService is opened), or None."""
    try:
        service = service.open() if hasattr(service, "open") else service
    except GmosError:             # no configuration: no database to keep true
        return None
    return service if service is not None and service.db.exists else None


def refresh_calibration_entry(path, log: logging.Logger, service=None) -> str | None:
    """Bring the database entry of ``path`` (if any) up to date with the file's new content.

    Parameters
    ----------
    path : path-like
        A file that has just been replaced.
    log : logging.Logger
        Where to say what was done.
    service : CalibrationService or DefaultService, optional
        The reduction's calibration service; None: there is no database to update.

    Returns
    -------
    str or None
        ``'updated'``, ``'removed'``, or None when the database has no entry
        for this file (or there is no database).
    """
    service = _open(service)
    if service is None:
        return None
    path = Path(path)
    real = os.path.realpath(path)
    try:
        entry = next((e for e in service.db.entries()
                      if e.filename == path.name and os.path.realpath(e.path) == real), None)
    except GmosError as exc:
        log.warning(f"replaced {path}, but could not check the calibration database: {exc}")
        return None
    if entry is None:
        return None
    try:
        service.add_cal(path)
    except GmosError as exc:
        service.remove_cal(path.name)
        log.warning(f"{path.name} is no longer a {entry.caltype} ({exc}); its entry was removed "
                    f"from the calibration database {service.database_path}")
        return "removed"
    log.info(f"updated the calibration database entry of {path.name} ({entry.caltype}) "
             f"from the new file")
    return "updated"


@contextmanager
def replacing(path, log: logging.Logger, service=None):
    """Wrap the writing of ``path``: if it replaced a file, log it and refresh its caldb entry.

    Parameters
    ----------
    path : path-like
        The file about to be written.
    log : logging.Logger
    service : CalibrationService or DefaultService, optional
        See :func:`refresh_calibration_entry`.
    """
    path = Path(path)
    existed = path.exists()
    yield
    if existed:
        log.warning(f"replaced the existing file {path}")
        refresh_calibration_entry(path, log, service)
