"""Primitives, their parameter declarations and the table that names them.

A primitive is a function ``func(frames, ctx, *, param1, param2, ...) ->
list[Frame]`` wrapped by :func:`primitive` into a :class:`Primitive`.  Its
parameters are declared once, as :class:`Param` objects (the function's
keyword-only arguments have no defaults); from that one declaration come the
``-p prim:par=value`` parsing, ``showpars``, the ``Reduce.uparms`` checks and
the widgets' parameter forms.  Each primitive module lists its primitives in
a module-level ``PRIMITIVES`` tuple; a :class:`PrimitiveTable` is built from
such modules (:func:`gmoswidgets.primitives.default_table`).

Contract for primitive functions
--------------------------------
* ``frames`` is the list of input :class:`~gmoswidgets.frame.Frame`; the
  function must **not modify them** (the engine keeps every step's output
  for inspection and re-runs).  Work on ``frame.copy()`` or build new frames.
* ``ctx`` is a :class:`StepContext`: logging, progress, calibrations.
* Every parameter arrives as a keyword argument, already converted and checked.
* Return the list of output frames.  The engine, not the primitive, stamps
  the PHU timestamp keyword, ``GEM-TLM``, the HISTORY row and the suffix.
* A primitive that measures something over all its inputs and then applies
  it to each frame (QECorrect's common factors) declares the measurement
  apart, ``@primitive(..., measure=func)``: ``func(frames, ctx, **params)``
  returns one item per frame (reading only what it needs: the frames may be
  mapped from disk), and the primitive's function receives its frames' items
  as ``measured=`` and makes each frame's output from that frame and its
  item alone.  The engine may then measure once over all the inputs and run
  the application a few frames at a time, chained with the per-frame steps
  that follow (:func:`gmoswidgets.steps.stream_chain`).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, Callable

from ..errors import ParameterError
from ..executor import SequentialExecutor, describe_item
from ..registry import NamedTable

__all__ = ["Param", "Primitive", "PrimitiveTable", "GENERIC_PARAMS", "primitive", "get_primitive",
           "StepContext", "parse_value"]


@dataclass(frozen=True)
class Param:
    """Declaration of one primitive parameter.

    Attributes
    ----------
    name : str
        DRAGONS' parameter name, e.g. ``"scale"``.
    type : type
        One of bool, int, float, str, or list (a list of floats).
    default : object
        Default value (None allowed when ``optional``).
    doc : str
        One-line description (shown by showpars and as widget tooltip).
    choices : tuple, optional
        Allowed values.
    min, max : float, optional
        Inclusive bounds for numbers.
    optional : bool
        Whether None is an allowed value.
    check : callable, optional
        ``check(value)`` on the converted value (never None): raises ValueError
        or returns an error message (a str) when the value cannot be used; any
        other return value means it can (so ``Section.from_string`` is a check).
        For what type, choices and bounds cannot say.
    """

    name: str
    type: type
    default: Any
    doc: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    optional: bool = False
    check: Callable[[Any], Any] | None = None

    def validate(self, value, where: str = ""):
        """Convert ``value`` (a Python value or a command-line string) and check it.

        Returns
        -------
        object
            The converted value.

        Raises
        ------
        ParameterError
            If the value has the wrong type, is out of range or not a choice.
        """
        label = where or self.name
        if isinstance(value, str) and (self.type is not str or value.strip() == "None"):
            value = parse_value(value, self.type, label)
        if value is None:
            if self.optional:
                return None
            raise ParameterError(f"{label}: None is not allowed; expected {self.describe_type()}")
        if self.type is bool:
            if not isinstance(value, (bool,)) and not (isinstance(value, int) and value in (0, 1)):
                raise ParameterError(f"{label}: expected True or False, got {value!r}")
            value = bool(value)
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ParameterError(f"{label}: expected an integer, got {value!r}")
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"{label}: expected a number, got {value!r}")
            value = float(value)
        elif self.type is str:
            if not isinstance(value, str):
                raise ParameterError(f"{label}: expected a string, got {value!r}")
        elif self.type is list:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [float(value)]
            try:
                value = [float(v) for v in value]
            except (TypeError, ValueError):
                raise ParameterError(f"{label}: expected a list of numbers, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"{label}: {value!r} is not allowed; choose one of "
                                 + ", ".join(repr(c) for c in self.choices))
        if self.type in (int, float):
            if self.min is not None and value < self.min:
                raise ParameterError(f"{label}: {value!r} is below the minimum {self.min}")
            if self.max is not None and value > self.max:
                raise ParameterError(f"{label}: {value!r} is above the maximum {self.max}")
        if self.check is not None:
            try:
                problem = self.check(value)
            except ValueError as exc:
                problem = str(exc)
            if isinstance(problem, str):
                raise ParameterError(f"{label}: {problem}")
        return value

    def describe_type(self) -> str:
        """Human-readable type, e.g. ``'float or None'`` or ``"one of 'mean', 'median'"``."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = {list: "list of numbers"}.get(self.type, self.type.__name__)
        return text + (" or None" if self.optional else "")


def parse_value(text: str, kind: type, label: str = "") -> Any:
    """Convert command-line text to a value of type ``kind``.

    ``'None'`` gives None, as DRAGONS reads ``-p`` values (whether None is
    allowed is the parameter's business); for numbers, booleans and lists
    any case (``none``) does, for strings only ``None`` (``'none'`` is a
    choice of some).  Booleans accept True/False/yes/no/1/0 (any case);
    lists are comma separated.
    """
    stripped = text.strip()
    if stripped == "None" or (kind is not str and stripped.lower() == "none"):
        return None
    try:
        if kind is bool:
            lowered = stripped.lower()
            if lowered in ("true", "yes", "1", "t", "y"):
                return True
            if lowered in ("false", "no", "0", "f", "n"):
                return False
            raise ValueError
        if kind is int:
            return int(stripped)
        if kind is float:
            return float(stripped)
        if kind is list:
            return [float(v) for v in stripped.strip("[]()").split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{label}: cannot read {text!r} as {kind.__name__}") from None
    return stripped


#: Parameters every primitive accepts (handled by the engine).
GENERIC_PARAMS = (
    Param("skip_primitive", bool, False, "Skip this step: pass its inputs through unchanged."),
    Param("write_outputs", bool, False, "Write this step's output to disk with the step's suffix."),
)


@dataclass(frozen=True)
class Primitive:
    """A primitive: its function, parameters, suffix and doc.

    Calling it, ``prim(frames, ctx, **overrides)``, checks the overrides,
    fills every other parameter from its :class:`Param` default and calls the
    function with keyword arguments.
    """

    name: str
    func: Callable
    params: Mapping = field(default_factory=dict)
    suffix: str = ""
    doc: str = ""
    calibrations: tuple = ()
    measure: Callable | None = None

    def __call__(self, frames, ctx: "StepContext", **overrides) -> list:
        """Run the primitive on ``frames`` with the given parameter overrides.

        Raises
        ------
        ParameterError
            For an unknown parameter, a generic one (the engine's business) or a bad value.
        """
        return self.run(list(frames), ctx, self.arguments(overrides))

    def run(self, frames: list, ctx: "StepContext", arguments: dict, *,
            measured: list | None = None) -> list:
        """The function on ``frames`` with ``arguments`` (:meth:`arguments`).

        A primitive with a ``measure`` gets ``measured``, its items for these
        frames: by default measured here over ``frames``; given, frames taken
        a few at a time from inputs measured all together.
        """
        if self.measure is not None:
            if measured is None:
                measured = self.measure(frames, ctx, **arguments)
            arguments = {**arguments, "measured": list(measured)}
        return self.func(frames, ctx, **arguments)

    def all_params(self) -> dict:
        """Own parameters followed by the generic ones."""
        out = dict(self.params)
        for p in GENERIC_PARAMS:
            out.setdefault(p.name, p)
        return out

    def defaults(self) -> dict:
        """Default value of every own parameter."""
        return {name: p.default for name, p in self.params.items()}

    def validate(self, values: dict) -> dict:
        """Check a mapping of parameter overrides (own or generic); return the converted values.

        Raises
        ------
        ParameterError
            For an unknown parameter (the message lists the valid ones) or a bad value.
        """
        return self._validated(values, self.all_params())

    def arguments(self, overrides: dict) -> dict:
        """What the function receives: every own parameter, ``overrides`` checked, others default.

        Raises
        ------
        ParameterError
            For an unknown or generic parameter or a bad value.
        """
        return {**self.defaults(), **self._validated(overrides, self.params)}

    def _validated(self, values: dict, allowed: Mapping) -> dict:
        out = {}
        for key, value in values.items():
            if key not in allowed:
                raise ParameterError(f"{self.name} has no parameter {key!r}; valid parameters are: "
                                     + ", ".join(sorted(allowed)))
            out[key] = allowed[key].validate(value, f"{self.name}:{key}")
        return out


def primitive(*params: Param, suffix: str, name: str | None = None, calibrations: tuple = (),
              measure: Callable | None = None) -> Callable[[Callable], Primitive]:
    """Decorator making a :class:`Primitive` of a function and its declared parameters.

    Parameters
    ----------
    *params : Param
        The primitive's own parameters (the generic ones are added for you);
        the function takes exactly these as keyword-only arguments without defaults.
    suffix : str
        Filename suffix of its outputs, e.g. ``"_overscanCorrected"``.
    name : str, optional
        DRAGONS' primitive name; defaults to the function name.
    calibrations : tuple of str
        Calibration types the primitive may request (``"processed_bias"`` ...).
    measure : callable, optional
        ``measure(frames, ctx, **params) -> list``, one item per frame: what
        the primitive measures over all its inputs before it works frame by
        frame; the function then takes the items of its frames as the
        keyword argument ``measured`` (see the module's contract).
    """
    def make(func: Callable) -> Primitive:
        doc = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        return Primitive(name or func.__name__, func,
                         MappingProxyType({p.name: p for p in params}), suffix, doc,
                         tuple(calibrations), measure)
    return make


class PrimitiveTable(NamedTable):
    """A read-only mapping of primitive name to :class:`Primitive`.

    ``get(name)`` raises :class:`~gmoswidgets.errors.ParameterError` listing
    the valid names for an unknown one.

    Parameters
    ----------
    primitives : iterable of Primitive
        The primitives; two with the same name are an error.
    """

    kind = "primitive"
    error = ParameterError
    item_type = Primitive

    @classmethod
    def from_modules(cls, *modules) -> "PrimitiveTable":
        """The primitives listed in each module's ``PRIMITIVES`` tuple, in order."""
        return cls(prim for module in modules for prim in module.PRIMITIVES)


def get_primitive(name: str) -> Primitive:
    """Look up a primitive by name in :func:`~gmoswidgets.primitives.default_table`.

    Raises
    ------
    ParameterError
        If there is no such primitive (the message lists the valid ones).
    """
    from . import default_table
    return default_table().get(name)


def _kept(func: Callable, keep: Callable, item):
    """``keep(func(item))``: a result handed to the engine's memory policy in the worker."""
    return keep(func(item))


class _Unboxed:
    """``func`` of the item of a one-item list (how :meth:`StepContext.map` hands out items it
    may let go of), named after the work (the Dask executor names its tasks so)."""

    def __init__(self, func: Callable):
        self.func = func
        work = getattr(func, "func", func)   # a partial's function
        self.__name__ = getattr(func, "__name__", None) or getattr(work, "__name__", "work")

    def __call__(self, box: list):
        return self.func(box[0])


def _boxed_name(name: Callable, box: list) -> str:
    """``name`` of the item of a one-item list (an emptied one: its item is done)."""
    return name(box[0]) if box else ""


class StepContext:
    """What a running primitive may use besides its inputs and parameters.

    Parameters
    ----------
    logger : logging.Logger
        Where the primitive logs.
    calibration_lookup : callable, optional
        ``lookup(frame, caltype) -> (Frame, path, reason)``; raises
        :class:`~gmoswidgets.errors.CalibrationNotFoundError` when nothing fits.
    progress_callback : callable, optional
        ``callback(fraction, message)`` for progress within a long step.
    cancel_check : callable, optional
        Raises when the user asked to cancel.
    workdir : path-like, optional
        Working directory of the reduction (outputs go there).
    executor : Executor, optional
        Where :meth:`map` runs per-frame work (default: one call after the
        other in this thread).
    keep_result : callable, optional
        ``keep_result(result) -> result``, called in the worker on each
        result of :meth:`map` (the engine writes frames to disk as they come
        under its on-disk memory policies, for executors in this process).
    """

    def __init__(self, logger=None, calibration_lookup=None, progress_callback=None,
                 cancel_check=None, workdir=".", executor=None, keep_result=None):
        self._keep_result = keep_result
        self.log = logger or logging.getLogger("gmoswidgets")
        self._lookup = calibration_lookup
        self._progress = progress_callback
        self._cancel = cancel_check
        self.workdir = workdir
        self.executor = executor or SequentialExecutor()

    def map(self, func: Callable, items, *, label: Callable | None = None,
            holds_gil: bool = False, consume: bool = False) -> list:
        """``[func(item) for item in items]``, run by the reduction's executor.

        For per-frame work: ``func`` gets one item (a frame, or a tuple of a
        frame and what it needs) and must not use this context; it may run
        in another thread, process or machine, so it must be a module-level
        function or a :func:`functools.partial` of one.  Progress is reported
        as items finish; a cancel drops the items not started.  ``holds_gil``
        says that ``func`` holds the GIL (threads would only take turns).
        ``consume``: the caller hands the items over; ``items`` (a list) is
        emptied and each item is let go of as soon as its result is in, so
        that what it holds (an input frame nothing else holds) is freed
        while the others are worked on.

        Raises
        ------
        TaskError
            Naming the item that failed (a GmosError if the original was one).
        """
        name = label or describe_item
        if consume:   # one-item lists, emptied once their item is done
            given, items = items, [[item] for item in items]
            given.clear()
            func, name = _Unboxed(func), partial(_boxed_name, name)
        else:
            items = list(items)
        if self._keep_result is not None:
            func = partial(_kept, func, self._keep_result)
        finished = 0

        def done(index, _result):
            nonlocal finished
            finished += 1
            message = name(items[index])
            if consume:
                items[index].clear()
            self.progress(finished / len(items), message)

        return self.executor.map(func, items, label=name, on_done=done, cancel_check=self._cancel,
                                 holds_gil=holds_gil)

    def calibration(self, frame, caltype: str):
        """Return ``(calibration Frame, path, reason)`` for ``frame``.

        Raises
        ------
        CalibrationNotFoundError
            If no processed calibration of that type matches.
        """
        if self._lookup is None:
            from ..errors import CalibrationNotFoundError
            raise CalibrationNotFoundError(f"no calibration service to find a {caltype} "
                                           f"for {frame.filename}")
        return self._lookup(frame, caltype)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress within the step (0..1) and honour a pending cancel."""
        if self._progress is not None:
            self._progress(max(0.0, min(1.0, float(fraction))), message)
        if self._cancel is not None:
            self._cancel()
