"""glibc's heap: giving back to the system the memory a running reduction has let go of.

glibc keeps freed blocks the size of a frame's planes (tens of MB, under
its largest mmap threshold) in its heap, resident: the frames a step lets
go of as it goes (:func:`~gmoswidgets.steps.call_step`'s hand-over) would
otherwise not lower the process's peak memory, the next blocks asked for
being of other sizes.  Under the policies that let go of frames as they go (``keep='last'``
and ``'stream'``; under ``'all'`` nothing is let go of, and trimming a
large heap for nothing costs: ~15 s over the fast test suite) the engine
calls :func:`trim_heap` before every step (the previous one's inputs have
just gone) and at every progress report (through ``StepStore.trim``),
where it trims only if the process has grown by :data:`TRIM_GROWTH` since
the last trim: a trim costs milliseconds when
there is much to return, and the pages returned cost a fault (a few
tenths of a second per GiB) when reused.  Measured on the 2x2 science
stage with ``keep='last'``: peak 1.06 GB with the hand-over alone,
0.88-0.92 GB with the trims (~30 trims, 0.1-0.16 s; CPU time within the
noise of a loaded machine).  Below :data:`RESIDENT_FLOOR` resident it does
not trim at all: there the pages glibc keeps are cheaper to keep than to
fault back (on the project's machine, pages given back are taken by the
host and cost ~1.5-2.8 s CPU per GiB to touch again after a few seconds):
the 2x2 bias and flat stages (peaks ~0.4 and ~0.58 GB) ran 0.1-0.2 s
slower with the trims and lost nothing of their goal without them.

The executors use the same glibc calls: :func:`release_free_heap` before
forking (a forked process's peak counts the resident pages it inherits)
and :func:`one_malloc_arena` before starting threads.

A command that reduces and then exits (``reduce`` run from the shell)
also calls :func:`keep_freed_memory` once at its start: glibc then keeps
every block the process frees, whatever its size, for the next ones,
instead of unmapping it; only :func:`trim_heap` gives memory back.  At
1x1 a frame's planes (~110 MB) are above glibc's largest mmap threshold
(32 MiB): by default each one is mapped fresh and unmapped when freed,
and every page of it costs a fault and its zeroing (~1-3 s/GiB on the
project's VM), and numpy's huge pages are turned off too
(:func:`no_huge_pages`): on this VM each huge page faulted costs its
compaction (the page cache fills the free memory).  Measured at stop 9
against the code before (alternated, load 4-9; products byte-identical):
glibc's part alone (huge pages on) took the 1x1 science from 1.51-1.57M
minor faults to 0.72-0.83M and the bias from 225k to 52k; the whole
policy took the 1x1 science's system time from 27.8-28.1 s to 22.0-22.9 s
(CPU 50.9-51.8 -> 45.5-46.1 s; earlier, with the huge pages on, 30.3-32.6 s
against 21.4 s off) at a peak
of 1.63 -> 1.71-1.80 GB; the 2x2 science peak 0.86 -> 0.87-0.90 GB.  The
trims stay as they are: trimming only above a higher mark (1.0, 1.2 or
1.5 GB) kept no more pages (0.73-0.88M faults at 1x1) and raised the
peaks (1.78-2.09 GB at 1x1, 0.97 GB at 2x2).

A long-lived process (a Jupyter kernel, the dashboard, the tests) does
not call it: there glibc's defaults stand, and the planes of a finished
reduction go back to the system as soon as they are freed instead of
staying with the kernel after the reduction.
"""
from __future__ import annotations

import ctypes
import functools
import os

__all__ = ["trim_heap", "release_free_heap", "one_malloc_arena", "keep_freed_memory",
           "no_huge_pages", "resident_bytes", "TRIM_GROWTH", "RESIDENT_FLOOR"]

#: glibc's mallopt parameters (malloc.h): the heap's free top kept below this many bytes, the
#: most blocks mapped apart from the heap, the most malloc arenas.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
#: The largest value mallopt takes (a C int).
_INT_MAX = 2**31 - 1

#: Resident memory of the process below which nothing is trimmed.
RESIDENT_FLOOR = 640 * 2**20

#: Growth of the process's resident memory since the last trim above which a report trims.
TRIM_GROWTH = 64 * 2**20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: The process's resident bytes after the last trim.
_trimmed_at = 0


@functools.cache
def _libc():
    """glibc's functions (through the process's own symbols), or None where there is no glibc."""
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@functools.cache
def one_malloc_arena() -> None:
    """Ask glibc, once, to give new threads no arena of their own (``M_ARENA_MAX`` = 1)."""
    if _libc() is not None:  # else not glibc: its allocator decides
        _libc().mallopt(_M_ARENA_MAX, 1)


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc, once per process, to keep what the process frees for its next blocks.

    Every block comes from the heap, none is mapped apart (``M_MMAP_MAX`` = 0),
    and ``free`` never trims the heap's top (``M_TRIM_THRESHOLD`` as large as
    it goes): the memory a freed frame held is reused by the next frame
    without faulting fresh pages, and goes back to the system only through
    :func:`trim_heap`.  For a process that exits after its reduction (a
    command); see the module's notes.

    Returns
    -------
    bool
        Whether the policy is in force (False where the allocator is not glibc).
    """
    libc = _libc()
    if libc is None:  # not glibc: its allocator decides
        return False
    one_malloc_arena()  # a thread's own arena would still map its large blocks apart
    no_huge_pages()
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def no_huge_pages() -> None:
    """numpy's new arrays ask for no transparent huge pages (from now on, in this process).

    Every page a process touches for the first time costs ~3 s/GiB on huge
    pages (their compaction, the more so as the system's free memory is
    fragmented by the page cache) against ~0.4 s/GiB on 4 KiB pages on the
    project's VM: the processes forked for a map (which start with no freed
    memory to reuse) and a command keeping what it frees
    (:func:`keep_freed_memory`) ask for none.  Measured on detectSources (5
    frames of the 2x2 science, 6 alternated pairs, loaded machine): the
    forked processes' system time 0.49 s (median) instead of 0.83 s
    (0.42-1.83 s), user time unchanged.
    """
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        try:  # numpy < 2
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:  # a numpy without the switch (private): its default stands
            return
    _set_madvise_hugepage(False)


def release_free_heap() -> None:
    """Return the free pages of glibc's heap to the system (``malloc_trim``), if glibc."""
    if _libc() is not None:
        _libc().malloc_trim(0)


def resident_bytes() -> int | None:
    """This process's resident memory (Linux' ``/proc/self/statm``), or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def trim_heap(*, if_grown: bool = False) -> None:
    """Return the heap's free pages to the system (glibc's ``malloc_trim``; nothing elsewhere),
    if the process's resident memory is above :data:`RESIDENT_FLOOR`.

    Parameters
    ----------
    if_grown : bool
        Only if the process's resident memory has grown by :data:`TRIM_GROWTH`
        since the last trim (of any reduction of the process: memory is the
        process's).
    """
    global _trimmed_at
    resident = resident_bytes()
    if resident is None or resident < RESIDENT_FLOOR:
        return
    if if_grown and resident < _trimmed_at + TRIM_GROWTH:
        return
    release_free_heap()
    _trimmed_at = resident_bytes() or 0
