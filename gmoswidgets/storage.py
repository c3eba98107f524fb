"""Where a reduction keeps each step's outputs: in memory, or on disk, mapped back on demand.

Four policies (:data:`KEEP_MODES`):

* ``'all'``: every step's outputs stay in memory (interactive inspection);
* ``'last'``: only the latest step's outputs are held; earlier ones are
  forgotten (the engine recomputes them when asked), and the steps that work
  frame by frame (:func:`~gmoswidgets.steps.frame_by_frame`: the per-frame
  ones, and those whose all-frames measurement is made first) run
  :data:`STREAM_BATCH` frames at a time (one if a frame weighs more than
  half of :data:`STREAM_BYTES`), each batch through all the per-frame steps
  that follow one another, letting go of each batch's inputs once used, so
  that a step holds its outputs and what is left of its inputs, not both
  whole.  The outputs are held in memory when one step's outputs are
  expected to weigh at most :data:`LAST_IN_MEMORY` (:func:`expected_frame_bytes`,
  decided before the first step from the inputs' sizes), else on disk as
  under ``'stream'``, so that memory holds a few frames whatever their
  number (also from the first step whose outputs turn out to weigh more than
  expected).  On disk, a step that makes its outputs at once (not in batches)
  and whose outputs weigh at most :data:`HELD_STEP_BYTES` (a stack: one frame
  made in memory) still keeps them in memory: writing them only for the next
  step to map them back would cost the page cache's fresh pages for nothing;
* ``'spill'``: every step's outputs are kept.  They stay in memory (with
  read-only planes) while the process's steps weigh at most its budget
  (:func:`gmoswidgets.membudget.spill_budget`, shared by all its ``'spill'``
  reductions); beyond, the least recently used steps are written to a
  temporary directory and mapped back (read-only, lazily) when asked for.
  Once the budget is full, the frames that per-frame work (``ctx.map``)
  returns are written as they come and handed back mapped, and a step's
  mapped inputs are let go of (:meth:`StepStore.trim`) at each progress
  report: memory holds the budget and a few frames, not whole steps;
* ``'stream'``: for many frames.  Only the latest step's outputs are held
  (as ``'last'``), on disk (as ``'spill'``); the engine runs the steps that
  work frame by frame (:func:`~gmoswidgets.steps.frame_by_frame`) in batches as
  under ``'last'``, releasing each batch's inputs once used.  Memory then does
  not grow with the number of frames; the disk holds about one step's outputs
  (and released files, at most :data:`POOL_BYTES`, that later frames are
  written over).

On disk, each frame's pixel planes are raw arrays in the machine's byte
order, one file per frame, mapped with :mod:`mmap` so that looking at one
frame (or one row chunk of it) reads only that; headers and tables are
pickled in memory.  A plane that a step passes on unchanged (the very array
it was given, which is read-only) is not written again: the new record
points at the file it came from.

A spill directory is deleted with its store (:meth:`StepStore.close`, or when
the store is garbage-collected); one still there when the interpreter exits
is deleted by a detached ``rm`` (:func:`_remove_at_exit`), so that a command
does not wait for the system to free its files' pages.
"""
from __future__ import annotations

import atexit
import dataclasses
import functools
import itertools
import mmap
import pickle
import shutil
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from .frame import Extension, Frame
from .heaptrim import trim_heap
from .membudget import held_bytes, spill_budget

__all__ = ["KEEP_MODES", "ON_DISK", "STREAM_BATCH", "LAST_IN_MEMORY", "HELD_STEP_BYTES",
           "PROCESSED_PIXEL_BYTES", "STREAM_BYTES", "StepStore", "expected_frame_bytes"]

#: Memory policies: every step's outputs in memory, only the last, on disk, on disk and streamed.
KEEP_MODES = ("all", "last", "spill", "stream")
#: The policies that keep the outputs on disk.
ON_DISK = ("spill", "stream")
#: Frames a per-frame step processes at once under ``keep='stream'`` (one per core here).
STREAM_BATCH = 2
#: Bytes of processed frames a streamed batch may hold (a batch has one frame at least): each
#: frame in flight holds its inputs and outputs of a step, and per-frame steps run in a chain.
STREAM_BYTES = 256 * 2**20
#: Executors running in this process, whose per-frame results can be spilled as they come.
IN_PROCESS = ("sync", "threads")
#: Bytes of pixel planes of one step's outputs that ``'last'`` holds in memory; above, on disk.
LAST_IN_MEMORY = 2**30
#: Bytes of pixel planes of a step's outputs made at once that ``'last'`` holds in memory even
#: when on disk (a 1x1 stack, ~280 MB, is one).
HELD_STEP_BYTES = 384 * 2**20
#: Bytes per pixel of a processed frame at most: SCI, VAR (float32), DQ (uint16), OBJMASK (uint8).
PROCESSED_PIXEL_BYTES = 4 + 4 + 2 + 1
#: Mapped bytes above which a progress report lets the system drop the mapped pages.
TRIM_ABOVE = 512 * 2**20
#: Bytes of spill files no record uses any more that are kept to be written over (their
#: page-cache pages reused) rather than deleted.
POOL_BYTES = 1536 * 2**20
#: Alignment of each plane in a spill file (bytes).
_ALIGN = 64
#: The Extension attributes that hold pixel planes.
_PLANES = tuple(f.name for f in dataclasses.fields(Extension) if f.name not in ("header", "objcat"))


def expected_frame_bytes(headers) -> list[int]:
    """What each input may weigh once processed (and so one step's outputs, in all).

    Parameters
    ----------
    headers : list of HeaderSet
        The inputs' headers (:func:`gmoswidgets.validate.read_inputs`), whose
        ``shapes`` are the science extensions' ``(NAXIS2, NAXIS1)``.

    Returns
    -------
    list of int
        Per input, every pixel (overscan included) times
        :data:`PROCESSED_PIXEL_BYTES`: raw frames become float32 SCI and VAR
        and uint16 DQ, and no step of the package's recipes makes a frame much
        larger (a mosaic's gaps and a common frame's margins take fewer pixels
        than the trimmed overscan).
    """
    return [PROCESSED_PIXEL_BYTES * sum(int(np.prod(shape, dtype=np.int64))
                                        for shape in header.shapes) for header in headers]


@dataclasses.dataclass(frozen=True)
class _Plane:
    """Where one pixel plane lies: file, byte offset, dtype (with byte order) and shape; or, for
    a constant plane (one value broadcast, as addDQ and addVAR may make), its value (no file)."""

    path: Path | None
    offset: int
    dtype: str
    shape: tuple
    fill: object = None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class _SpillFiles:
    """The spill directory: frame files, who uses them, and the planes mapped from them.

    A file no record uses any more goes to a pool (at most :data:`POOL_BYTES`,
    the oldest deleted beyond) and a later frame is written over it, once no
    mapping of it is alive: its page-cache pages are reused instead of fresh
    ones being taken (on a VM ~1-3 s per GiB first touched).  A mapping still
    held (a frame someone keeps) thus never sees new contents.
    """

    def __init__(self, root: Path | None):
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self.directory = Path(tempfile.mkdtemp(prefix="gmoswidgets-spill-", dir=root))
        _LIVE_DIRS.add(self.directory)
        self._users: dict[Path, int] = {}            # records using each file
        self._sizes: dict[Path, int] = {}            # bytes of each file
        self._pool: dict[Path, Path] = {}            # released files, oldest first: old -> new name
        self._maps = weakref.WeakValueDictionary()   # path -> mmap, while arrays use it
        self._origin: dict[int, tuple] = {}          # id(array) -> (weakref, _Plane)
        self._lock = threading.Lock()
        self._names = itertools.count()
        self.bytes_written = 0
        self.bytes_reused = 0    # of bytes_written, over the pages of a pooled file

    def write(self, frame: Frame, name: str) -> tuple[bytes, set]:
        """Write the planes of ``frame`` not already on disk; return its record and its files.

        File names are never reused (a released file is renamed, and a
        re-run step gets new names), so that a record or a plane remembered
        from a discarded file is never taken for the new one.
        """
        path = self.directory / f"{name}-{next(self._names)}.bin"
        new, exts, offset = [], [], 0
        for ext in frame.exts:
            planes = {}
            for attr in _PLANES:
                arr = getattr(ext, attr)
                if arr is None:
                    planes[attr] = None
                    continue
                plane = self._unchanged(arr) or _constant(arr)
                if plane is None:
                    offset = -(-offset // _ALIGN) * _ALIGN
                    plane = _Plane(path, offset, arr.dtype.str, arr.shape)
                    if not arr.flags.writeable:   # a kept plane: not written again while kept
                        self._remember(arr, plane)
                    arr = np.ascontiguousarray(arr)
                    new.append((offset, arr))
                    offset += arr.nbytes
                planes[attr] = plane
            exts.append(dataclasses.replace(ext, **planes))
        if new:
            self._write_file(path, new, offset)
        skeleton = Frame(frame.phu, exts, frame.path, frame.tables)
        skeleton.filename = frame.filename
        files = {p.path for e in exts for p in (getattr(e, a) for a in _PLANES)
                 if p is not None and p.path is not None}
        with self._lock:
            self.bytes_written += sum(arr.nbytes for _, arr in new)
            for used in files:
                self._users[used] = self._users.get(used, 0) + 1
        return pickle.dumps(skeleton, protocol=pickle.HIGHEST_PROTOCOL), files

    def _write_file(self, path: Path, arrays: list, end: int) -> None:
        """Write ``(offset, array)`` pairs to ``path`` (``end`` bytes), over a pooled file if
        one is free: the smallest that holds them, else the largest (then extended)."""
        with self._lock:
            free = self._free()
            fits = [old for old, size in free.items() if size >= end]
            reuse = (min(fits, key=free.get) if fits else
                     max(free, key=free.get) if free else None)
            if reuse is not None:
                self._pool.pop(reuse).rename(path)
                del self._sizes[reuse]
                self.bytes_reused += sum(min(arr.nbytes, max(free[reuse] - start, 0))
                                         for start, arr in arrays)
            self._sizes[path] = max(end, free.get(reuse, 0))
        with open(path, "r+b" if reuse is not None else "wb") as fh:
            for start, arr in arrays:
                fh.seek(start)
                fh.write(arr.data if arr.size else b"")

    def _unchanged(self, arr: np.ndarray) -> _Plane | None:
        """The plane ``arr`` was mapped from or written to, if it is that very (read-only) array
        and still kept."""
        hit = self._origin.get(id(arr))
        if hit is None or hit[0]() is not arr:
            return None
        with self._lock:
            path = hit[1].path
            if path not in self._users:
                if path not in self._pool:
                    return None
                self._pool.pop(path).rename(path)   # released but not written over: taken back
                self._users[path] = 0               # (counted with the record's other files)
            return hit[1]

    def read(self, record: bytes) -> Frame:
        """A frame whose planes are read-only arrays mapped from the spill files."""
        frame = pickle.loads(record)
        for ext in frame.exts:
            for attr in _PLANES:
                plane = getattr(ext, attr)
                if plane is not None:
                    setattr(ext, attr, self._map(plane))
        return frame

    def _map(self, plane: _Plane) -> np.ndarray:
        if plane.path is None:
            return np.broadcast_to(np.array(plane.fill, plane.dtype), plane.shape)
        if plane.nbytes == 0:
            return np.empty(plane.shape, plane.dtype)
        with self._lock:
            mapped = self._maps.get(plane.path)
            if mapped is None:
                with open(plane.path, "rb") as fh:
                    mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                self._maps[plane.path] = mapped
        count = int(np.prod(plane.shape, dtype=np.int64))
        arr = np.frombuffer(mapped, plane.dtype, count, plane.offset).reshape(plane.shape)
        self._remember(arr, plane)
        return arr

    def _remember(self, arr: np.ndarray, plane: _Plane) -> None:
        """``arr`` (read-only) holds what ``plane`` holds on disk."""
        key = id(arr)
        self._origin[key] = (weakref.ref(arr, lambda _, key=key: self._origin.pop(key, None)),
                             plane)

    def release(self, files: set) -> None:
        """A record using ``files`` is gone: the files no record uses any more go to the pool,
        renamed (the oldest pooled ones that no mapping views deleted beyond :data:`POOL_BYTES`)."""
        with self._lock:
            for path in files:
                self._users[path] -= 1
                if not self._users[path]:
                    del self._users[path]
                    self._pool[path] = self.directory / f"released-{next(self._names)}"
                    path.rename(self._pool[path])
            self._free()

    def _free(self) -> dict[Path, int]:
        """The pooled files no mapping views (by their former names), with their sizes, the
        oldest deleted beyond :data:`POOL_BYTES` (the lock held)."""
        free = {old: self._sizes[old] for old in self._pool if old not in self._maps}
        while sum(free.values()) > POOL_BYTES:
            oldest = next(iter(free))
            self._pool.pop(oldest).unlink()
            del self._sizes[oldest], free[oldest]
        return free

    def trim(self) -> None:
        """Let the system drop the mapped pages from this process (re-read when touched again).

        Only when more than :data:`TRIM_ABOVE` bytes are mapped: below, the
        pages a step will read again are left in place.
        """
        with self._lock:
            maps = list(self._maps.values())
        if sum(len(mapped) for mapped in maps) > TRIM_ABOVE:
            for mapped in maps:
                mapped.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        _remove_dir(self.directory)


class _Stored:
    """Outputs of one step: frames in memory, or records of frames on disk."""

    def __init__(self):
        self.frames: list[Frame] = []
        self.records: list[tuple[bytes, set | None]] = []   # files None: consumed
        self.complete = True

    def __len__(self) -> int:
        return len(self.frames) + len(self.records)


class StepStore:
    """The outputs of a reduction's steps, by step index, under one memory policy.

    Parameters
    ----------
    keep : {'all', 'last', 'spill', 'stream'}
        The policy, see :data:`KEEP_MODES`.
    spill_dir : path-like, optional
        Parent of the temporary directory of ``'spill'`` and ``'stream'``
        (default: the system's temporary directory).  The directory is
        deleted by :meth:`close` or when the store is garbage-collected.
    frame_bytes : list of int
        What each input is expected to weigh once processed (:func:`expected_frame_bytes`):
        above :data:`LAST_IN_MEMORY` in all, ``'last'`` holds the outputs on disk from the
        first step; they set :attr:`batch`.

    Raises
    ------
    ValueError
        An unknown policy.
    """

    def __init__(self, keep: str = "all", spill_dir=None, *, frame_bytes=()):
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {KEEP_MODES}, not {keep!r}")
        self.keep = keep
        self._spill_root = Path(spill_dir) if spill_dir is not None else None
        self._files: _SpillFiles | None = None
        self._stored: dict[int, _Stored] = {}
        self._scratch: list[set] = []   # files of frames written by the running step's work
        self._on_disk = keep in ON_DISK or (keep == "last" and sum(frame_bytes) > LAST_IN_MEMORY)
        #: Frames a streamed step takes at once: :data:`STREAM_BATCH`, fewer if they are large.
        self.batch = max(1, min(STREAM_BATCH, STREAM_BYTES // max(max(frame_bytes, default=1), 1)))
        self._budget = spill_budget() if keep == "spill" else None   # steps in memory within it
        self._owner = object()           # this store's steps in the budget
        if self._budget is not None:
            weakref.finalize(self, self._budget.forget_owner, self._owner)

    @property
    def on_disk(self) -> bool:
        """True if the outputs are held on disk (``'spill'``, ``'stream'``, a large ``'last'``)."""
        return self._on_disk

    @property
    def streams(self) -> bool:
        """True if per-frame steps should run a few frames at a time, letting go of their
        inputs as they go: ``keep='last'`` or ``'stream'`` (they forget earlier steps anyway)."""
        return self.keep in ("last", "stream")

    @property
    def bytes_written(self) -> int:
        """Bytes of pixel planes written to the spill directory so far."""
        return self._files.bytes_written if self._files is not None else 0

    @property
    def bytes_reused(self) -> int:
        """Of :attr:`bytes_written`, those written over the pages of a released spill file."""
        return self._files.bytes_reused if self._files is not None else 0

    def __contains__(self, index: int) -> bool:
        return index in self._stored and self._stored[index].complete

    def put(self, index: int, frames: list[Frame]) -> None:
        """Hold the outputs of step ``index`` (replacing any); apply the policy to earlier steps."""
        self.discard(index)
        self.append(index, frames, whole=True)
        self.finish(index)

    def result_keeper(self, executor, index: int, *, count: int | None = None):
        """For per-frame work of step ``index`` on ``executor``: a function writing a Frame
        result to disk and returning it mapped (so that a step's results need not all be in
        memory), or None (in-memory policies, executors outside this process).

        ``count``: the frames the step works on at once, if known.  A streamed
        batch of one frame gets None: its result is written when the step
        returns (:meth:`append`), once its input is let go of, so over the
        input's released file rather than on fresh pages (it is in memory
        until then either way, as is its input while the work runs).
        """
        if (not self._on_disk or (executor is not None and executor.name not in IN_PROCESS)
                or (count == 1 and self.streams)):
            return None
        files, name = self._spill_files(), f"step{index:02d}_map"
        budget, inputs = self._budget, {(self._owner, index - 1)}

        def keep(result):
            if not isinstance(result, Frame):
                return result
            if budget is not None and budget.reserve(self._owner, held_bytes(_planes([result])),
                                                     protect=inputs):
                return result   # in memory: admitted with the step's other outputs (append)
            record, used = files.write(result, name)
            self._scratch.append(used)
            return files.read(record)
        return keep

    def finish(self, index: int) -> None:
        """Step ``index`` has all its outputs: under ``'last'`` or ``'stream'``, forget earlier steps."""
        self._release_scratch()
        if self.keep in ("last", "stream"):
            for earlier in [k for k in self._stored if k < index]:
                self.discard(earlier)

    def append(self, index: int, frames: list[Frame], *, whole: bool = False) -> None:
        """Add frames to the outputs of step ``index`` (a streamed step, a few at a time).

        ``whole``: ``frames`` are all of the step's outputs, made at once; under
        ``'last'`` on disk they are then held in memory if they weigh at most
        :data:`HELD_STEP_BYTES`.
        """
        stored = self._stored.setdefault(index, _Stored())
        if self._budget is not None and not stored and self._admit(index, stored, frames):
            return
        if (whole and self._on_disk and self.keep == "last" and not stored
                and held_bytes(_planes(frames)) <= HELD_STEP_BYTES):
            stored.frames.extend(frames)
            return
        if not self._on_disk:
            stored.frames.extend(frames)
            if self.keep != "last" or sum(f.nbytes for f in stored.frames) <= LAST_IN_MEMORY:
                return
            self._on_disk = True  # from this step on (under 'last')
            frames, stored.frames = stored.frames, []
        files = self._spill_files()
        for frame in frames:
            stored.records.append(files.write(frame, f"step{index:02d}_{len(stored):03d}"))

    def count(self, index: int) -> int:
        """Number of output frames held for step ``index`` (KeyError if not held)."""
        return len(self._stored[index])

    def load(self, index: int, start: int = 0, stop: int | None = None) -> list[Frame]:
        """The outputs of step ``index`` (or frames ``start:stop`` of them); KeyError if not held.

        Frames on disk come back as new :class:`Frame` objects with read-only
        planes mapped from the spill files.
        """
        stored = self._stored[index]
        frames = stored.frames   # (spill: a step may go to disk meanwhile, records first)
        if frames:
            if self._budget is not None:
                self._budget.touch((self._owner, index))
            return frames if (start, stop) == (0, None) else frames[start:stop]
        return [self._files.read(record) for record, _ in stored.records[start:stop]]

    def consume(self, index: int, start: int, stop: int) -> None:
        """Frames ``start:stop`` of step ``index`` have been used by the next step.

        Under ``'last'`` and ``'stream'`` (which forget earlier steps anyway)
        they are let go of now (their files released if nothing else uses
        them), so that memory or disk holds about one step; step ``index``
        is then no longer held.
        """
        stored = self._stored.get(index)
        if not self.streams or stored is None:
            return
        for i in range(start, min(stop, len(stored))):
            if stored.frames:
                stored.frames[i] = None
                continue
            record, files = stored.records[i]
            if files is not None:
                self._files.release(files)
                stored.records[i] = (record, None)
        stored.complete = False

    def discard(self, index: int) -> None:
        """Forget the outputs of step ``index`` (and release files nothing else uses), if held."""
        self._release_scratch()
        stored = self._stored.pop(index, None)
        if self._budget is not None:
            self._budget.forget((self._owner, index))
            self._budget.release(self._owner)
        if stored is not None and self._files is not None:
            for _, files in stored.records:
                if files is not None:
                    self._files.release(files)

    def _admit(self, index: int, stored: _Stored, frames: list[Frame]) -> bool:
        """Hold ``frames`` (all of step ``index``) in memory under the budget, read-only; False
        (the step goes to disk) if some of their planes are already mapped from the disk."""
        planes = _planes(frames)
        if any(_mapped(arr) for arr in planes):
            self._budget.release(self._owner)
            return False
        for arr in planes:
            arr.flags.writeable = False   # as if mapped: a kept step is never changed
        stored.frames.extend(frames)
        self._budget.admit((self._owner, index), planes,
                           functools.partial(_spill_step, weakref.ref(self), index))
        return True

    def _spill(self, index: int) -> None:
        """Write step ``index``, held in memory, to disk; its frames are then mapped back."""
        stored = self._stored.get(index)
        if stored is None or not stored.frames:
            return
        files = self._spill_files()
        stored.records = [files.write(frame, f"step{index:02d}_{i:03d}")
                          for i, frame in enumerate(stored.frames)]
        stored.frames = []

    def _release_scratch(self) -> None:
        while self._scratch:
            self._files.release(self._scratch.pop())

    def trim(self) -> None:
        """Drop the pages of mapped outputs from this process's memory (they stay on disk);
        where frames are let go of as steps go (:attr:`streams`), give the heap's free pages
        back too if the process has grown (:func:`~gmoswidgets.heaptrim.trim_heap`)."""
        if self._files is not None:
            self._files.trim()
        if self.streams:
            trim_heap(if_grown=True)

    def _spill_files(self) -> _SpillFiles:
        if self._files is None:
            self._files = _SpillFiles(self._spill_root)
            weakref.finalize(self, _remove_dir, self._files.directory).atexit = False
        return self._files

    def close(self) -> None:
        """Forget every output and delete the spill directory, if any."""
        self._stored.clear()
        if self._budget is not None:
            self._budget.forget_owner(self._owner)
        if self._files is not None:
            self._files.close()
            self._files = None


#: Spill directories not deleted yet (:func:`_remove_at_exit`).
_LIVE_DIRS: set[Path] = set()


def _remove_dir(directory: Path) -> None:
    """Delete a spill directory now."""
    _LIVE_DIRS.discard(directory)
    shutil.rmtree(directory, ignore_errors=True)


@atexit.register
def _remove_at_exit() -> None:
    """At the interpreter's exit, delete the spill directories still there in a detached
    process: unlinking a file frees its page-cache pages, ~0.1 s per spilled 1x1 frame
    (~1 s after a 1x1 science reduction), which the command need not wait for."""
    if not _LIVE_DIRS:
        return
    try:
        subprocess.Popen(["rm", "-rf", "--", *map(str, _LIVE_DIRS)], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    except OSError:   # no rm here: delete them before exiting
        for directory in list(_LIVE_DIRS):
            _remove_dir(directory)


def _planes(frames: list[Frame]) -> list[np.ndarray]:
    """The pixel planes of ``frames``."""
    return [arr for frame in frames for ext in frame.exts
            for arr in (getattr(ext, attr) for attr in _PLANES) if arr is not None]


def _constant(arr: np.ndarray) -> _Plane | None:
    """A plane of no file for ``arr`` if it is one value broadcast (every stride 0)."""
    if arr.size and not any(arr.strides):
        return _Plane(None, 0, arr.dtype.str, arr.shape, arr[(0,) * arr.ndim].item())
    return None


def _mapped(arr: np.ndarray) -> bool:
    """True if ``arr`` is mapped from a file."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    base = arr.base.obj if isinstance(arr.base, memoryview) else arr.base
    return isinstance(base, mmap.mmap)


def _spill_step(store_ref, index: int) -> None:
    """The budget's way to spill step ``index`` of a store (not kept alive by the budget)."""
    store = store_ref()
    if store is not None:
        store._spill(index)
