"""How a reduction finds its calibrations: the user's first, then a calibration service.

* :class:`CalibrationLookup` is what a running primitive reaches through
  ``ctx.calibration(frame, caltype)``: it applies the policy (a
  ``--user_cal`` wins, otherwise the service is asked), logs the choice, and
  reads and caches the calibration frame.
* :class:`DefaultService` is the service DRAGONS' ``reduce`` uses: the one
  set with :func:`~gmoswidgets.caldb.set_calservice`, else one opened from
  the configuration file (``~/.geminidr/rsys.cfg``).  It opens on the first
  request, so a reduction that needs no calibration needs no configuration.
  The front ends (``reduce``, ``Reduce``, the step panel) pass one to the
  engine; the engine itself never looks for a service.
* :class:`StepCalibrations` records which calibration was used for which
  frame during one step, matched by the frame's original file name
  (``ORIGNAME``), so that each output's PROVENANCE lists exactly the
  calibrations applied to its own input.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..checksums import start_md5sums
from ..errors import CalibrationNotFoundError
from ..frame import Frame, read_frame
from ..logutils import get_logger
from .association import CalMatch
from .config import ConfigError
from .service import CalibrationService, get_calibration, get_calservice
from .usercal import UserCalibrations

__all__ = ["CalibrationLookup", "DefaultService", "LookupFunction", "StepCalibrations",
           "default_service"]

#: ``lookup(frame, caltype) -> (calibration Frame, path, reason)``.
LookupFunction = Callable[[Frame, str], "tuple[Frame, Path, str]"]


class DefaultService:
    """The service set with ``set_calservice()``, else one opened from the configuration file.

    Nothing is opened until :meth:`get_calibration` (or :meth:`open`) is called.

    Parameters
    ----------
    config_file : path-like, optional
        Configuration file instead of the default one (``$GEMINIDR_CONFIG``
        or ``~/.geminidr/rsys.cfg``).
    """

    def __init__(self, config_file=None):
        self.config_file = config_file
        self._service: CalibrationService | None = None

    def open(self) -> CalibrationService:
        """The service, opened now if needed.

        Raises
        ------
        ConfigError
            No usable configuration file.
        """
        if self._service is None:
            self._service = get_calservice() or CalibrationService(self.config_file)
        return self._service

    def get_calibration(self, frame, caltype: str) -> CalMatch:
        """:meth:`CalibrationService.get_calibration` on the opened service."""
        return self.open().get_calibration(frame, caltype)

    def __repr__(self) -> str:
        return f"<DefaultService {self._service or 'not opened yet'}>"


def default_service(config_file=None) -> DefaultService:
    """A :class:`DefaultService`: what ``reduce`` and ``Reduce`` use unless given one."""
    return DefaultService(config_file)


def _parse_user_cals(user_cals) -> UserCalibrations | None:
    if not user_cals:
        return None
    if isinstance(user_cals, UserCalibrations):
        return user_cals
    if isinstance(user_cals, dict):
        return UserCalibrations(user_cals)
    if isinstance(user_cals, str):
        user_cals = [user_cals]
    return UserCalibrations.parse(list(user_cals))


class CalibrationLookup:
    """Finds, logs, loads and caches the calibrations of a reduction.

    Parameters
    ----------
    user_cals : list of str, dict or UserCalibrations, optional
        ``["processed_bias:FILE", ...]`` (``--user_cal``) or ``{"processed_bias": FILE}``;
        they win over the service.
    service : CalibrationService or DefaultService, optional
        Asked when the user gave no calibration of the type.  Without one,
        only user calibrations are found.
    logger : logging.Logger, optional
        Default ``gmoswidgets.reduce``.

    Raises
    ------
    GmosError
        A malformed ``user_cals`` entry, an unknown calibration type or a missing file.
    """

    def __init__(self, user_cals=None, service=None, *, logger: logging.Logger | None = None):
        self.log = logger or get_logger("reduce")
        self.service = service
        self.user_cals = _parse_user_cals(user_cals)
        self._cache: dict = {}

    def find(self, frame, caltype: str) -> CalMatch:
        """The calibration the policy chooses for ``frame`` (its path may be None).

        Raises
        ------
        CalibrationNotFoundError
            No user calibration of that type and no service, or the service
            cannot be opened.
        """
        name = getattr(frame, "filename", "") or "the frame"
        if self.service is None and not (self.user_cals and caltype in self.user_cals):
            raise CalibrationNotFoundError(
                f"no {caltype} for {name}: no calibration database in use "
                "and no user calibration", caltype=caltype, filename=name)
        try:
            return get_calibration(frame, caltype, service=self.service, user_cals=self.user_cals)
        except ConfigError as exc:
            raise CalibrationNotFoundError(f"no {caltype} for {name}: no calibration database "
                                           f"({exc})", caltype=caltype, filename=name) from None

    def __call__(self, frame: Frame, caltype: str) -> tuple[Frame, Path, str]:
        """Return ``(calibration Frame, path, reason)`` for ``frame``.

        Raises
        ------
        CalibrationNotFoundError
            Saying which calibration is missing, for which file, and why
            (``caltype`` and ``filename`` are attributes of the error).
        """
        match = self.find(frame, caltype)
        for warning in match.warnings or ():
            self.log.warning(warning)
        if match.path is None or match.missing:
            raise CalibrationNotFoundError(f"no {caltype} for {frame.filename}: {match.reason}",
                                           caltype=caltype, filename=frame.filename)
        path = Path(match.path)
        self.log.info("%s: using %s %s: %s", frame.filename, caltype, path.name, match.reason)
        key = (str(path.resolve()), path.stat().st_mtime_ns)
        if key not in self._cache:
            start_md5sums([path])    # for the PROVENANCE row of the step, while it runs
            self._cache[key] = read_frame(path)
        return self._cache[key], path, match.reason

    def release(self) -> None:
        """Forget the loaded calibration frames (they are read again when next needed)."""
        self._cache.clear()


class StepCalibrations:
    """A lookup for one step that remembers which calibration was used for which frame.

    Parameters
    ----------
    lookup : callable
        ``lookup(frame, caltype) -> (Frame, path, reason)``, e.g. a :class:`CalibrationLookup`.
    key : callable
        ``key(frame) -> str``: the name that identifies a frame across copies,
        the engine's original file name (``ORIGNAME``).
    """

    def __init__(self, lookup: LookupFunction, key: Callable[[Frame], str]):
        self.lookup = lookup
        self.key = key
        self.used: list[tuple[str, Path]] = []

    def __call__(self, frame: Frame, caltype: str) -> tuple[Frame, Path, str]:
        result = self.lookup(frame, caltype)
        self.used.append((self.key(frame), result[1]))
        return result

    def paths_for(self, sources: list[Frame], inputs: list[Frame]) -> list[Path]:
        """Calibrations used for any of ``sources``, or for a frame that is none of ``inputs``."""
        source_keys = {self.key(f) for f in sources}
        input_keys = {self.key(f) for f in inputs}
        return [path for key, path in self.used if key in source_keys or key not in input_keys]
