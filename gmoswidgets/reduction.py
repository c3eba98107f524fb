"""The stepwise reduction engine shared by every front end: a state machine over steps.

A :class:`Reduction` of input files with a recipe exposes the recipe as
:class:`~gmoswidgets.steps.Step` objects, runs one step, up to a step or all,
keeps each step's outputs (:mod:`gmoswidgets.storage`), re-runs from any step
with new parameters (invalidating only the steps that follow) and reports
through :class:`~gmoswidgets.events.Event` objects to any subscriber::

    red = Reduction(["N20170613S0180.fits", ...])
    red.subscribe(print)
    red.run_to("overscanCorrect")
    red.rerun_from("overscanCorrect", function="poly", order=1)
    red.run_all()
    red.output_filenames            # ['N20170613S0180_bias.fits']

Everything it uses is given to it: recipe (or a name in ``recipes``),
primitive table, calibration lookup, executor of per-frame work.  The
``reduce`` command, the :class:`~gmoswidgets.reduce.Reduce` class and the
step panel all drive it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterator

from . import validate
from .caldb.lookup import CalibrationLookup, LookupFunction
from .errors import GmosError
from .events import EVENT_KINDS, Event, EventHub
from .executor import Executor
from .frame import Frame, read_frame
from .gmos.tags import tags_of
from .heaptrim import trim_heap
from .logutils import get_logger
from .outputs import (normalize_suffix, output_filename, stamp_input, store_calibration_copy,
                      write_frame)
from .overwrite import replacing
from .primitives.base import PrimitiveTable
from .recipes import Recipe, RecipeBook
from .steps import (DONE, FAILED, PENDING, RUNNING, SKIPPED, ParamState, Step, StepKey,
                    apply_uparms, batch_bounds, build_steps, call_step, choose_recipe, find_step,
                    finish_step, measure_step, package_primitives, parse_uparms, report_failure,
                    set_user_value, split_assignment, start_step, stream_chain, summary_text)
from .storage import KEEP_MODES, StepStore, expected_frame_bytes

__all__ = ["Reduction", "Step", "ParamState", "Event", "ReductionCancelled", "parse_uparms",
           "split_assignment", "choose_recipe", "PENDING", "RUNNING", "DONE", "SKIPPED",
           "FAILED", "EVENT_KINDS", "KEEP_MODES"]


class ReductionCancelled(GmosError):
    """The user cancelled the reduction; the steps already done keep their results."""


class Reduction:
    """A stepwise reduction of a list of files with one recipe.

    Parameters
    ----------
    files : list of path-like
        Input files (at least one), all of the same kind.
    recipe : Recipe or str, optional
        The recipe, or its name in ``recipes``; default: the default recipe
        of ``recipes`` for the first input's tags.
    uparms : list or dict, optional
        Parameter overrides, see :func:`~gmoswidgets.steps.parse_uparms`.
        ``prim:par`` applies to every occurrence of ``prim`` in the recipe.
    user_cals : list of str or dict, optional
        Calibrations to use instead of the service's choice,
        ``["processed_bias:FILE", ...]``.
    calservice : CalibrationService or DefaultService, optional
        Asked for the calibrations the user did not give.  None (the
        default): only user calibrations; the front ends pass
        :func:`gmoswidgets.caldb.lookup.default_service`.
    calibration_lookup : callable, optional
        ``lookup(frame, caltype) -> (Frame, path, reason)`` instead of a
        :class:`~gmoswidgets.caldb.lookup.CalibrationLookup` over
        ``user_cals`` and ``calservice``.
    suffix : str, optional
        Suffix of the final output instead of the recipe's (``--suffix``).
    workdir : path-like, optional
        Where outputs are written (default: the current directory).
        :attr:`output_filenames` are bare file names when it is not given,
        else paths under it.
    keep : {'all', 'last', 'spill', 'stream'}
        Memory policy (:mod:`gmoswidgets.storage`): every step's outputs in
        memory, only the latest ones (on disk if large; earlier ones are
        recomputed if needed), every step's on disk, or only the latest; the
        last two run per-frame steps a few frames at a time.
    spill_dir : path-like, optional
        Parent directory for ``keep='spill'`` or ``'stream'`` (default: the
        system's temporary one).
    recipes : RecipeBook, optional
        Where a recipe name or the default recipe is looked up (default:
        the package's :data:`~gmoswidgets.recipes.RECIPES`).
    primitives : PrimitiveTable, optional
        Where the recipe's primitives are looked up (default: the package's
        :func:`~gmoswidgets.primitives.default_table`).
    logger : logging.Logger, optional
        Default ``gmoswidgets.reduce``.
    executor : Executor, optional
        Runs the steps' per-frame work (``ctx.map``); default: in this thread.

    Raises
    ------
    GmosError
        No inputs, unreadable inputs, mixed kinds of data, unknown recipe,
        unknown primitive or parameter, bad value.
    """

    def __init__(self, files: Iterable[str | PathLike] | str | PathLike,
                 recipe: Recipe | str | None = None, *, uparms=None, user_cals=None,
                 calservice=None, calibration_lookup: LookupFunction | None = None,
                 suffix: str | None = None, workdir=None, keep: str = "all", spill_dir=None,
                 recipes: RecipeBook | None = None, primitives: PrimitiveTable | None = None,
                 logger: logging.Logger | None = None, executor: Executor | None = None):
        self.files = [Path(f) for f in ([files] if isinstance(files, (str, Path)) else files)]
        if not self.files:
            raise GmosError("no input files to reduce")
        self.keep = keep
        self.log = logger or get_logger("reduce")
        self.primitives = primitives if primitives is not None else package_primitives()
        self.headers = validate.read_inputs(self.files)
        self._store = StepStore(keep, spill_dir, frame_bytes=expected_frame_bytes(self.headers))
        self.tags = tags_of(self.headers[0])
        self.recipe = choose_recipe(self.headers, recipe, recipes=recipes)
        self.steps = build_steps(self.recipe, self.primitives)
        self.suffix = normalize_suffix(suffix) if suffix else None
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        validate.check_writable_dir(self.workdir)
        self._shown_dir = Path(workdir) if workdir is not None else None
        apply_uparms(self.steps, uparms, self.primitives, recipe=self.recipe.name, log=self.log)
        self._lookup = calibration_lookup or CalibrationLookup(user_cals, calservice,
                                                               logger=self.log)
        validate.check_user_calibrations(getattr(self._lookup, "user_cals", None))
        self.executor = executor
        self._inputs: list[Frame] | None = None
        self._hub = EventHub()
        self._run_lock = threading.Lock()
        self._cancel = threading.Event()
        self._current: int | None = None
        self.output_filenames: list[str] = []

    # -- looking at steps -----------------------------------------------------------
    def step(self, key: StepKey) -> Step:
        """A step by index, label (``'addVAR (2)'``) or primitive name (if it occurs once).

        Raises
        ------
        ParameterError
            If there is no such step, or the primitive name is ambiguous.
        """
        return find_step(self.steps, key, self.recipe.name)

    @property
    def next_index(self) -> int | None:
        """Index of the first step not done yet, or None when all are done."""
        return next((s.index for s in self.steps if s.status not in (DONE, SKIPPED)), None)

    @property
    def finished(self) -> bool:
        """True when every step has run."""
        return self.next_index is None

    def has_outputs(self, key: StepKey) -> bool:
        """True if the step's outputs are held (in memory or spilled) without recomputing."""
        return self.step(key).index in self._store

    # -- parameters -----------------------------------------------------------------
    def set_param(self, key: StepKey, name: str, value: Any) -> None:
        """Set one parameter of one step (this occurrence only) and invalidate from it.

        ``value`` may be a string, converted to the declared type; a
        ParameterError names an unknown parameter or a bad value.
        """
        self._refuse_while_running()
        step = self.step(key)
        value = step.definition.validate({name: value})[name]
        set_user_value(step, name, value, recipe=self.recipe.name, log=self.log)
        self.invalidate(step.index)

    def reset_param(self, key: StepKey, name: str) -> None:
        """Forget the user's value of ``name`` on a step (back to recipe/default)."""
        self._refuse_while_running()
        step = self.step(key)
        step.user.pop(name, None)
        self.invalidate(step.index)

    def _refuse_while_running(self) -> None:
        if self._run_lock.locked():
            raise GmosError("cannot change the reduction while it is running; cancel() it first")

    def invalidate(self, key: StepKey) -> None:
        """Forget the results of step ``key`` and of every step after it (not while running)."""
        start = self.step(key).index
        self._refuse_while_running()
        for step in self.steps[start:]:
            self._store.discard(step.index)
            step.status, step.elapsed, step.error = PENDING, None, None
        self.output_filenames = []
        self._hub.emit(Event("invalidated", start, self.steps[start].label))

    # -- events -------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every :class:`Event`; returns an unsubscribe function.

        Callbacks run in the thread that runs the reduction; an exception in a
        callback is logged and otherwise ignored.
        """
        return self._hub.subscribe(callback)

    def unsubscribe(self, callback: Callable[[Event], None]) -> None:
        """Stop sending events to ``callback``."""
        self._hub.unsubscribe(callback)

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

    def run_to(self, key: StepKey) -> Step:
        """Run every step not done yet up to and including ``key``; return that step."""
        target = self.step(key).index
        with self._running():
            self._run_through(target)
        return self.steps[target]

    def run_all(self) -> list[str]:
        """Run every remaining step; return the output file names."""
        with self._running():
            self._run_through(len(self.steps) - 1)
        return self.output_filenames

    def rerun_from(self, key: StepKey, until: StepKey | None = None, **params: Any) -> Step:
        """Set ``params`` on step ``key``, invalidate it and what follows, and recompute.

        ``until`` is the last step to run: default the furthest step that was
        done before, or ``key`` itself.  ``params`` apply to this occurrence
        only.  Returns the last step run.
        """
        self._refuse_while_running()
        step = self.step(key)
        values = step.definition.validate(params)
        done = [s.index for s in self.steps if s.status in (DONE, SKIPPED)]
        last = self.step(until).index if until is not None else max(done + [step.index])
        for name, value in values.items():
            set_user_value(step, name, value, recipe=self.recipe.name, log=self.log)
        self.invalidate(step.index)
        return self.run_to(last)

    def outputs(self, key: StepKey) -> list[Frame]:
        """The output frames of a step that has run (recomputed if freed: ``'last'``, ``'stream'``).

        Under ``keep='spill'`` or ``'stream'`` the planes are read-only arrays
        mapped from the spill files (copy before changing them).  A GmosError
        says so if the step has not run yet.
        """
        step = self.step(key)
        index = step.index
        if step.status not in (DONE, SKIPPED):
            raise GmosError(f"step {step.label} is {step.status}: run it first (run_to({index}))")
        if index in self._store:
            return self._store.load(index)
        with self._running():
            return self._frames_after(index)

    def inputs(self) -> list[Frame]:
        """The input frames, as read from the files."""
        return self._frames_after(-1)

    @contextmanager
    def _running(self) -> Iterator[None]:
        """Hold the run lock, clear a stale cancel request and turn log records into events."""
        if not self._run_lock.acquire(blocking=False):
            raise GmosError("this reduction is already running")
        self._cancel.clear()
        try:
            with self._hub.log_events(lambda: self._current):
                yield
        finally:
            self._current = None
            self._run_lock.release()

    def _run_through(self, last: int) -> None:
        for step in self.steps[: last + 1]:
            if step.status not in (DONE, SKIPPED):  # a cancel request stops it before a step
                self._execute(step.index, last)

    def _frames_after(self, index: int) -> list[Frame]:
        """Outputs of step ``index`` (-1: the inputs), recomputing them if freed."""
        if index < 0:
            return self._load_inputs()
        if index not in self._store:
            self._execute(index)
        return self._store.load(index)

    def _load_inputs(self, start: int = 0, stop: int | None = None) -> list[Frame]:
        if self._inputs is not None:
            return self._inputs if (start, stop) == (0, None) else self._inputs[start:stop]
        frames = [stamp_input(read_frame(path), path, self.steps[0].primitive)
                  for path in self.files[start:stop]]
        if self.keep == "all" and (start, stop) == (0, None):
            self._inputs = frames
        return frames

    def _batches(self, step: Step) -> Iterator[tuple[int, int, list[Frame]]]:
        """(first, total, frames): the step's inputs, at once or under ``'last'``/``'stream'`` in
        :func:`~gmoswidgets.steps.batch_bounds`, each handed over to the step (the store lets go
        of it first, StepStore.consume) so that its frames go as it goes."""
        if not self._store.streams:
            inputs = self._frames_after(step.index - 1)
            yield 0, len(inputs), inputs
            return
        total = len(self.files) if step.index == 0 else self._store.count(step.index - 1)
        load = self._load_inputs if step.index == 0 else partial(self._store.load, step.index - 1)
        for first, stop in batch_bounds(step, total, self._store.batch):
            frames = load(first, stop)
            self._store.consume(step.index - 1, first, stop)
            yield first, total, frames

    def _execute(self, index: int, until: int | None = None) -> None:
        """Run step ``index``, and under ``'last'``/``'stream'`` the per-frame steps after it
        up to ``until`` with it (:func:`~gmoswidgets.steps.stream_chain`): each batch of
        frames goes through all of them and only the last one's outputs are held.  Reading
        the inputs and holding or writing the outputs count to the last one's time."""
        if index > 0 and index - 1 not in self._store:
            self._execute(index - 1)
        self._current = index
        chain = stream_chain(self.steps, index, until) if self._store.streams else [index]
        if self._store.streams:
            trim_heap()  # what the previous steps let go of need not stay resident
        elapsed, start = dict.fromkeys(chain, 0.0), time.perf_counter()
        try:
            self._check_cancel()
            self._store.discard(chain[-1])
            measured = {index: self._measure(self.steps[index], elapsed)}
            for first, total, frames in self._batches(self.steps[index]):
                whole = first == 0 and len(frames) == total   # the step's inputs at once
                for i in chain:
                    frames = self._step_batch(self.steps[i], frames, (first, total), elapsed,
                                              keep=i == chain[-1], measured=measured.get(i))
                self._store.append(chain[-1], frames, whole=whole)
            self._store.finish(chain[-1])
            if chain[-1] == len(self.steps) - 1:
                self._write_final(self._store.load(chain[-1]))
            elapsed[chain[-1]] += time.perf_counter() - start - sum(elapsed.values())
        except Exception as exc:
            for i in chain:
                self.steps[i].status = PENDING
                self._store.discard(i)
            report_failure(self.steps[self._current], exc, elapsed[self._current], log=self.log,
                           emit=self._hub.emit, cancelled=isinstance(exc, ReductionCancelled))
            raise
        if self.keep != "all" and isinstance(self._lookup, CalibrationLookup):
            self._lookup.release()  # a master bias or flat is not held for the whole reduction
        for i in chain:
            finish_step(self.steps[i], elapsed[i], log=self.log, emit=self._hub.emit)

    def _measure(self, step: Step, elapsed: dict) -> list | None:
        """Under 'last'/'stream', ``step``'s measurement (steps.measure_step) before its batches."""
        if not self._store.streams or not step.definition.measure or step.values["skip_primitive"]:
            return None
        start_step(step, len(self.steps), log=self.log, emit=self._hub.emit)
        start, inputs = time.perf_counter(), self._frames_after(step.index - 1)
        measured = measure_step(step, inputs, **self._context(step.index, measuring=True))
        elapsed[step.index] += time.perf_counter() - start
        return measured

    def _context(self, index: int, *, measuring: bool = False) -> dict:
        """What step ``index`` runs with (a measurement's progress: the step's start, 0)."""
        return dict(lookup=self._lookup, logger=self.log, executor=self.executor,
                    workdir=self.workdir, cancel_check=self._check_cancel,
                    progress=partial(self._progress, index, measuring=measuring))

    def _step_batch(self, step: Step, inputs: list[Frame], part: tuple[int, int], elapsed: dict,
                    *, keep: bool, measured: list | None) -> list[Frame]:
        """Run ``step`` on ``inputs`` (its first batch starts it) and write its outputs if asked;
        ``keep``: its results may go to disk as they come; ``measured``: see :meth:`_measure`."""
        self._current = step.index
        start_step(step, len(self.steps), log=self.log, emit=self._hub.emit)
        start = time.perf_counter()
        try:
            if step.values["skip_primitive"]:
                return list(inputs)
            keeper = self._store.result_keeper(self.executor, step.index, count=len(inputs))
            outputs = call_step(step, inputs, part=part, handover=self._store.streams,
                                measured=measured, keep_result=keeper if keep else None,
                                **self._context(step.index))
            for frame in outputs if step.values["write_outputs"] else ():
                self._write(frame, frame.filename)
            return outputs
        finally:
            elapsed[step.index] += time.perf_counter() - start

    def _progress(self, index: int, fraction: float, message: str, *, measuring: bool) -> None:
        self._store.trim()  # what a step has read (mapped) or let go of need not stay resident
        self._hub.emit(Event("progress", index, message, fraction=0.0 if measuring else fraction))

    def _write(self, frame: Frame, filename: str) -> Path:
        with replacing(self.workdir / filename, self.log, getattr(self._lookup, "service", None)):
            path = write_frame(frame, self.workdir, filename, protect=self.files)
        self.log.info("wrote %s", path)
        self._hub.emit(Event("output_written", self._current, str(path)))
        return path

    def _write_final(self, outputs: list[Frame]) -> None:
        if not outputs:
            self.log.warning("recipe %s produced no output file", self.recipe.name)
        names = []
        for frame in outputs:
            path = self._write(frame, output_filename(frame, self.suffix) if self.suffix
                               else frame.filename)
            if copy := store_calibration_copy(path, frame, self.workdir, log=self.log,
                                              service=getattr(self._lookup, "service", None)):
                self.log.info("copied to %s", copy)
            names.append(str(self._shown_dir / path.name) if self._shown_dir else path.name)
        self.output_filenames = names

    def close(self) -> None:
        """Free every kept output and delete the spill directory, if any."""
        self._store.close()
        self._inputs = None

    # -- display --------------------------------------------------------------------------
    def summary(self) -> str:
        """The steps with their status and elapsed time, as a text table."""
        return summary_text(self.recipe.name, self.files, self.steps, self.output_filenames)

    __repr__ = summary
