"""Reduce a night or a whole program in one go: group, order, reduce, add to caldb.

:class:`Batch` groups the raw files of a directory the way calibration
association matches them (the properties each association rule compares,
:func:`~gmoswidgets.caldb.association.shared_properties`):

* biases by instrument, detector, binning, read mode and read area (ROI);
* twilight flats by the same and the filter;
* fringe frames, from the science frames of a filter that needs them
  (:func:`~gmoswidgets.primitives.fringe.needs_fringe_correction`), by the same;
* science frames by target and everything their calibrations depend on.

It then reduces the groups along the dependency graph (bias -> flat ->
fringe -> science): each group starts as soon as the groups it needs are
done (a flat as soon as its own bias is, while the biases of another
binning still run), each through the public :class:`~gmoswidgets.reduce.Reduce`
API, as a task of an :class:`~gmoswidgets.executor.Executor` (local threads
by default, a Dask cluster when one is named; ``'sync'`` runs one group
after the other, in plan order).  Each reduction finds its
calibrations in the calibration database as ``reduce`` would; the driver
alone writes to that database (``caldb add`` of each new calibration).  The
result is an astropy Table: one row per group, with its products, or why it
could not be reduced::

    table = reduce_all("raw/", workdir="out/")          # or scheduler="tcp://host:8786"
"""
from __future__ import annotations

import logging
import time
from concurrent import futures
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from astropy.table import Table

from .caldb.association import shared_properties
from .errors import GmosError
from .executor import SequentialExecutor, get_executor
from .frame import read_headers
from .gmos.descriptors import descriptor_value
from .gmos.tags import tags_of
from .logutils import LOGGER_NAME, get_logger
from .primitives import get_primitive
from .primitives.fringe import needs_fringe_correction
from .recipes import default_recipe, get_recipe

__all__ = ["Batch", "Group", "BatchEvent", "GroupTask", "reduce_all", "run_group", "KINDS",
           "BATCH_EVENT_KINDS"]

#: Kinds of group, in the order they are reduced.
KINDS = ("bias", "flat", "fringe", "science")
#: Calibration type each kind of group produces.
_PRODUCT = {"bias": "processed_bias", "flat": "processed_flat", "fringe": "processed_fringe"}
#: Recipe of each kind (None: the default recipe for the files' tags).
_RECIPE = {"bias": None, "flat": None, "fringe": "makeProcessedFringe", "science": None}
#: Group statuses.
PLANNED, RUNNING, DONE, FAILED, SKIPPED = "planned", "running", "done", "failed", "skipped"
#: Kinds of :class:`BatchEvent`.
BATCH_EVENT_KINDS = ("group_started", "group_finished", "group_failed", "group_skipped",
                     "finished")


@dataclass
class Group:
    """Raw files reduced together, and what became of them.

    Attributes
    ----------
    name : str
        ``'bias-1'``, ``'flat-2'`` ... (unique in the batch).
    kind : str
        One of :data:`KINDS`.
    files : list of pathlib.Path
        The raw files, sorted.
    props : dict
        Association properties of the first file (and the target, for science).
    key : tuple of str
        The names in ``props`` that every file of the group shares.
    needs : tuple of str
        Calibration types its reduction asks for.
    depends : list of str
        Names of the groups of this batch that make those calibrations.
    status : str
        'planned', 'running', 'done', 'failed' or 'skipped'.
    outputs : list of str
        Files written.
    reason : str
        Why it failed or was skipped.
    elapsed : float or None
        Seconds its reduction took.
    """

    name: str
    kind: str
    files: list
    props: dict
    key: tuple
    needs: tuple = ()
    depends: list = field(default_factory=list)
    status: str = PLANNED
    outputs: list = field(default_factory=list)
    reason: str = ""
    elapsed: float | None = None

    @property
    def recipe(self) -> str | None:
        """Recipe name (None: the default for the files' tags)."""
        return _RECIPE[self.kind]

    def describe(self) -> str:
        """``'i 4x4 Full Frame slow/low starfield'``: the values a person looks at."""
        props = self.props
        words = [props["filter_name"] if "filter_name" in self.key else None,
                 f"{props['xbin']}x{props['ybin']}", props["roi"], props["read_mode"],
                 props["object"] if "object" in self.key else None]
        return " ".join(str(w) for w in words if w)

    def serves(self, other: "Group") -> bool:
        """True if this group's calibration is made for frames like ``other``'s."""
        return all(other.props.get(name) == self.props[name] for name in self.key)


@dataclass(frozen=True)
class BatchEvent:
    """Something that happened to a group (or the whole batch: ``group`` None)."""

    kind: str
    group: str | None = None
    message: str = ""


@dataclass(frozen=True)
class GroupTask:
    """What a worker needs to reduce one group: paths and names only (no arrays)."""

    name: str
    files: tuple
    recipe: str | None
    workdir: str
    database_dir: str


@dataclass(frozen=True)
class GroupResult:
    """What a worker sends back: the outputs, or why the reduction failed."""

    outputs: tuple = ()
    error: str = ""
    elapsed: float = 0.0


def run_group(task: GroupTask) -> GroupResult:
    """Reduce one group with :class:`~gmoswidgets.reduce.Reduce` (runs on a worker).

    The calibration database is only read here; errors are returned, not
    raised, so that one failing group does not stop the others.
    """
    from .caldb import CalibrationService
    from .reduce import Reduce
    start = time.perf_counter()
    try:
        service = CalibrationService(database_dir=task.database_dir)
        try:
            outputs = Reduce(files=list(task.files), recipename=task.recipe,
                             workdir=task.workdir, calservice=service,
                             scheduler="threads").runr()  # never tasks of tasks
        finally:
            service.close()
    except GmosError as exc:
        return GroupResult(error=str(exc), elapsed=time.perf_counter() - start)
    except Exception as exc:  # a bug: report it with its type, keep the batch going
        get_logger("batch").debug(f"{task.name} failed", exc_info=True)
        return GroupResult(error=f"{type(exc).__name__}: {exc}",
                           elapsed=time.perf_counter() - start)
    return GroupResult(tuple(str(Path(task.workdir) / Path(o).name) for o in outputs),
                       elapsed=time.perf_counter() - start)


# --------------------------------------------------------------------------- grouping
#: What the files of each kind of group share.
_KEYS = {"bias": shared_properties("processed_bias"),
         "flat": shared_properties("processed_flat"),
         "fringe": shared_properties("processed_bias", "processed_flat", "processed_fringe")}
_KEYS["science"] = _KEYS["fringe"] + ("object",)


def _kind(tags) -> str | None:
    if "PROCESSED" in tags or "RAW" not in tags:
        return None
    if "BIAS" in tags:
        return "bias"
    if "FLAT" in tags and "IMAGE" in tags:
        return "flat"
    if "IMAGE" in tags and not tags & {"CAL", "ACQUISITION"}:
        return "science"
    return None


def _needs(kind: str, tags, needs_fringe: bool) -> tuple:
    """Calibration types the recipe of a group asks for (declared by its primitives)."""
    recipe = get_recipe(_RECIPE[kind]) if _RECIPE[kind] else default_recipe(tags)
    needs = [caltype for step in recipe.steps
             for caltype in get_primitive(step.primitive).calibrations]
    return tuple(c for c in dict.fromkeys(needs) if c != "processed_fringe" or needs_fringe)


class Batch:
    """A planned batch reduction of the raw files in a directory.

    Parameters
    ----------
    directory : path-like
        Where the raw files are (``*.fits``, not recursive).
    workdir : path-like, optional
        Where the products go (default: the current directory).
    scheduler : str, Executor or distributed.Client, optional
        Where the group reductions run (see
        :func:`~gmoswidgets.executor.get_executor`); default
        ``$GMOSWIDGETS_SCHEDULER``, else local threads.
    service : CalibrationService, optional
        The calibration database to add calibrations to (default: the one
        set with :func:`~gmoswidgets.caldb.set_calservice`, else the
        configured one).  Workers must be able to read its directory.

    Attributes
    ----------
    groups : list of Group
        In reduction order.
    ignored : list of (str, str)
        Files that are not reduced: (file name, why).

    Raises
    ------
    GmosError
        No such directory, no calibration database.
    """

    def __init__(self, directory, *, workdir=None, scheduler=None, service=None):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise GmosError(f"{self.directory}: no such directory")
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        self.scheduler = scheduler
        self.service = service or _default_service()
        if not self.service.database_path.exists():
            raise GmosError(f"no calibration database at {self.service.database_path}: "
                            "create it with `caldb init`")
        self.log = get_logger("batch")
        self.ignored: list = []
        self.groups: list = self._plan(sorted(self.directory.glob("*.fits")))
        self._subscribers: list = []

    # -- planning -----------------------------------------------------------------
    def _plan(self, paths) -> list:
        from .caldb import properties_of
        members: dict = {}
        for path in paths:
            try:
                headers = read_headers(path)
                tags = tags_of(headers)
                kind = _kind(tags)
                if kind is None:
                    self.ignored.append((path.name, "not a raw bias, imaging flat or science "
                                                    "frame (tags " + " ".join(sorted(tags)) + ")"))
                    continue
                obs = properties_of(headers)
                props = {name: getattr(obs, name) for name in _KEYS["fringe"]}
                props.update(roi=obs.roi, read_mode=obs.read_mode)
                fringe = False
                if kind == "science":
                    props["object"] = descriptor_value(headers, "object")
                    fringe = needs_fringe_correction(
                        SimpleNamespace(descriptor=partial(descriptor_value, headers)))[0]
            except GmosError as exc:
                self.ignored.append((path.name, str(exc)))
                continue
            for each in [kind] + (["fringe"] if fringe else []):
                key = (each, tuple(props[name] for name in _KEYS[each]))
                members.setdefault(key, (props, tags, fringe, []))[-1].append(path)
        ordered = sorted(members.items(), key=lambda item: (KINDS.index(item[0][0]),
                                                            item[1][-1][0].name))
        groups, counts = [], dict.fromkeys(KINDS, 0)
        for (kind, _), (props, tags, fringe, files) in ordered:
            counts[kind] += 1
            groups.append(Group(f"{kind}-{counts[kind]}", kind, sorted(files), props,
                                _KEYS[kind], _needs(kind, tags, fringe)))
        for group in groups:
            group.depends = [maker.name for maker in groups if _PRODUCT.get(maker.kind)
                             in group.needs and maker.serves(group)]
        return groups

    # -- events -------------------------------------------------------------------------
    def subscribe(self, callback: Callable) -> Callable:
        """Call ``callback(event)`` for every :class:`BatchEvent`; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _emit(self, kind: str, group: Group | None = None, message: str = "") -> None:
        event = BatchEvent(kind, group.name if group else None, message)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a broken observer must not break the batch
                logging.getLogger(LOGGER_NAME).debug("batch subscriber failed", exc_info=True)

    # -- running --------------------------------------------------------------------------
    def run(self) -> Table:
        """Reduce every group along the dependency graph; return :meth:`table`.

        Each group runs as a task of the executor as soon as every group it
        needs is done; each new calibration is added to the database (here,
        by this one process and thread) before the groups that need it
        start.  A group whose calibration group failed is skipped.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        executor = get_executor(self.scheduler)
        self.log.info(f"reduce-all: {len(self.groups)} group(s) from {self.directory} "
                      f"on {executor.name}")
        try:
            self._run_graph(executor)
        finally:
            if executor is not self.scheduler:
                executor.close()
        self._emit("finished", message=f"{sum(g.status == DONE for g in self.groups)} of "
                                       f"{len(self.groups)} group(s) reduced")
        return self.table()

    def _run_graph(self, executor) -> None:
        """Start each group when the groups it needs are done; finish each here as it ends."""
        by_name = {g.name: g for g in self.groups}
        waiting, running = list(self.groups), {}
        inline = isinstance(executor, SequentialExecutor)   # 'sync': in this thread, in order
        # a driver thread waits for one group's task; the executor decides where the task runs
        with futures.ThreadPoolExecutor(len(self.groups) or 1, "reduce-all") as drivers:
            while waiting or running:
                started = False
                for group in list(waiting):   # plan order: what a group needs comes first
                    needs = [by_name[d] for d in group.depends]
                    if any(d.status in (FAILED, SKIPPED) for d in needs):
                        waiting.remove(group)
                        self._skip(group, [d for d in needs if d.status != DONE])
                    elif all(d.status == DONE for d in needs):
                        waiting.remove(group)
                        self._start(group)
                        started = True
                        if inline:
                            self._finish(group, self._reduce(executor, group))
                        else:
                            running[drivers.submit(self._reduce, executor, group)] = group
                if not running:
                    if started:
                        continue
                    break
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: self.groups.index(running[f])):
                    self._finish(running.pop(future), future.result())

    def _start(self, group: Group) -> None:
        group.status = RUNNING
        self.log.info(f"{group.name}: {group.kind} {group.describe()}, {len(group.files)} file(s)")
        self._emit("group_started", group, group.describe())

    def _skip(self, group: Group, failed: list) -> None:
        group.status = SKIPPED
        group.reason = "needs " + ", ".join(f"{d.name} ({d.kind}, {d.status})" for d in failed)
        self.log.warning(f"{group.name} skipped: {group.reason}")
        self._emit("group_skipped", group, group.reason)

    def _reduce(self, executor, group: Group) -> GroupResult:
        """``group`` reduced as one task of ``executor``: its result (errors included)."""
        task = GroupTask(group.name, tuple(str(f) for f in group.files), group.recipe,
                         str(self.workdir), str(self.service.settings.database_dir))
        try:
            [result] = executor.map(run_group, [task], label=lambda t: t.name)
        except Exception as exc:  # the worker itself failed (run_group returns its errors)
            result = GroupResult(error=f"{type(exc).__name__}: {exc}")
        return result

    def _finish(self, group: Group, result: GroupResult) -> None:
        group.elapsed = result.elapsed
        if result.error:
            group.status, group.reason = FAILED, result.error
            self.log.error(f"{group.name} failed: {result.error}")
            self._emit("group_failed", group, result.error)
            return
        group.outputs = list(result.outputs)
        if group.kind in _PRODUCT:
            for output in group.outputs:
                try:
                    self.log.info(str(self.service.add_cal(output)))
                except GmosError as exc:
                    group.status, group.reason = FAILED, f"caldb add {output}: {exc}"
                    self._emit("group_failed", group, group.reason)
                    return
        group.status = DONE
        self._emit("group_finished", group, ", ".join(Path(o).name for o in group.outputs))

    # -- results --------------------------------------------------------------------------
    def table(self) -> Table:
        """One row per group: kind, key, files, status, products or reason, time.

        The files that were not reduced are listed in ``table.meta['ignored']``.
        """
        rows = [(g.name, g.kind, g.describe(), len(g.files), g.files[0].name, g.status,
                 ", ".join(Path(o).name for o in g.outputs), g.reason,
                 round(g.elapsed, 2) if g.elapsed is not None else float("nan"))
                for g in self.groups]
        names = ("group", "kind", "setup", "nfiles", "first", "status", "products", "reason",
                 "elapsed")
        table = Table(rows=rows or None, names=names,
                      dtype=(str, str, str, int, str, str, str, str, float))
        table.meta["ignored"] = list(self.ignored)
        return table


def _default_service():
    from . import caldb
    service = caldb.get_calservice()
    if service is None:
        try:
            service = caldb.CalibrationService()
        except caldb.ConfigError as exc:
            raise GmosError(f"reduce-all adds calibrations to the calibration database, "
                            f"but there is none: {exc}") from None
    return service


def reduce_all(directory, *, workdir=None, scheduler=None, service=None,
               callback: Callable | None = None) -> Table:
    """Reduce every raw file of ``directory``: calibrations first, then the science.

    Parameters
    ----------
    directory : path-like
        The raw files.
    workdir : path-like, optional
        Where the products go (default: the current directory).
    scheduler : str, Executor or distributed.Client, optional
        Where the reductions run; see :class:`Batch`.
    service : CalibrationService, optional
        The calibration database (new calibrations are added to it).
    callback : callable, optional
        Receives every :class:`BatchEvent`.

    Returns
    -------
    astropy.table.Table
        One row per group (see :meth:`Batch.table`).
    """
    batch = Batch(directory, workdir=workdir, scheduler=scheduler, service=service)
    if callback is not None:
        batch.subscribe(callback)
    return batch.run()
