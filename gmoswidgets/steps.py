"""The plan of a reduction: its recipe, and one :class:`Step` per primitive call.

* :func:`choose_recipe` checks that the inputs are of one kind and picks the
  recipe (named, given, or the default for the first input's tags).
* :func:`parse_uparms` reads user parameter overrides (``-p
  prim:par=value``, the seed's ``Reduce.uparms``) against the primitives'
  declarations.
* :func:`build_steps` turns a recipe into :class:`Step` objects that know
  their parameters, where each value comes from (default, recipe, user),
  their status and timing.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Union

from .caldb.lookup import StepCalibrations
from .errors import GmosError, ParameterError, RecipeError
from .events import Event
from .frame import Frame
from .gmos.tags import tags_of
from .outputs import original_name, stamp_outputs, utc_now
from .primitives.base import Param, Primitive, PrimitiveTable, StepContext
from .recipes import Recipe, RecipeBook, RecipeStep

__all__ = ["Step", "StepKey", "ParamState", "build_steps", "parse_uparms", "split_assignment",
           "choose_recipe", "find_step", "steps_table", "package_primitives", "package_recipes",
           "user_targets", "apply_uparms", "set_user_value", "summary_text", "stream_chain",
           "batch_bounds", "frame_by_frame", "call_step", "measure_step", "start_step",
           "finish_step", "report_failure",
           "PER_FRAME", "PENDING", "RUNNING", "DONE", "SKIPPED", "FAILED"]

#: Step statuses.
PENDING, RUNNING, DONE, SKIPPED, FAILED = "pending", "running", "done", "skipped", "failed"
#: Tags that say what kind of data a file is; all inputs of a reduction must agree on them.
_KIND_TAGS = frozenset({"BIAS", "FLAT", "FRINGE", "DARK", "BPM", "CAL", "PROCESSED", "IMAGE",
                        "SPECT"})
#: Primitives whose output for a frame depends on that frame alone (and its calibrations):
#: the engine may run them a few frames at a time (``keep='last'``, ``'stream'``) with the
#: same result.  (A primitive that declares its all-frames measurement apart, QECorrect, also
#: runs a few frames at a time once measured, and may start a chain: :func:`frame_by_frame`.)
PER_FRAME = frozenset({"prepare", "addDQ", "addVAR", "overscanCorrect", "biasCorrect",
                       "ADUToElectrons", "flatCorrect", "mosaicDetectors"})


def package_primitives() -> PrimitiveTable:
    """The package's primitive table (:func:`gmoswidgets.primitives.default_table`)."""
    from .primitives import default_table
    return default_table()


def package_recipes() -> RecipeBook:
    """The package's recipe book (:data:`gmoswidgets.recipes.RECIPES`)."""
    from .recipes import RECIPES
    return RECIPES


@dataclass(frozen=True)
class ParamState:
    """One parameter of a step, for parameter forms.

    ``source`` is ``'default'``, ``'recipe'`` (the recipe fixes it) or ``'user'``.
    """

    name: str
    param: Param
    value: Any
    source: str
    recipe_value: Any = None


# --------------------------------------------------------------------------- parameters
def split_assignment(text: str) -> tuple[str, str]:
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


def parse_uparms(uparms, primitives: PrimitiveTable | None = None) -> list[tuple]:
    """Check user parameter overrides against the primitives' declarations.

    Parameters
    ----------
    uparms : list, dict or None
        ``[("primitive:param", value), ...]`` (the seed's ``Reduce.uparms``),
        ``{"primitive:param": value}`` (current DRAGONS) or command-line
        strings ``"primitive:param=value"``.  String values are converted to
        the declared type; ``None`` is None, as in DRAGONS (an error for a
        parameter that does not allow None).
    primitives : PrimitiveTable, optional
        Where primitives are looked up (default: :func:`package_primitives`).

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
    table = primitives if primitives is not None else package_primitives()
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
        prim = table.get(prim_name.strip())
        par = par.strip()
        parsed.append((prim.name, par, prim.validate({par: value})[par]))
    return parsed


# --------------------------------------------------------------------------- recipe choice
def _kinds(tags) -> str:
    return " ".join(sorted(_KIND_TAGS & set(tags))) or "no calibration tags"


def choose_recipe(headers, recipe: Recipe | str | None = None, *,
                  recipes: RecipeBook | None = None) -> Recipe:
    """The recipe for these inputs: ``recipe`` or the default for the first input's tags.

    Parameters
    ----------
    headers : list of HeaderSet or Frame
        The inputs (at least one).
    recipe : Recipe or str, optional
        A recipe, or the name of one in ``recipes`` (``-r``).
    recipes : RecipeBook, optional
        Where names and defaults are looked up (default: :func:`package_recipes`).

    Raises
    ------
    RecipeError
        If the inputs are of different kinds (e.g. biases mixed with flats), the
        recipe is unknown, or it does not apply to an input.
    """
    book = recipes if recipes is not None else package_recipes()
    first = headers[0]
    first_tags = tags_of(first)
    for other in headers[1:]:
        tags = tags_of(other)
        if _KIND_TAGS & tags != _KIND_TAGS & first_tags:
            raise RecipeError(
                f"cannot reduce {other.filename} ({_kinds(tags)}) together with {first.filename} "
                f"({_kinds(first_tags)}): give one list per kind of data, e.g. "
                "`dataselect --tags BIAS` for the biases and `--tags FLAT` for the flats")
    if isinstance(recipe, Recipe):
        chosen = recipe
    else:
        chosen = book.get(recipe) if recipe else book.default_for(first_tags)
    for item in headers:
        tags = tags_of(item)
        if not chosen.applies_to(tags):
            usable = ", ".join(r.name for r in book.for_tags(tags)) or "none"
            raise RecipeError(f"recipe {chosen.name} does not apply to {item.filename} "
                              f"(tags {' '.join(sorted(tags))}); recipes that apply: {usable}")
    return chosen


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
        The primitive (function, parameter declarations, suffix).
    fixed : dict
        Values the recipe fixes, e.g. ``{'zero': True}`` for the science stackFrames.
    user : dict
        Values the user set (``-p``, ``uparms``, ``Reduction.set_param``).
    status : str
        ``'pending'``, ``'running'``, ``'done'``, ``'skipped'`` or ``'failed'``.
    elapsed : float or None
        Seconds the last run took.
    error : BaseException or None
        Why the last run failed.
    """

    def __init__(self, index: int, recipe_step: RecipeStep, definition: Primitive, label: str):
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
    def declarations(self) -> dict[str, Param]:
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

    def parameter_states(self) -> list[ParamState]:
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


def find_step(steps: list[Step], key: StepKey, recipe_name: str) -> Step:
    """A step by index, label (``'addVAR (2)'``) or primitive name (if it occurs once).

    Raises
    ------
    ParameterError
        If there is no such step, or the primitive name is ambiguous.
    """
    if isinstance(key, Step):
        return steps[key.index]
    if isinstance(key, int) and not isinstance(key, bool):
        if -len(steps) <= key < len(steps):
            return steps[key]
        raise ParameterError(f"no step {key}: the recipe has {len(steps)} steps")
    for step in steps:
        if step.label == key:
            return step
    matches = [s for s in steps if s.primitive == key]
    if len(matches) == 1:
        return matches[0]
    labels = ", ".join(s.label for s in steps)
    if matches:
        raise ParameterError(f"{key} occurs {len(matches)} times in {recipe_name}; "
                             f"name the step by index or label: {labels}")
    raise ParameterError(f"{recipe_name} has no step {key!r}; steps: {labels}")


def user_targets(steps: list[Step], prim: str, par: str, *, recipe: str, log) -> list[Step]:
    """The steps a user's ``prim:par`` applies to (every occurrence); logs a warning if none."""
    targets = [s for s in steps if s.primitive == prim]
    if not targets:
        log.warning("%s:%s ignored: %s is not a step of recipe %s (%s)", prim, par, prim,
                    recipe, ", ".join(s.primitive for s in steps))
    return targets


def apply_uparms(steps: list[Step], uparms, primitives: PrimitiveTable | None = None, *,
                 recipe: str, log) -> None:
    """Set the user's parameter overrides (:func:`parse_uparms`) on every step they apply to."""
    for prim, par, value in parse_uparms(uparms, primitives):
        for step in user_targets(steps, prim, par, recipe=recipe, log=log):
            set_user_value(step, par, value, recipe=recipe, log=log)


def set_user_value(step: Step, par: str, value, *, recipe: str, log) -> None:
    """Set the user's value of ``par`` on ``step``; warn if it overrides the recipe's value."""
    if par in step.fixed and step.fixed[par] != value:
        log.warning("%s: %s=%r overrides the value the recipe %s sets (%s=%r)",
                    step.label, par, value, recipe, par, step.fixed[par])
    step.user[par] = value


def steps_table(steps: list[Step]) -> list[str]:
    """The steps with their status, elapsed time and error, as lines of a text table."""
    lines = [f"  {'#':>3}  {'step':<32} {'status':<8} {'elapsed':>9}"]
    for step in steps:
        elapsed = f"{step.elapsed:8.2f}s" if step.elapsed is not None else ""
        line = f"  {step.index:>3}  {step.describe():<32} {step.status:<8} {elapsed:>9}"
        if step.error is not None:
            line += f"  {type(step.error).__name__}: {step.error}"
        lines.append(line)
    return lines


def frame_by_frame(step: Step) -> bool:
    """True if the engine may run ``step`` a few frames at a time (``keep='last'``,
    ``'stream'``): a per-frame primitive (:data:`PER_FRAME`), or one that declares its
    all-frames measurement apart (:class:`~gmoswidgets.primitives.base.Primitive`'s
    ``measure``: measured over all the inputs first, :func:`measure_step`)."""
    return step.primitive in PER_FRAME or step.definition.measure is not None


def stream_chain(steps: list[Step], index: int, until: int | None) -> list[int]:
    """Indices of step ``index`` and of the per-frame steps not done that follow it, up to
    ``until``.

    When step ``index`` works frame by frame (:func:`frame_by_frame`), so do
    the steps of the chain (:data:`PER_FRAME`: a step with a measurement over
    all its inputs only starts a chain): a batch of frames can go through all
    of them before the next batch starts, and only the last one's outputs
    need be kept.  Otherwise (or without ``until``) the chain is step
    ``index`` alone.
    """
    chain = [index]
    while (until is not None and chain[-1] < until and frame_by_frame(steps[chain[-1]])
           and steps[chain[-1] + 1].primitive in PER_FRAME
           and steps[chain[-1] + 1].status not in (DONE, SKIPPED)):
        chain.append(chain[-1] + 1)
    return chain


def batch_bounds(step: Step, total: int, batch: int) -> list[tuple[int, int]]:
    """``(first, stop)`` of the batches in which ``step`` takes its ``total`` inputs when the
    engine streams: ``batch`` frames at a time for a step that works frame by frame
    (:func:`frame_by_frame`), else all at once (once, even with no input)."""
    if frame_by_frame(step):
        return [(first, min(first + batch, total)) for first in range(0, total, batch)]
    return [(0, total)]


def measure_step(step: Step, inputs: list[Frame], *, lookup, progress, **context) -> list:
    """The measurement ``step``'s primitive declares (``measure``) over all of its ``inputs``.

    One item per input, for :func:`call_step` (``measured``) to give to the
    application of each batch.  ``lookup``, ``progress`` (the measurement's
    ``progress(fraction, message)``) and ``context`` as in :func:`call_step`.
    """
    ctx = StepContext(calibration_lookup=lookup, **context, progress_callback=progress)
    definition = step.definition
    measured = list(definition.measure(list(inputs), ctx,
                                       **definition.arguments(step.params)))
    if len(measured) != len(inputs):
        raise GmosError(f"{step.primitive} measured {len(measured)} items for "
                        f"{len(inputs)} frames")
    return measured


def call_step(step: Step, inputs: list[Frame], *, part: tuple[int, int] | None = None, lookup,
              progress, handover: bool = False, measured: list | None = None,
              **context) -> list[Frame]:
    """Run ``step``'s primitive on ``inputs``; its outputs stamped with the step.

    Parameters
    ----------
    step : Step
    inputs : list of Frame
    part : tuple of int, optional
        ``(first, total)``: ``inputs`` are frames ``first:first + len(inputs)``
        of the step's ``total`` inputs (a streamed batch); default all of them.
    lookup : callable
        ``lookup(frame, caltype)``: the calibrations (each output's PROVENANCE
        lists those used for its inputs).
    progress : callable
        ``progress(fraction, message)``, the fraction of the whole step done.
    handover : bool
        The caller hands the frames over (nothing else holds them): they are
        taken out of ``inputs``, which is left empty, so that each is freed
        as soon as the primitive lets go of it (the primitive gets its own
        list of the frames, which it may empty as it goes, as always); the
        outputs are stamped from the inputs' headers and tables.
    measured : list, optional
        For a primitive with a measurement: its items for all the step's
        ``total`` inputs (:func:`measure_step`); default: measured over ``inputs``.
    **context
        The other arguments of the primitive's
        :class:`~gmoswidgets.primitives.base.StepContext` (``logger``, ...).

    Raises
    ------
    GmosError
        The primitive did not return a list of frames.
    """
    first, total = part or (0, len(inputs))
    count = len(inputs)
    used = StepCalibrations(lookup, original_name)
    ctx = StepContext(calibration_lookup=used, **context, progress_callback=lambda f, m: progress(
        (first + f * count) / max(total, 1), m))
    params = step.params
    frames = list(inputs)
    if handover:
        sources = [(weakref.ref(frame), _bare(frame)) for frame in frames]
        inputs.clear()
    if measured is not None:
        measured = measured[first:first + count]
    started = utc_now()
    result = step.definition.run(frames, ctx, step.definition.arguments(params), measured=measured)
    stopped = utc_now()
    del frames
    if handover:  # an input passed through is alive (and is its output): stamping copies it
        inputs = [bare if alive() is None else alive() for alive, bare in sources]
    if not isinstance(result, (list, tuple)) or not all(isinstance(f, Frame) for f in result):
        raise GmosError(f"{step.primitive} returned {type(result).__name__}, "
                        "expected a list of Frame")
    if not result:
        ctx.log.warning("%s produced no output", step.label)
    return stamp_outputs(result, inputs, primitive=step.primitive, params=params,
                         suffix=step.suffix, started=started, stopped=stopped,
                         calibrations_for=lambda sources: used.paths_for(sources, inputs))


def _bare(frame: Frame) -> Frame:
    """``frame`` without its pixel planes: what stamping its outputs reads (headers, tables)."""
    bare = Frame(frame.phu, [], frame.path, frame.tables)
    bare.filename = frame.filename
    return bare


def start_step(step: Step, count: int, *, log, emit) -> None:
    """Mark ``step`` (of ``count`` steps) running, announce it (``emit(Event)``) and log it,
    unless it is running already (its next batch, or its application after its measurement)."""
    if step.status == RUNNING:
        return
    step.status, step.error = RUNNING, None
    emit(Event("step_started", step.index, step.label))
    log.info("Step %d/%d: %s", step.index + 1, count, step.describe())
    if step.values["skip_primitive"]:
        log.info("%s skipped (skip_primitive=True)", step.label)


def finish_step(step: Step, elapsed: float, *, log, emit) -> None:
    """Mark ``step`` done (or skipped) after ``elapsed`` seconds, log and announce it."""
    step.status = SKIPPED if step.values["skip_primitive"] else DONE
    step.elapsed = elapsed
    log.debug("%s took %.2f s", step.label, step.elapsed)
    emit(Event("step_finished", step.index, step.label, elapsed=step.elapsed))


def report_failure(step: Step, exc: BaseException, elapsed: float, *, log, emit,
                   cancelled: bool) -> None:
    """Log and announce (``emit(Event)``) that ``step`` was cancelled, or failed with ``exc``
    after ``elapsed`` seconds (its status, error and time then say so)."""
    if cancelled:
        log.warning("reduction cancelled at %s", step.label)
        emit(Event("cancelled", step.index, step.label))
        return
    step.status, step.error, step.elapsed = FAILED, exc, elapsed
    log.error("%s failed: %s", step.label, exc)
    if not isinstance(exc, GmosError):  # a bug, not bad input: keep the traceback
        log.debug("%s traceback", step.label, exc_info=True)
    emit(Event("step_failed", step.index, str(exc), error=exc, elapsed=elapsed))


def summary_text(recipe: str, files: list, steps: list[Step], outputs: list[str]) -> str:
    """A reduction's recipe, inputs, steps (status, elapsed time) and outputs, as text."""
    names = ", ".join(p.name for p in files[:3]) + (" ..." if len(files) > 3 else "")
    lines = [f"Reduction with recipe {recipe} of {len(files)} file(s): {names}",
             *steps_table(steps)]
    if outputs:
        lines.append("  outputs: " + ", ".join(outputs))
    return "\n".join(lines)


#: How a step is named: its index, its label (``'addVAR (2)'``), its primitive, or itself.
StepKey = Union[int, str, Step]


def build_steps(recipe: Recipe, primitives: PrimitiveTable) -> list[Step]:
    """One :class:`Step` per recipe step, labelled ``'addVAR (2)'`` when a primitive recurs.

    Raises
    ------
    ParameterError
        A primitive missing from ``primitives``, or a bad value fixed by the recipe.
    """
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
        steps.append(Step(index, rstep, primitives.get(rstep.primitive), label))
    return steps
