"""What a reduction tells its watchers: :class:`Event` objects sent to subscribers.

Events tell, front ends fetch: a ``'step_finished'`` event carries no
pixels; a viewer asks the reduction for the step's outputs when it shows them.
"""
from __future__ import annotations

import contextvars
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from .logutils import LOGGER_NAME

__all__ = ["Event", "EVENT_KINDS", "EventHub"]

#: The log handler of the run this code works for: set in the reduction's thread, and seen by
#: the executor's worker threads, which run each item in a copy of the submitting context.
_RUN_HANDLER: contextvars.ContextVar = contextvars.ContextVar("gmoswidgets_run_handler",
                                                              default=None)

#: Kinds of :class:`Event`.
EVENT_KINDS = ("step_started", "step_finished", "step_failed", "progress", "log", "cancelled",
               "invalidated", "output_written")


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


class EventHub:
    """Subscribers of one reduction, called in the thread that emits."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Callable[[Event], None]) -> None:
        """Stop sending events to ``callback``."""
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def emit(self, event: Event) -> None:
        """Send ``event`` to every subscriber; a failing subscriber is logged and skipped."""
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken observer must not break the reduction
                logging.getLogger(LOGGER_NAME).debug("event subscriber failed", exc_info=True)

    @contextmanager
    def log_events(self, step_index: Callable[[], int | None]) -> Iterator[None]:
        """Within the block, records of the package logger of this run become ``'log'`` events.

        This run's records are those of this thread and of the executor's
        worker threads doing its per-frame work (they inherit this thread's
        context); another run's records, in another thread, are not.
        Only records the logger lets through are seen: its level is the
        front end's business (:func:`gmoswidgets.logutils.config`).
        ``step_index()`` gives the step the record belongs to.
        """
        handler = _EventLogHandler(self, step_index)
        logger = logging.getLogger(LOGGER_NAME)
        token = _RUN_HANDLER.set(handler)
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            _RUN_HANDLER.reset(token)


class _EventLogHandler(logging.Handler):
    """Turns log records of one run into ``'log'`` events (emitted where the record is made)."""

    def __init__(self, hub: EventHub, step_index: Callable[[], int | None]):
        super().__init__()
        self.hub, self.step_index = hub, step_index

    def emit(self, record: logging.LogRecord) -> None:
        if _RUN_HANDLER.get() is self:
            self.hub.emit(Event("log", self.step_index(), record.getMessage(), record=record))
