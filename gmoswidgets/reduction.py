"""The stepwise reduction engine shared by every front end.

A :class:`Reduction` is made from input files and a recipe (chosen from the
first input's tags unless named).  It exposes the recipe as an ordered list of
:class:`Step` (primitive, parameters with their origin, status, elapsed time),
runs one step, up to a step or all of them, keeps each step's outputs (in
memory, or spilled to a temporary directory), re-runs from any step with new
parameters (invalidating only the steps that follow) and reports what happens
through :class:`Event` objects to any subscriber::

    red = Reduction(["N20170613S0180.fits", ...])
    red.subscribe(print)
    red.run_to("overscanCorrect")
    red.rerun_from("overscanCorrect", function="poly", order=1)
    red.run_all()
    red.output_filenames            # ['N20170613S0180_bias.fits']

The CLI ``reduce``, the :class:`~gmoswidgets.reduce.Reduce` class and the
dashboard's step panel all drive this one object.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import validate
from .errors import CalibrationNotFoundError, GmosError, ParameterError, RecipeError
from .frame import Frame, read_frame, read_headers
from .gmos.tags import tags_of
from .logutils import LOGGER_NAME, get_logger
from .outputs import (add_history, add_provenance, mark_history, merge_provenance,
                      normalize_suffix, original_name, output_filename, remember_origin,
                      store_calibration_copy, utc_now, write_frame)
from .overwrite import replacing
from .primitives.base import StepContext, get_primitive
from .recipes import Recipe, default_recipe, get_recipe, recipes_for

__all__ = ["Reduction", "Step", "ParamState", "Event", "ReductionCancelled", "CalibrationLookup",
           "parse_uparms", "split_assignment", "choose_recipe", "PENDING", "RUNNING", "DONE",
           "SKIPPED", "FAILED", "EVENT_KINDS", "KEEP_MODES"]

#: Step statuses.
PENDING, RUNNING, DONE, SKIPPED, FAILED = "pending", "running", "done", "skipped", "failed"
#: Kinds of :class:`Event`.
EVENT_KINDS = ("step_started", "step_finished", "step_failed", "progress", "log", "cancelled",
               "invalidated", "output_written")
#: Memory policies: keep every step's outputs, only the last ones, or spill them to disk.
KEEP_MODES = ("all", "last", "spill")
#: Tags that say what kind of data a file is; all inputs of a reduction must agree on them.
_KIND_TAGS = frozenset({"BIAS", "FLAT", "FRINGE", "DARK", "BPM", "CAL", "PROCESSED", "IMAGE",
                        "SPECT"})
#: How to make (or give) each kind of processed calibration, for error messages.
_CALIBRATION_HINTS = {
    "processed_bias": "make one with `reduce @list_of_bias.txt` then `caldb add N..._bias.fits`",
    "processed_flat": "make one with `reduce @list_of_flats.txt` then `caldb add N..._flat.fits`",
    "processed_fringe": ("make one with `reduce @list_of_science.txt -r makeProcessedFringe` "
                         "then `caldb add N..._fringe.fits`"),
}


class ReductionCancelled(GmosError):
    """The user cancelled the reduction; the steps already done keep their results."""


@dataclass(frozen=True)
class Event:
    """Something that happened in a reduction, as seen by subscribers.

    Attributes
    ----------
    kind : str
        One of :data:`EVENT_KINDS`.
    step_index : int or None
        The step concerned, if any.
    message : str
        Human-readable text (step label, progress message, log message, file name).
    fraction : float or None
        Progress within the step, 0..1 (``'progress'`` events).
    error : BaseException or None
        The exception of a ``'step_failed'`` event.
    elapsed : float or None
        Seconds the step took (``'step_finished'`` / ``'step_failed'``).
    record : logging.LogRecord or None
        The log record of a ``'log'`` event.
    """

    kind: str
    step_index: int | None = None
    message: str = ""
    fraction: float | None = None
    error: BaseException | None = None
    elapsed: float | None = None
    record: logging.LogRecord | None = None


@dataclass(frozen=True)
class ParamState:
    """One parameter of a step, for parameter forms.

    ``source`` is ``'default'``, ``'recipe'`` (the recipe fixes it) or ``'user'``.
    """

    name: str
    param: Any
    value: Any
    source: str
    recipe_value: Any = None


# --------------------------------------------------------------------------- parameters
def split_assignment(text: str) -> tuple:
    """Split ``'primitive:param=value'`` into ``('primitive:param', 'value')``.

    Raises
    ------
    ParameterError
        If there is no ``=``.
    """
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise ParameterError(f"{text!r}: expected PRIMITIVE:PARAMETER=VALUE, "
                             "e.g. stackFrames:scale=True")
    return key.strip(), value


def parse_uparms(uparms) -> list:
    """Check user parameter overrides against the primitives' declarations.

    Parameters
    ----------
    uparms : list, dict or None
        ``[("primitive:param", value), ...]`` (the seed's ``Reduce.uparms``),
        ``{"primitive:param": value}`` (current DRAGONS) or command-line
        strings ``"primitive:param=value"``.  String values are converted to
        the declared type.

    Returns
    -------
    list of tuple
        ``(primitive, param, value)`` with converted values, in the given order.

    Raises
    ------
    ParameterError
        For a malformed item, an unknown primitive or parameter (the message
        lists the valid ones) or a bad value.
    """
    if not uparms:
        return []
    items = list(uparms.items()) if isinstance(uparms, dict) else [
        split_assignment(item) if isinstance(item, str) else tuple(item) for item in uparms]
    parsed = []
    for item in items:
        if len(item) != 2:
            raise ParameterError(f"{item!r}: expected a pair ('primitive:param', value)")
        key, value = item
        prim_name, sep, par = str(key).partition(":")
        if not sep or not prim_name.strip() or not par.strip():
            raise ParameterError(f"{key!r}: expected PRIMITIVE:PARAMETER, e.g. stackFrames:scale")
        prim = get_primitive(prim_name.strip())
        par = par.strip()
        parsed.append((prim.name, par, prim.validate({par: value})[par]))
    return parsed


# --------------------------------------------------------------------------- recipe choice
def _kinds(tags) -> str:
    return " ".join(sorted(_KIND_TAGS & set(tags))) or "no calibration tags"


def choose_recipe(headers, name: str | None = None) -> Recipe:
    """The recipe for these inputs: ``name`` or the default for the first input's tags.

    Parameters
    ----------
    headers : list of HeaderSet or Frame
        The inputs (at least one).
    name : str, optional
        A recipe name (``-r``).

    Raises
    ------
    RecipeError
        If the inputs are of different kinds (e.g. biases mixed with flats), the
        recipe is unknown, or it does not apply to an input.
    """
    first = headers[0]
    first_tags = tags_of(first)
    for other in headers[1:]:
        tags = tags_of(other)
        if _KIND_TAGS & tags != _KIND_TAGS & first_tags:
            raise RecipeError(
                f"cannot reduce {other.filename} ({_kinds(tags)}) together with {first.filename} "
                f"({_kinds(first_tags)}): give one list per kind of data, e.g. "
                "`dataselect --tags BIAS` for the biases and `--tags FLAT` for the flats")
    recipe = get_recipe(name) if name else default_recipe(first_tags)
    for item in headers:
        tags = tags_of(item)
        if not recipe.applies_to(tags):
            usable = ", ".join(r.name for r in recipes_for(tags)) or "none"
            raise RecipeError(f"recipe {recipe.name} does not apply to {item.filename} "
                              f"(tags {' '.join(sorted(tags))}); recipes that apply: {usable}")
    return recipe


# --------------------------------------------------------------------------- steps
class Step:
    """One primitive call of the recipe, with its parameters, status and timing.

    Attributes
    ----------
    index : int
        Position in the recipe (steps are identified by index).
    label : str
        The primitive name, numbered when it occurs more than once: ``'addVAR (2)'``.
    primitive : str
        The primitive name.
    definition : Primitive
        The registered primitive (function, parameter declarations, suffix).
    fixed : dict
        Values the recipe fixes, e.g. ``{'zero': True}`` for the science stackFrames.
    user : dict
        Values the user set (``-p``, ``uparms``, :meth:`Reduction.set_param`).
    status : str
        ``'pending'``, ``'running'``, ``'done'``, ``'skipped'`` or ``'failed'``.
    elapsed : float or None
        Seconds the last run took.
    error : BaseException or None
        Why the last run failed.
    """

    def __init__(self, index: int, recipe_step, definition, label: str):
        self.index = index
        self.label = label
        self.primitive = definition.name
        self.definition = definition
        self.fixed = definition.validate(dict(recipe_step.fixed))
        self.user: dict = {}
        self.status = PENDING
        self.elapsed: float | None = None
        self.error: BaseException | None = None

    @property
    def declarations(self) -> dict:
        """Every parameter declaration (own, then the generic ones), by name."""
        return self.definition.all_params()

    @property
    def suffix(self) -> str:
        """File-name suffix of this step's outputs."""
        return self.definition.suffix

    def source(self, name: str) -> str:
        """Where the value of ``name`` comes from: ``'user'``, ``'recipe'`` or ``'default'``."""
        if name in self.user:
            return "user"
        if name in self.fixed:
            return "recipe"
        return "default"

    @property
    def values(self) -> dict:
        """Effective value of every parameter (own and generic)."""
        return {name: self.user.get(name, self.fixed.get(name, p.default))
                for name, p in self.declarations.items()}

    @property
    def params(self) -> dict:
        """Effective values of the primitive's own parameters (what its function receives)."""
        values = self.values
        return {name: values[name] for name in self.definition.params}

    def parameter_states(self) -> list:
        """One :class:`ParamState` per parameter: declaration, value and its origin."""
        values = self.values
        return [ParamState(name, p, values[name], self.source(name), self.fixed.get(name))
                for name, p in self.declarations.items()]

    def describe(self) -> str:
        """``'stackFrames(zero=True)'``: the primitive with its non-default values."""
        changed = {k: v for k, v in self.values.items()
                   if k in self.user or k in self.fixed}
        if not changed:
            return self.primitive
        return f"{self.primitive}(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def __repr__(self) -> str:
        return f"<Step {self.index} {self.label}: {self.status}>"


def _build_steps(recipe: Recipe) -> list:
    counts: dict = {}
    for rstep in recipe.steps:
        counts[rstep.primitive] = counts.get(rstep.primitive, 0) + 1
    seen: dict = {}
    steps = []
    for index, rstep in enumerate(recipe.steps):
        seen[rstep.primitive] = seen.get(rstep.primitive, 0) + 1
        label = rstep.primitive
        if counts[rstep.primitive] > 1:
            label = f"{rstep.primitive} ({seen[rstep.primitive]})"
        steps.append(Step(index, rstep, get_primitive(rstep.primitive), label))
    return steps


# --------------------------------------------------------------------------- calibrations
def _how_to_get(caltype: str) -> str:
    hint = _CALIBRATION_HINTS.get(caltype, "make one")
    return f"To fix: {hint}, or give one with --user_cal {caltype}:FILE"


class CalibrationLookup:
    """The ``calibration_lookup`` given to every step: finds, loads and caches calibrations.

    A user calibration (``--user_cal``) wins; otherwise the calibration
    manager is asked: ``service``, else the one set with
    :func:`gmoswidgets.caldb.set_calservice`, else one opened from the
    configuration file (``~/.geminidr/rsys.cfg``), as DRAGONS does.

    Parameters
    ----------
    user_cals : list of str, dict or UserCalibrations, optional
        ``["processed_bias:FILE", ...]`` (``--user_cal``) or ``{"processed_bias": FILE}``.
    service : CalibrationService, optional
        The calibration database to ask.
    logger : logging.Logger, optional

    Raises
    ------
    GmosError
        A malformed ``user_cals`` entry, an unknown calibration type or a missing file.
    """

    def __init__(self, user_cals=None, service=None, logger=None):
        self.log = logger or get_logger("reduce")
        self.service = service
        self.user_cals = self._parse_user_cals(user_cals)
        self._cache: dict = {}

    @staticmethod
    def _parse_user_cals(user_cals):
        if not user_cals:
            return None
        from .caldb import UserCalibrations
        if isinstance(user_cals, UserCalibrations):
            return user_cals
        if isinstance(user_cals, dict):
            return UserCalibrations(user_cals)
        if isinstance(user_cals, str):
            user_cals = [user_cals]
        return UserCalibrations.parse(list(user_cals))

    def _find(self, frame, caltype: str):
        from . import caldb
        if not (self.user_cals and caltype in self.user_cals) and self.service is None:
            self.service = caldb.get_calservice()
            if self.service is None:
                try:
                    self.service = caldb.CalibrationService()
                except caldb.ConfigError as exc:
                    raise CalibrationNotFoundError(
                        f"no {caltype} for {frame.filename}: no calibration database ({exc}). "
                        + _how_to_get(caltype)) from None
        return caldb.get_calibration(frame, caltype, service=self.service,
                                     user_cals=self.user_cals)

    def __call__(self, frame, caltype: str):
        """Return ``(calibration Frame, path, reason)`` for ``frame``.

        Raises
        ------
        CalibrationNotFoundError
            Saying which calibration is missing, for which file, and how to make or add one.
        """
        match = self._find(frame, caltype)
        for warning in match.warnings or ():
            self.log.warning(warning)
        if match.path is None or match.missing:
            raise CalibrationNotFoundError(f"no {caltype} for {frame.filename}: {match.reason}. "
                                           + _how_to_get(caltype))
        path = Path(match.path)
        self.log.info(f"{frame.filename}: using {caltype} {path.name}: {match.reason}")
        key = (str(path.resolve()), path.stat().st_mtime_ns)
        if key not in self._cache:
            self._cache[key] = read_frame(path)
        return self._cache[key], path, match.reason

    def release(self) -> None:
        """Forget the loaded calibration frames (they are read again when next needed)."""
        self._cache.clear()


# --------------------------------------------------------------------------- storage of outputs
class _Stored:
    """Outputs of one step: in memory, or spilled to files read back on demand."""

    def __init__(self, frames):
        self.frames = frames
        self.spilled: list | None = None

    def spill(self, directory: Path, index: int) -> None:
        if self.frames is None:
            return
        entries = []
        for i, frame in enumerate(self.frames):
            path = directory / f"step{index:02d}_{i:03d}.fits"
            frame.write(path)
            entries.append((path, frame.filename, frame.path))
        self.spilled, self.frames = entries, None

    def discard(self) -> None:
        """Delete the spilled files, if any."""
        for path, _, _ in self.spilled or ():
            path.unlink(missing_ok=True)
        self.spilled = self.frames = None

    def load(self) -> list:
        if self.frames is not None:
            return self.frames
        frames = []
        for path, filename, origin in self.spilled:
            frame = read_frame(path)
            frame.filename, frame.path = filename, origin
            frames.append(frame)
        return frames


def _shallow_copy(frame: Frame) -> Frame:
    """A new Frame sharing pixel arrays but with its own PHU and tables."""
    new = Frame(frame.phu.copy(), frame.exts, frame.path,
                {name: table.copy() for name, table in frame.tables.items()})
    new.filename = frame.filename
    return new


class _EventLogHandler(logging.Handler):
    """Turns log records of the running thread into ``'log'`` events."""

    def __init__(self, reduction: "Reduction", thread_id: int):
        super().__init__()
        self.reduction, self.thread_id = reduction, thread_id

    def emit(self, record):
        if record.thread == self.thread_id:
            self.reduction._emit(Event("log", self.reduction._current, record.getMessage(),
                                       record=record))


# --------------------------------------------------------------------------- the engine
class Reduction:
    """A stepwise reduction of a list of files with one recipe.

    Parameters
    ----------
    files : list of path-like
        Input files (at least one), all of the same kind.
    recipe : str, optional
        Recipe name; default: the default recipe for the first input's tags.
    uparms : list or dict, optional
        Parameter overrides, see :func:`parse_uparms`.  ``prim:par`` applies to
        every occurrence of ``prim`` in the recipe.
    user_cals : list of str or dict, optional
        Calibrations to use instead of the calibration manager's choice,
        ``["processed_bias:FILE", ...]``.
    suffix : str, optional
        Suffix of the final output instead of the recipe's (``--suffix``).
    workdir : path-like, optional
        Where outputs are written (default: the current directory).
        :attr:`output_filenames` are bare file names when it is not given,
        else paths under it.
    keep : {'all', 'last', 'spill'}
        Memory policy: keep every step's outputs (interactive use), only the
        latest ones (earlier ones are recomputed if needed), or write earlier
        ones to a temporary directory and read them back when needed.
    spill_dir : path-like, optional
        Directory for ``keep='spill'`` (default: a new temporary directory).
    calibration_lookup : callable, optional
        ``lookup(frame, caltype) -> (Frame, path, reason)``; default a
        :class:`CalibrationLookup` over ``user_cals`` and ``calservice``.
    calservice : object, optional
        Calibration service passed to the calibration manager.
    logger : logging.Logger, optional
        Default ``gmoswidgets.reduce``.

    Raises
    ------
    GmosError
        No inputs, unreadable inputs, mixed kinds of data, unknown recipe,
        unknown primitive or parameter, bad value.
    """

    def __init__(self, files, recipe: str | None = None, uparms=None, user_cals=None,
                 suffix: str | None = None, workdir=None, keep: str = "all", spill_dir=None,
                 calibration_lookup: Callable | None = None, calservice=None, logger=None):
        if isinstance(files, (str, Path)):
            files = [files]
        self.files = [Path(f) for f in files]
        if not self.files:
            raise GmosError("no input files to reduce")
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {KEEP_MODES}, not {keep!r}")
        self.log = logger or get_logger("reduce")
        self.headers = [read_headers(f) for f in self.files]
        validate.check_inputs(self.headers)
        self.tags = tags_of(self.headers[0])
        self.recipe = choose_recipe(self.headers, recipe)
        self.steps = _build_steps(self.recipe)
        self.suffix = normalize_suffix(suffix) if suffix else None
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        validate.check_writable_dir(self.workdir)
        self._shown_dir = Path(workdir) if workdir is not None else None
        self.keep = keep
        self._spill_root = Path(spill_dir) if spill_dir is not None else None
        self._spill_dir: Path | None = None
        for prim, par, value in parse_uparms(uparms):
            self._apply_user_value(prim, par, value)
        self._lookup = calibration_lookup or CalibrationLookup(user_cals, calservice, self.log)
        validate.check_user_calibrations(getattr(self._lookup, "user_cals", None))
        self._inputs: list | None = None
        self._stored: dict = {}
        self._subscribers: list = []
        self._sub_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._cancel = threading.Event()
        self._current: int | None = None
        self._current_inputs: list = []
        self._calibrations_used: list = []
        self.output_filenames: list = []

    # -- looking at steps -----------------------------------------------------------
    def step(self, key) -> Step:
        """A step by index, label (``'addVAR (2)'``) or primitive name (if it occurs once).

        Raises
        ------
        ParameterError
            If there is no such step, or the primitive name is ambiguous.
        """
        if isinstance(key, Step):
            return self.steps[key.index]
        if isinstance(key, int) and not isinstance(key, bool):
            if -len(self.steps) <= key < len(self.steps):
                return self.steps[key]
            raise ParameterError(f"no step {key}: the recipe has {len(self.steps)} steps")
        for step in self.steps:
            if step.label == key:
                return step
        matches = [s for s in self.steps if s.primitive == key]
        if len(matches) == 1:
            return matches[0]
        labels = ", ".join(s.label for s in self.steps)
        if matches:
            raise ParameterError(f"{key} occurs {len(matches)} times in {self.recipe.name}; "
                                 f"name the step by index or label: {labels}")
        raise ParameterError(f"{self.recipe.name} has no step {key!r}; steps: {labels}")

    @property
    def next_index(self) -> int | None:
        """Index of the first step not done yet, or None when all are done."""
        for step in self.steps:
            if step.status not in (DONE, SKIPPED):
                return step.index
        return None

    @property
    def finished(self) -> bool:
        """True when every step has run."""
        return self.next_index is None

    def has_outputs(self, key) -> bool:
        """True if the step's outputs are held (in memory or spilled) without recomputing."""
        return self.step(key).index in self._stored

    # -- parameters -----------------------------------------------------------------
    def _apply_user_value(self, prim: str, par: str, value) -> None:
        targets = [s for s in self.steps if s.primitive == prim]
        if not targets:
            self.log.warning(f"{prim}:{par} ignored: {prim} is not a step of recipe "
                             f"{self.recipe.name} ({', '.join(s.primitive for s in self.steps)})")
        for step in targets:
            self._set_user(step, par, value)

    def _set_user(self, step: Step, par: str, value) -> None:
        if par in step.fixed and step.fixed[par] != value:
            self.log.warning(f"{step.label}: {par}={value!r} overrides the value the recipe "
                             f"{self.recipe.name} sets ({par}={step.fixed[par]!r})")
        step.user[par] = value

    def set_param(self, key, name: str, value) -> None:
        """Set one parameter of one step (this occurrence only) and invalidate from it.

        Parameters
        ----------
        key : int, str or Step
            The step (see :meth:`step`).
        name : str
            Parameter name (own or generic).
        value : object
            New value; strings are converted to the declared type.

        Raises
        ------
        ParameterError
            Unknown parameter or bad value.
        """
        self._refuse_while_running()
        step = self.step(key)
        value = step.definition.validate({name: value})[name]
        self._set_user(step, name, value)
        self.invalidate(step.index)

    def reset_param(self, key, name: str) -> None:
        """Forget the user's value of ``name`` on a step (back to recipe/default)."""
        self._refuse_while_running()
        step = self.step(key)
        step.user.pop(name, None)
        self.invalidate(step.index)

    def _refuse_while_running(self) -> None:
        if self._run_lock.locked():
            raise GmosError("cannot change the reduction while it is running; cancel() it first")

    def invalidate(self, key) -> None:
        """Forget the results of step ``key`` and of every step after it.

        Raises
        ------
        GmosError
            While the reduction is running (call :meth:`cancel` first).
        """
        start = self.step(key).index
        self._refuse_while_running()
        for step in self.steps[start:]:
            stored = self._stored.pop(step.index, None)
            if stored is not None:
                stored.discard()
            step.status, step.elapsed, step.error = PENDING, None, None
        self.output_filenames = []
        self._emit(Event("invalidated", start, self.steps[start].label))

    # -- events -------------------------------------------------------------------------
    def subscribe(self, callback: Callable) -> Callable:
        """Call ``callback(event)`` for every :class:`Event`; returns an unsubscribe function.

        Callbacks run in the thread that runs the reduction; an exception in a
        callback is logged and otherwise ignored.
        """
        with self._sub_lock:
            self._subscribers.append(callback)
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Callable) -> None:
        """Stop sending events to ``callback``."""
        with self._sub_lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def _emit(self, event: Event) -> None:
        with self._sub_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken observer must not break the reduction
                logging.getLogger(LOGGER_NAME).debug("event subscriber failed", exc_info=True)

    def cancel(self) -> None:
        """Ask the running reduction to stop at the next step boundary or progress report."""
        self._cancel.set()

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise ReductionCancelled("reduction cancelled by the user")

    # -- running ------------------------------------------------------------------------
    def run_next(self) -> Step | None:
        """Run the first step not done yet; return it (None if all are done)."""
        with self._running():
            index = self.next_index
            if index is None:
                return None
            self._run_through(index)
            return self.steps[index]

    def run_to(self, key) -> Step:
        """Run every step not done yet up to and including ``key``; return that step."""
        target = self.step(key).index
        with self._running():
            self._run_through(target)
        return self.steps[target]

    def run_all(self) -> list:
        """Run every remaining step; return the output file names."""
        with self._running():
            self._run_through(len(self.steps) - 1)
        return self.output_filenames

    def rerun_from(self, key, until=None, **params) -> Step:
        """Set ``params`` on step ``key``, invalidate it and what follows, and recompute.

        Parameters
        ----------
        key : int, str or Step
            The first step to recompute.
        until : int, str or Step, optional
            Last step to run; default the furthest step that was done before,
            or ``key`` itself.
        **params
            New parameter values for that step (this occurrence only).

        Returns
        -------
        Step
            The last step run.
        """
        self._refuse_while_running()
        step = self.step(key)
        values = step.definition.validate(params)
        done = [s.index for s in self.steps if s.status in (DONE, SKIPPED)]
        last = self.step(until).index if until is not None else max(done + [step.index])
        for name, value in values.items():
            self._set_user(step, name, value)
        self.invalidate(step.index)
        return self.run_to(last)

    def outputs(self, key) -> list:
        """The output frames of a step that has run (recomputed if freed, ``keep='last'``).

        Raises
        ------
        GmosError
            If the step has not run yet.
        """
        step = self.step(key)
        index = step.index
        if step.status not in (DONE, SKIPPED):
            raise GmosError(f"step {step.label} is {step.status}: run it first (run_to({index}))")
        if index in self._stored:
            return self._stored[index].load()
        with self._running():
            return self._frames_after(index)

    def inputs(self) -> list:
        """The input frames, as read from the files."""
        return self._frames_after(-1)

    @contextmanager
    def _running(self):
        """Hold the run lock, clear a stale cancel request and turn log records into events."""
        if not self._run_lock.acquire(blocking=False):
            raise GmosError("this reduction is already running")
        logger = logging.getLogger(LOGGER_NAME)
        raised_level = logger.level == logging.NOTSET  # let INFO records reach the events
        if raised_level:
            logger.setLevel(logging.INFO)
        handler = _EventLogHandler(self, threading.get_ident())
        logger.addHandler(handler)
        self._cancel.clear()
        try:
            yield
        finally:
            logger.removeHandler(handler)
            if raised_level:
                logger.setLevel(logging.NOTSET)
            self._current = None
            self._run_lock.release()

    def _run_through(self, last: int) -> None:
        for step in self.steps[: last + 1]:
            if step.status not in (DONE, SKIPPED):
                if self._cancel.is_set():
                    self.log.warning(f"reduction cancelled before {step.label}")
                    self._emit(Event("cancelled", step.index, step.label))
                    raise ReductionCancelled("reduction cancelled by the user")
                self._execute(step.index)

    def _frames_after(self, index: int) -> list:
        """Outputs of step ``index`` (-1: the inputs), recomputing them if freed."""
        if index < 0:
            return self._load_inputs()
        if index not in self._stored:
            self._execute(index)
        return self._stored[index].load()

    def _load_inputs(self) -> list:
        if self._inputs is not None:
            return self._inputs
        frames = []
        for path in self.files:
            frame = read_frame(path)
            remember_origin(frame)
            add_provenance(frame, path, self.steps[0].primitive)
            frames.append(frame)
        if self.keep == "all":
            self._inputs = frames
        return frames

    def _execute(self, index: int) -> None:
        step = self.steps[index]
        inputs = self._frames_after(index - 1)
        self._current = index
        step.status, step.error, step.elapsed = RUNNING, None, None
        self._emit(Event("step_started", index, step.label))
        self.log.info(f"Step {index + 1}/{len(self.steps)}: {step.describe()}")
        start = time.perf_counter()
        try:
            if step.values["skip_primitive"]:
                self.log.info(f"{step.label} skipped (skip_primitive=True)")
                outputs, status = list(inputs), SKIPPED
            else:
                outputs, status = self._call(step, inputs), DONE
            self._keep(index, outputs)
            if step.values["write_outputs"] and status == DONE:
                for frame in outputs:
                    self._write(frame, frame.filename)
            if index == len(self.steps) - 1:
                self._write_final(outputs)
        except ReductionCancelled:
            step.status = PENDING
            self._stored.pop(index, None)
            self.log.warning(f"reduction cancelled during {step.label}")
            self._emit(Event("cancelled", index, step.label))
            raise
        except Exception as exc:
            step.status, step.error = FAILED, exc
            step.elapsed = time.perf_counter() - start
            self._stored.pop(index, None)
            self.log.error(f"{step.label} failed: {exc}")
            if not isinstance(exc, GmosError):  # a bug, not bad input: keep the traceback
                self.log.debug(f"{step.label} traceback", exc_info=True)
            self._emit(Event("step_failed", index, str(exc), error=exc, elapsed=step.elapsed))
            raise
        if self.keep != "all" and isinstance(self._lookup, CalibrationLookup):
            self._lookup.release()  # a master bias or flat is not held for the whole reduction
        step.status = status
        step.elapsed = time.perf_counter() - start
        self.log.debug(f"{step.label} took {step.elapsed:.2f} s")
        self._emit(Event("step_finished", index, step.label, elapsed=step.elapsed))

    def _call(self, step: Step, inputs: list) -> list:
        ctx = StepContext(logger=self.log, calibration_lookup=self._lookup_for_step,
                          progress_callback=lambda f, m: self._emit(
                              Event("progress", step.index, m, fraction=f)),
                          cancel_check=self._check_cancel, workdir=self.workdir)
        self._current_inputs, self._calibrations_used = list(inputs), []
        params = step.params
        started = utc_now()
        result = step.definition.func(list(inputs), ctx, **params)
        stopped = utc_now()
        if not isinstance(result, (list, tuple)) or not all(isinstance(f, Frame) for f in result):
            raise GmosError(f"{step.primitive} returned {type(result).__name__}, "
                            "expected a list of Frame")
        if not result:
            self.log.warning(f"{step.label} produced no output")
        one_to_one = len(result) == len(inputs)
        outputs = []
        for i, frame in enumerate(result):
            if any(frame is f for f in inputs):
                frame = _shallow_copy(frame)
            sources = [inputs[i]] if one_to_one else list(inputs)
            if sources:
                remember_origin(frame, original_name(sources[0]))
                merge_provenance(frame, sources)
                if "HISTORY" not in frame.tables and "HISTORY" in sources[0].tables:
                    frame.tables["HISTORY"] = sources[0].tables["HISTORY"].copy()
            for used_index, path in self._calibrations_used:
                if used_index is None or not one_to_one or used_index == i:
                    add_provenance(frame, path, step.primitive, stopped)
            mark_history(frame, step.primitive, stopped)
            add_history(frame, step.primitive, params, started, stopped)
            frame.filename = output_filename(frame, step.suffix)
            outputs.append(frame)
        self._current_inputs = []  # only needed while the primitive runs: do not hold them
        return outputs

    def _lookup_for_step(self, frame, caltype: str):
        result = self._lookup(frame, caltype)
        index = next((i for i, f in enumerate(self._current_inputs) if f is frame), None)
        if index is None:
            index = next((i for i, f in enumerate(self._current_inputs)
                          if f.filename == frame.filename), None)
        self._calibrations_used.append((index, result[1]))
        return result

    def _keep(self, index: int, outputs: list) -> None:
        self._stored[index] = _Stored(outputs)
        if self.keep == "all":
            return
        for earlier in [k for k in self._stored if k < index]:
            if self.keep == "last":
                del self._stored[earlier]
            else:
                self._stored[earlier].spill(self._spill_path(), earlier)

    def _spill_path(self) -> Path:
        if self._spill_dir is None:
            if self._spill_root is not None:
                self._spill_root.mkdir(parents=True, exist_ok=True)
            self._spill_dir = Path(tempfile.mkdtemp(prefix="gmoswidgets-spill-",
                                                    dir=self._spill_root))
            weakref.finalize(self, shutil.rmtree, self._spill_dir, True)
        return self._spill_dir

    def _write(self, frame: Frame, filename: str) -> Path:
        with replacing(self.workdir / filename, self.log, getattr(self._lookup, "service", None)):
            path = write_frame(frame, self.workdir, filename, protect=self.files)
        self.log.info(f"wrote {path}")
        self._emit(Event("output_written", self._current, str(path)))
        return path

    def _write_final(self, outputs: list) -> None:
        if not outputs:
            self.log.warning(f"recipe {self.recipe.name} produced no output file")
        names = []
        for frame in outputs:
            name = output_filename(frame, self.suffix) if self.suffix else frame.filename
            path = self._write(frame, name)
            copy = store_calibration_copy(path, frame, self.workdir, log=self.log,
                                          service=getattr(self._lookup, "service", None))
            if copy is not None:
                self.log.info(f"copied to {copy}")
            names.append(str(self._shown_dir / path.name) if self._shown_dir else path.name)
        self.output_filenames = names

    def close(self) -> None:
        """Free every kept output and delete the spill directory, if any."""
        self._stored.clear()
        self._inputs = None
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None

    # -- display --------------------------------------------------------------------------
    def summary(self) -> str:
        """The steps with their status and elapsed time, as a text table."""
        names = ", ".join(p.name for p in self.files[:3]) + (" ..." if len(self.files) > 3 else "")
        lines = [f"Reduction with recipe {self.recipe.name} of {len(self.files)} file(s): {names}",
                 f"  {'#':>3}  {'step':<32} {'status':<8} {'elapsed':>9}"]
        for step in self.steps:
            elapsed = f"{step.elapsed:8.2f}s" if step.elapsed is not None else ""
            line = f"  {step.index:>3}  {step.describe():<32} {step.status:<8} {elapsed:>9}"
            if step.error is not None:
                line += f"  {type(step.error).__name__}: {step.error}"
            lines.append(line)
        if self.output_filenames:
            lines.append("  outputs: " + ", ".join(self.output_filenames))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()
