"""Where a reduction keeps each step's outputs: in memory, or spilled to a temporary directory.

Three policies (:data:`KEEP_MODES`):

* ``'all'``: every step's outputs stay in memory (interactive inspection);
* ``'last'``: only the latest step's outputs are held; earlier ones are
  forgotten (the engine recomputes them when asked);
* ``'spill'``: earlier steps' outputs are written to a temporary directory
  and read back on demand.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from .frame import Frame, read_frame

__all__ = ["KEEP_MODES", "StepStore", "StoredOutputs"]

#: Memory policies: keep every step's outputs, only the last ones, or spill them to disk.
KEEP_MODES = ("all", "last", "spill")


class StoredOutputs:
    """Outputs of one step: in memory, or spilled to files read back on demand."""

    def __init__(self, frames: list[Frame]):
        self.frames: list[Frame] | None = frames
        self.spilled: list | None = None

    def spill(self, directory: Path, index: int) -> None:
        """Write the frames to ``directory`` and drop them from memory."""
        if self.frames is None:
            return
        entries = []
        for i, frame in enumerate(self.frames):
            path = directory / f"step{index:02d}_{i:03d}.fits"
            frame.write(path)
            entries.append((path, frame.filename, frame.path))
        self.spilled, self.frames = entries, None

    def discard(self) -> None:
        """Delete the spilled files, if any, and forget the frames."""
        for path, _, _ in self.spilled or ():
            path.unlink(missing_ok=True)
        self.spilled = self.frames = None

    def load(self) -> list[Frame]:
        """The frames, read back from disk if they were spilled."""
        if self.frames is not None:
            return self.frames
        frames = []
        for path, filename, origin in self.spilled or ():
            frame = read_frame(path)
            frame.filename, frame.path = filename, origin
            frames.append(frame)
        return frames


class StepStore:
    """The outputs of a reduction's steps, by step index, under one memory policy.

    Parameters
    ----------
    keep : {'all', 'last', 'spill'}
        The policy, see :data:`KEEP_MODES`.
    spill_dir : path-like, optional
        Parent of the temporary directory for ``keep='spill'`` (default: the
        system's temporary directory).  The directory is deleted by
        :meth:`close` or when the store is garbage-collected.

    Raises
    ------
    ValueError
        An unknown policy.
    """

    def __init__(self, keep: str = "all", spill_dir=None):
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {KEEP_MODES}, not {keep!r}")
        self.keep = keep
        self._spill_root = Path(spill_dir) if spill_dir is not None else None
        self._spill_dir: Path | None = None
        self._stored: dict[int, StoredOutputs] = {}

    def __contains__(self, index: int) -> bool:
        return index in self._stored

    def put(self, index: int, frames: list[Frame]) -> None:
        """Hold the outputs of step ``index``; apply the policy to the earlier steps."""
        self._stored[index] = StoredOutputs(frames)
        if self.keep == "all":
            return
        for earlier in [k for k in self._stored if k < index]:
            if self.keep == "last":
                del self._stored[earlier]
            else:
                self._stored[earlier].spill(self._spill_path(), earlier)

    def load(self, index: int) -> list[Frame]:
        """The outputs of step ``index`` (KeyError if not held)."""
        return self._stored[index].load()

    def discard(self, index: int) -> None:
        """Forget the outputs of step ``index`` (and delete its spilled files), if held."""
        stored = self._stored.pop(index, None)
        if stored is not None:
            stored.discard()

    def _spill_path(self) -> Path:
        if self._spill_dir is None:
            if self._spill_root is not None:
                self._spill_root.mkdir(parents=True, exist_ok=True)
            self._spill_dir = Path(tempfile.mkdtemp(prefix="gmoswidgets-spill-",
                                                    dir=self._spill_root))
            weakref.finalize(self, shutil.rmtree, self._spill_dir, True)
        return self._spill_dir

    def close(self) -> None:
        """Forget every output and delete the spill directory, if any."""
        self._stored.clear()
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None
