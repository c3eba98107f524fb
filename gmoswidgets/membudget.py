"""The process's memory budget for steps' outputs kept under ``keep='spill'``.

Under ``keep='spill'`` (the dashboard's policy) every step's outputs are kept
so that any step can be shown or re-run from.  They stay in memory while the
pixel planes held by all the process's reductions (the dashboard's bias, flat
and science, a notebook's panels ...) weigh at most :attr:`MemoryBudget.limit`
bytes; beyond, the steps used least recently (run, loaded or shown) are
spilled to disk, oldest first, and mapped back when asked for
(:class:`gmoswidgets.storage.StepStore` does the writing).

A plane shared by several steps (a step passing on the very array it was
given) is counted once, and a plane is counted as the memory it holds (a
view as its base array: a broadcast constant plane weighs next to nothing).  :func:`spill_budget` is the process's budget; change
its ``limit`` to trade memory for speed (0: every step goes to disk at once,
as before the budget).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["DEFAULT_SPILL_BUDGET", "MemoryBudget", "held_bytes", "spill_budget"]

#: Bytes of pixel planes the process keeps in memory under ``keep='spill'`` (see benchmarks/README.md).
DEFAULT_SPILL_BUDGET = 384 * 2**20


class _Entry:
    """One step's outputs held in memory: its planes (by id) and how to spill them."""

    __slots__ = ("arrays", "spill")

    def __init__(self, arrays: dict[int, int], spill: Callable[[], None]):
        self.arrays = arrays      # id(array) -> nbytes
        self.spill = spill


class MemoryBudget:
    """Steps' outputs held in memory, least recently used first, within ``limit`` bytes.

    Parameters
    ----------
    limit : int
        Bytes of pixel planes held in memory; the least recently used steps
        beyond it are spilled.
    """

    def __init__(self, limit: int):
        self.limit = int(limit)
        self._entries: OrderedDict = OrderedDict()   # key -> _Entry, least recently used first
        self._counts: dict[int, list] = {}            # id(array) -> [nbytes, entries holding it]
        self._bytes = 0                               # of the arrays in _counts
        self._reserved: dict = {}                     # owner -> bytes promised to a running step
        self._lock = threading.RLock()

    @property
    def held(self) -> int:
        """Bytes of distinct planes held in memory by the steps, plus those reserved."""
        with self._lock:
            return self._bytes + sum(self._reserved.values())

    def admit(self, key, arrays: Iterable[np.ndarray], spill: Callable[[], None]) -> None:
        """Hold a step's planes in memory (the most recently used), then keep to the limit.

        ``key`` is ``(owner, index)``; ``spill()`` writes the step to disk and
        lets its planes go: it is called (then the entry forgotten) for the
        least recently used steps while more than ``limit`` bytes are held,
        this one included if it alone is too large.  The owner's reservation
        (:meth:`reserve`) ends.
        """
        owned = dict(_footprint(a) for a in arrays)
        with self._lock:
            self._reserved.pop(key[0], None)
            self.forget(key)
            self._entries[key] = _Entry(owned, spill)
            for ident, nbytes in owned.items():
                count = self._counts.setdefault(ident, [nbytes, 0])
                self._bytes += nbytes if not count[1] else 0
                count[1] += 1
            self._spill_beyond(self.limit)

    def reserve(self, owner, nbytes: int, *, protect=()) -> bool:
        """Promise ``nbytes`` more to ``owner``'s running step, if they fit once the least
        recently used steps (but those in ``protect``: the step's inputs) are spilled."""
        with self._lock:
            self._spill_beyond(self.limit - nbytes, protect)
            if self.held + nbytes > self.limit:
                return False
            self._reserved[owner] = self._reserved.get(owner, 0) + nbytes
            return True

    def release(self, owner) -> None:
        """``owner``'s running step ended without admitting its outputs: forget its promise."""
        with self._lock:
            self._reserved.pop(owner, None)

    def touch(self, key) -> None:
        """The step ``key`` was used (loaded, shown): it is spilled last."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)

    def forget(self, key) -> None:
        """The step ``key`` is no longer held in memory (discarded, or spilled)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return
            for ident in entry.arrays:
                count = self._counts[ident]
                count[1] -= 1
                if not count[1]:
                    del self._counts[ident]
                    self._bytes -= count[0]

    def forget_owner(self, owner) -> None:
        """Forget every step of ``owner`` (its store closed) and its reservation."""
        with self._lock:
            self._reserved.pop(owner, None)
            for key in [k for k in self._entries if k[0] == owner]:
                self.forget(key)

    def _spill_beyond(self, limit: int, protect=()) -> None:
        while self.held > limit:
            key = next((k for k in self._entries if k not in protect), None)
            if key is None:
                return
            entry = self._entries[key]
            entry.spill()
            self.forget(key)


def _footprint(arr: np.ndarray) -> tuple[int, int]:
    """(id, bytes) of the array holding the memory of ``arr`` (``arr`` or the base of a view)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return id(arr), arr.nbytes


def held_bytes(arrays: Iterable[np.ndarray]) -> int:
    """Bytes of memory that ``arrays`` hold between them (a shared base counted once)."""
    return sum(dict(_footprint(a) for a in arrays).values())


_BUDGET = MemoryBudget(DEFAULT_SPILL_BUDGET)


def spill_budget() -> MemoryBudget:
    """The process's budget, shared by every ``keep='spill'`` reduction."""
    return _BUDGET

