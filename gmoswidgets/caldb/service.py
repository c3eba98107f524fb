"""The calibration service: the seed's ``CalibrationService`` API.

::

    from gmoswidgets.caldb import CalibrationService, set_calservice
    caldb = CalibrationService()        # reads ~/.geminidr/rsys.cfg (or $GMOSWIDGETS_CONFIG)
    caldb.config()
    caldb.init()
    set_calservice(caldb)               # the default for reductions
    caldb.add_cal("N20170613S0180_bias.fits")
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FileProblem
from ..fitsheader import header_values
from ..gmos.tags import format_tags, tags_of
from .association import CalEntry, CalMatch, explain_candidates, run_checks
from .config import CalDBConfig, load_config
from .database import CalDatabase, CalDBError
from .properties import CALTYPES, caltype_of, properties_of
from .usercal import check_caltype

__all__ = ["CalibrationService", "CalDBStatus", "AddResult", "set_calservice",
           "get_calservice", "get_calibration", "explain"]


@dataclass
class CalDBStatus:
    """What ``caldb config`` reports.

    Attributes
    ----------
    config : CalDBConfig
        Where the configuration came from and the database directory.
    exists : bool
        True if the database file exists.
    counts : dict
        Number of calibrations per type.
    problem : str
        Why the database cannot be used ('' if it can).
    """

    config: CalDBConfig
    exists: bool
    counts: dict = field(default_factory=dict)
    problem: str = ""

    def __str__(self) -> str:
        cfg = self.config
        source = f"{cfg.config_file} ({cfg.source})" if cfg.config_file else cfg.source
        lines = [f"Configuration:       {source}",
                 f"Database directory:  {cfg.database_dir}",
                 f"Database file:       {cfg.database_path}"]
        if not cfg.standalone:
            lines.append("standalone = False: only the local database is searched "
                         "(no remote archive)")
        if self.problem:
            lines.append(f"Problem:             {self.problem}")
        elif not self.exists:
            lines.append("The database does not exist yet; create it with: caldb init")
        else:
            counts = ", ".join(f"{self.counts.get(c, 0)} {c}" for c in CALTYPES)
            lines.append(f"Calibrations:        {sum(self.counts.values())} ({counts})")
        return "\n".join(lines)


@dataclass
class AddResult:
    """The outcome of :meth:`CalibrationService.add_cal`.

    Attributes
    ----------
    entry : CalEntry
        The stored entry.
    replaced : CalEntry or None
        The previous entry of the same file name, if the file was added before.
    """

    entry: CalEntry
    replaced: CalEntry | None = None

    def __str__(self) -> str:
        entry = self.entry
        if self.replaced is None:
            return f"added {entry.caltype} {entry.filename}"
        if self.replaced.path != entry.path:
            return (f"updated {entry.caltype} {entry.filename}: now {entry.path} "
                    f"(was {self.replaced.path})")
        return f"updated {entry.caltype} {entry.filename}"


def _frame_name(frame) -> str:
    if isinstance(frame, (str, Path)):
        return Path(frame).name
    return getattr(frame, "filename", "") or "the frame"


def _refuse(path: Path, headers) -> FileProblem:
    tags = tags_of(headers)
    kind = next((t for t in ("BIAS", "FLAT", "FRINGE") if t in tags), None)
    if "PROCESSED_SCIENCE" in tags:
        return FileProblem(path, "is a processed science product, not a calibration")
    if kind and "PROCESSED" not in tags:
        state = "raw" if "RAW" in tags or "UNPREPARED" in tags else "partly reduced"
        return FileProblem(path, f"is a {state} {kind.lower()}, not a processed calibration: "
                                 f"reduce it first (reduce @list) and add the output "
                                 f"(e.g. {path.stem}_{kind.lower()}.fits)")
    state = "a raw frame" if "RAW" in tags else "not a processed calibration"
    return FileProblem(path, f"is {state} (tags {format_tags(tags)}); "
                             f"caldb stores {', '.join(CALTYPES)}")


class CalibrationService:
    """The local calibration manager.

    Parameters
    ----------
    config_file : str or path-like, optional
        An rsys.cfg to read (default: ``$GMOSWIDGETS_CONFIG``, else
        ``~/.geminidr/rsys.cfg``).
    database_dir : str or path-like, optional
        Use this directory directly, without a configuration file.

    Raises
    ------
    ConfigError
        No usable configuration; the message shows the lines to write.
    """

    def __init__(self, config_file=None, database_dir=None):
        self.settings: CalDBConfig = load_config(config_file, database_dir)
        self.db = CalDatabase(self.settings.database_path)

    def __repr__(self) -> str:
        return f"<CalibrationService {self.settings.database_path}>"

    @property
    def database_path(self) -> Path:
        """The SQLite file."""
        return self.settings.database_path

    def close(self) -> None:
        """Close this thread's database connection."""
        self.db.close()

    # -- setup -----------------------------------------------------------------
    def config(self, verbose: bool = True) -> CalDBStatus:
        """Report the configuration and the database content.

        Parameters
        ----------
        verbose : bool, optional
            Also print the report (as the seed's ``caldb.config()`` does).

        Returns
        -------
        CalDBStatus
        """
        status = CalDBStatus(self.settings, self.db.exists)
        if status.exists:
            try:
                check = self.db.integrity()
                if check != "ok":
                    raise CalDBError(f"database {self.database_path} is corrupt ({check}); "
                                     f"recreate it with: caldb init -w")
                status.counts = self.db.counts()
            except CalDBError as exc:
                status.problem = str(exc)
        if verbose:
            print(status)
        return status

    def init(self, wipe: bool = False) -> str:
        """Create the database; with ``wipe``, delete it and start empty.

        The calibration files themselves are never deleted.

        Returns
        -------
        str
            What was done, in one sentence.
        """
        path = self.database_path
        if self.db.create(wipe=wipe):
            return f"created the calibration database {path}"
        return (f"the calibration database {path} already exists "
                f"({sum(self.db.counts().values())} calibrations); "
                f"to empty it use: caldb init -w")

    # -- content -------------------------------------------------------------
    def add_cal(self, path) -> AddResult:
        """Add a processed calibration, or update its entry if the same file name is stored.

        Parameters
        ----------
        path : str or path-like
            A processed bias, flat, fringe or bad-pixel mask.

        Returns
        -------
        AddResult

        Raises
        ------
        FileProblem
            Missing, not FITS, not GMOS, raw or not a processed calibration.
        CalDBError
            The database is missing or corrupt.
        """
        path = Path(path).expanduser().absolute()
        headers = header_values(path)
        caltype = caltype_of(tags_of(headers))
        if caltype is None:
            raise _refuse(path, headers)
        props = properties_of(headers, lenient=caltype == "processed_bpm")
        entry = CalEntry(path.name, path, caltype, props, time.time())
        return AddResult(entry, self.db.upsert(entry))

    def remove_cal(self, path) -> CalEntry:
        """Remove a calibration's entry (the file on disk is left alone).

        Parameters
        ----------
        path : str or path-like
            The file, or just its name.

        Returns
        -------
        CalEntry
            The removed entry.

        Raises
        ------
        CalDBError
            No entry of that file name.
        """
        name = Path(path).name
        removed = self.db.remove(name)
        if removed is None:
            raise CalDBError(f"{name} is not in the calibration database {self.database_path}")
        return removed

    def list_files(self, caltype: str | None = None) -> list:
        """The stored calibrations (check ``entry.missing`` for vanished files).

        Parameters
        ----------
        caltype : str, optional
            Only this type.

        Returns
        -------
        list of CalEntry
        """
        if caltype is not None:
            check_caltype(caltype, CALTYPES)
        return self.db.entries(caltype)

    # -- association ---------------------------------------------------------
    def get_calibration(self, frame, caltype: str) -> CalMatch:
        """The best stored calibration of ``caltype`` for ``frame``.

        Parameters
        ----------
        frame : Frame, HeaderSet, ObsProperties or path
            The frame asking for a calibration (only headers are used).
        caltype : str
            One of :data:`CALTYPES`.

        Returns
        -------
        CalMatch
            ``path`` None with the reason when nothing matches; ``missing``
            True when the chosen file has vanished from disk.
        """
        check_caltype(caltype, CALTYPES)
        sci = properties_of(frame)
        entry = self.db.best(caltype, sci)
        if entry is None:
            return CalMatch(None, self._why_none(frame, sci, caltype), caltype)
        if entry.missing:
            return CalMatch(entry.path, f"{entry.filename} is the best {caltype} for "
                            f"{_frame_name(frame)} but its file is missing: {entry.path}; "
                            f"restore it, or remove the entry with: caldb remove {entry.filename}",
                            caltype, "database", missing=True)
        same = [name for name, _, _ in run_checks(caltype, sci, entry.props, temporal=False)]
        when = [detail for name, _, detail in run_checks(caltype, sci, entry.props)
                if name not in same]
        return CalMatch(entry.path, f"{entry.filename}: same {', '.join(same)}; nearest in time "
                        f"({'; '.join(when)})",
                        caltype, "database")

    def _why_none(self, frame, sci, caltype) -> str:
        total, rejected = self.db.rejections(caltype, sci)
        if not total:
            return (f"no {caltype} in the calibration database {self.database_path}; "
                    f"add one with: caldb add FILE")
        counts = ", ".join(f"{name} ({n})" for name, n in rejected.items())
        return (f"none of the {total} {caltype} in the database matches "
                f"{_frame_name(frame)}; rejected for: {counts} (explain() gives the details)")

    def explain(self, frame, caltype: str) -> list:
        """For every stored calibration of ``caltype``, why it was or was not chosen.

        Returns
        -------
        list of CandidateReport
            The chosen one first, then the other matching ones, then the
            rejected ones; each with every rule's (name, passed, detail).
        """
        check_caltype(caltype, CALTYPES)
        return explain_candidates(properties_of(frame), caltype, self.db.entries(caltype))


_DEFAULT: dict = {"service": None}


def set_calservice(service: CalibrationService | None = None, **kwargs) -> CalibrationService:
    """Make ``service`` the calibration service reductions use.

    Parameters
    ----------
    service : CalibrationService, optional
        Default: a new ``CalibrationService(**kwargs)`` from the configuration.
    **kwargs
        ``config_file`` or ``database_dir`` for the new service.

    Returns
    -------
    CalibrationService
    """
    _DEFAULT["service"] = service if service is not None else CalibrationService(**kwargs)
    return _DEFAULT["service"]


def get_calservice() -> CalibrationService | None:
    """The service set by :func:`set_calservice`, or None."""
    return _DEFAULT["service"]


def get_calibration(frame, caltype: str, service=None, user_cals=None) -> CalMatch:
    """The calibration a reduction uses: the user's first, then the database's.

    Parameters
    ----------
    frame : Frame, HeaderSet, ObsProperties or path
    caltype : str
    service : CalibrationService, optional
        Default: :func:`get_calservice`.
    user_cals : UserCalibrations, optional

    Returns
    -------
    CalMatch
    """
    if user_cals:
        match = user_cals.get(frame, caltype)
        if match is not None:
            return match
    service = service or get_calservice()
    if service is None:
        check_caltype(caltype)
        return CalMatch(None, f"no {caltype} for {_frame_name(frame)}: no calibration database "
                              f"in use (call set_calservice()) and no --user_cal {caltype}:FILE",
                        caltype)
    return service.get_calibration(frame, caltype)


def explain(frame, caltype: str, service=None) -> list:
    """:meth:`CalibrationService.explain` on ``service`` (default: :func:`get_calservice`).

    Raises
    ------
    CalDBError
        No service was given or set.
    """
    service = service or get_calservice()
    if service is None:
        raise CalDBError("no calibration database in use: call set_calservice() first")
    return service.explain(frame, caltype)
