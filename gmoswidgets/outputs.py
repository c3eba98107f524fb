"""Output files of a reduction: names, history, provenance, writing, calibration cache.

Follows DRAGONS' conventions (DRAGONS' ``astrodata`` and ``recipe_system``, as
described in ``docs/architecture.md``):

* names are the *original* root plus the step's suffix, the previous suffix
  being stripped: ``N20170614S0201_flatCorrected.fits``;
* every primitive stamps its PHU timestamp keyword and ``GEM-TLM``, appends a
  row ``(primitive, args, timestamp_start, timestamp_stop)`` to the ``HISTORY``
  table and a short FITS ``HISTORY`` card;
* the ``PROVENANCE`` table lists the files that went into a frame
  ``(timestamp, filename, md5, provenance_added_by)``: the raw inputs and the
  processed calibrations used;
* processed calibrations are also copied to ``calibrations/processed_<type>/``.

:func:`stamp_input` and :func:`stamp_outputs` apply these rules to what a
reduction reads and to what each of its steps produces.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from os import PathLike as _OsPathLike
from typing import Callable, Iterable, Sequence, Union

import numpy as np

from . import __version__
from .atomic import atomic_path
from .caldb.properties import caltype_of
from .checksums import md5sum
from .errors import ParameterError
from .fitstext import from_header_text, to_header_text
from .frame import Frame, copy_header
from .gmos.keywords import GEM_TLM, ORIGINAL_FILENAME, TIMESTAMP_KEYWORDS
from .logutils import get_logger
from .overwrite import replacing

__all__ = ["HISTORY_COLUMNS", "PROVENANCE_COLUMNS", "CALIBRATION_DIR",
           "utc_now", "normalize_suffix", "original_name", "original_root", "output_filename",
           "remember_origin", "mark_history", "add_history", "add_provenance", "merge_provenance",
           "md5sum", "calibration_type", "write_frame", "store_calibration_copy", "stamp_input",
           "stamp_outputs"]

#: A file name or path.
PathLike = Union[str, _OsPathLike]
#: Columns of the HISTORY table, as DRAGONS writes them.
HISTORY_COLUMNS = ("primitive", "args", "timestamp_start", "timestamp_stop")
#: Columns of the PROVENANCE table, as DRAGONS writes them.
PROVENANCE_COLUMNS = ("timestamp", "filename", "md5", "provenance_added_by")
#: Directory, relative to the working directory, of the calibration cache.
CALIBRATION_DIR = "calibrations"


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(timezone.utc)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")


def normalize_suffix(suffix: str) -> str:
    """Return ``suffix`` with a leading underscore (``'newsuffix'`` -> ``'_newsuffix'``).

    Raises
    ------
    ParameterError
        If ``suffix`` contains a path separator, ``..`` or a control
        character: a suffix names a file in the output directory, never a
        path elsewhere.
    """
    suffix = str(suffix).strip()
    if not suffix:
        return ""
    if any(sep in suffix for sep in ("/", "\\", "..")) or not suffix.isprintable():
        raise ParameterError(f"suffix {suffix!r} is not allowed: a suffix may not contain "
                             "'/', '\\', '..' or control characters")
    return suffix if suffix.startswith("_") else "_" + suffix


def original_name(frame: Frame) -> str:
    """A frame's original file name: the ``ORIGNAME`` PHU keyword, else its file name."""
    stored = str(frame.phu.get(ORIGINAL_FILENAME, "") or "").strip()
    return from_header_text(stored) if stored else frame.filename


def original_root(frame: Frame) -> str:
    """The root of a frame's original file name, e.g. ``'N20170614S0201'``.

    It comes from the ``ORIGNAME`` PHU keyword (set by :func:`remember_origin`
    when the input was read), else from the frame's current file name.
    """
    root = Path(original_name(frame)).name
    for ext in (".fits.bz2", ".fits.gz", ".fits", ".fit"):
        if root.lower().endswith(ext):
            return root[: -len(ext)]
    return Path(root).stem


def output_filename(frame: Frame, suffix: str) -> str:
    """Output name of ``frame`` with ``suffix``: original root + suffix + ``.fits``.

    Any previous suffix is stripped, as DRAGONS' ``update_filename(strip=True)``.
    """
    return f"{original_root(frame)}{normalize_suffix(suffix)}.fits"


def remember_origin(frame: Frame, filename: str | None = None) -> None:
    """Record the frame's original file name in ``ORIGNAME`` unless already there."""
    if not str(frame.phu.get(ORIGINAL_FILENAME, "") or "").strip():
        frame.phu[ORIGINAL_FILENAME] = (to_header_text(filename or frame.filename),
                                        "Original filename prior to processing")


def mark_history(frame: Frame, primitive: str, when: datetime) -> None:
    """Stamp the primitive's PHU timestamp keyword (if it has one) and ``GEM-TLM``.

    Also appends a short FITS ``HISTORY`` card naming the primitive.
    """
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S")
    keyword = TIMESTAMP_KEYWORDS.get(primitive)
    if keyword:
        frame.phu[keyword] = (stamp, f"UT time stamp for {primitive}"[:47])
    frame.phu[GEM_TLM] = (stamp, "UT last modification with gmoswidgets")
    frame.phu.add_history(f"gmoswidgets {__version__} {primitive} {stamp}")


def _rows(table, columns) -> list:
    """The rows of ``table`` as tuples of text, one item per column ('' for a missing column).

    ``table`` is a numpy structured array (built here), a ``FITS_rec`` (read) or an
    astropy ``Table``.
    """
    if table is None:
        return []
    texts = [[_text(value) for value in table[c].tolist()] if c in table.dtype.names
             else [""] * len(table) for c in columns]
    return list(zip(*texts))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _table(rows, columns) -> np.ndarray:
    """A table of text ``rows`` (at least one): a numpy structured array, one str column each.

    Made at every step for every frame, so the cheapest table there is (a few
    microseconds; an astropy ``Table`` ~0.15 ms and needs :mod:`astropy.table`,
    ~0.1 s to import, a ``FITS_rec`` ~1 ms).  :meth:`Frame.write
    <gmoswidgets.frame.Frame.write>` writes it as astropy writes the same
    ``Table`` (``nA`` columns, same bytes).
    """
    arrays = [np.array(texts, dtype=str) for texts in zip(*rows)]
    table = np.empty(len(rows), dtype=[(name, array.dtype) for name, array in zip(columns, arrays)])
    for name, array in zip(columns, arrays):
        table[name] = array
    return table


def _jsonable(value):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def add_history(frame: Frame, primitive: str, args: dict, start: datetime,
                stop: datetime) -> None:
    """Append a row to the frame's ``HISTORY`` table.

    Parameters
    ----------
    frame : Frame
    primitive : str
        Primitive name.
    args : dict
        The parameter values used (recorded as JSON).
    start, stop : datetime
        When the primitive started and finished.
    """
    rows = _rows(frame.tables.get("HISTORY"), HISTORY_COLUMNS)
    text = json.dumps({k: _jsonable(v) for k, v in args.items()}, sort_keys=False)
    rows.append((primitive, text, _iso(start), _iso(stop)))
    frame.tables["HISTORY"] = _table(rows, HISTORY_COLUMNS)


def add_provenance(frame: Frame, path: PathLike, added_by: str,
                   when: datetime | None = None) -> None:
    """Add a ``PROVENANCE`` row for the file ``path`` (skipped if already listed)."""
    rows = _rows(frame.tables.get("PROVENANCE"), PROVENANCE_COLUMNS)
    name, checksum = to_header_text(Path(path).name), md5sum(path)
    if any(r[1] == name and r[2] == checksum for r in rows):
        return
    rows.append((_iso(when or utc_now()), name, checksum, added_by))
    frame.tables["PROVENANCE"] = _table(rows, PROVENANCE_COLUMNS)


def merge_provenance(frame: Frame, sources: Iterable[Frame]) -> None:
    """Give ``frame`` the union of the ``PROVENANCE`` rows of ``sources`` (order kept)."""
    rows = _rows(frame.tables.get("PROVENANCE"), PROVENANCE_COLUMNS)
    seen = {(r[1], r[2]) for r in rows}
    for source in sources:
        for row in _rows(source.tables.get("PROVENANCE"), PROVENANCE_COLUMNS):
            if (row[1], row[2]) not in seen:
                seen.add((row[1], row[2]))
                rows.append(row)
    if rows:
        frame.tables["PROVENANCE"] = _table(rows, PROVENANCE_COLUMNS)


def calibration_type(frame: Frame) -> str | None:
    """``'processed_bias'`` / ``'processed_flat'`` / ``'processed_fringe'`` or None, from tags.

    The tags decide, as in DRAGONS (PROCESSED with BIAS, FLAT or FRINGE); the
    rule is the calibration manager's (:func:`gmoswidgets.caldb.properties.caltype_of`).
    """
    return caltype_of(frame.tags)


def write_frame(frame: Frame, directory: PathLike, filename: str | None = None,
                protect: Iterable[PathLike] = ()) -> Path:
    """Write ``frame`` to ``directory/filename`` (default: its current file name).

    Parameters
    ----------
    frame : Frame
    directory : path-like
        Destination directory (created if needed).
    filename : str, optional
        Output file name; defaults to ``frame.filename``.
    protect : iterable of path-like
        Files that must never be overwritten (the reduction's inputs).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    return frame.write(Path(directory) / (filename or frame.filename), protect=protect)


def store_calibration_copy(path: PathLike, frame: Frame, workdir: PathLike, *, log=None,
                           service=None) -> Path | None:
    """Copy a processed calibration to ``workdir/calibrations/processed_<type>/``.

    The copy is a hard link to the file where the file system allows one
    (else a copy of its bytes): every file the package writes replaces its
    path whole (:func:`gmoswidgets.atomic.atomic_path`), so a product written
    again never changes the stored calibration, and a 1x1 calibration
    (~260 MB) is not copied through fresh page-cache pages.  A copy that replaces an earlier one is logged and its calibration
    database entry refreshed (:func:`gmoswidgets.overwrite.replacing`).

    Parameters
    ----------
    path : path-like
        The calibration file just written.
    frame : Frame
        Its content (decides the calibration type).
    workdir : path-like
        The working directory.
    log : logging.Logger, optional
        Default: the ``gmoswidgets.reduce`` logger.
    service : CalibrationService or DefaultService, optional
        The calibration database to keep true (None: none).

    Returns
    -------
    pathlib.Path or None
        The copy's path, or None when ``frame`` is not a processed calibration.
    """
    caltype = calibration_type(frame)
    if caltype is None:
        return None
    target_dir = Path(workdir) / CALIBRATION_DIR / caltype
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / Path(path).name
    with replacing(target, log or get_logger("reduce"), service), atomic_path(target) as tmp:
        _link_or_copy(Path(path), tmp)
    return target


def _link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` (an empty placeholder) a hard link to ``source``, or a copy where no link."""
    try:
        target.unlink()
        os.link(source, target)
    except OSError:  # another file system, or links not supported: copy the bytes
        shutil.copyfile(source, target)


def stamp_input(frame: Frame, path: PathLike, primitive: str) -> Frame:
    """Mark a frame just read as an input: ``ORIGNAME`` and a PROVENANCE row for its file.

    ``primitive`` is the first step of the recipe (DRAGONS' ``provenance_added_by``).
    """
    remember_origin(frame)
    add_provenance(frame, path, primitive)
    return frame


def _shallow_copy(frame: Frame) -> Frame:
    """A new Frame sharing pixel arrays but with its own PHU and tables."""
    new = Frame(copy_header(frame.phu), frame.exts, frame.path,
                {name: table.copy() for name, table in frame.tables.items()})
    new.filename = frame.filename
    return new


def stamp_outputs(outputs: Sequence[Frame], inputs: Sequence[Frame], *, primitive: str,
                  params: dict, suffix: str, started: datetime, stopped: datetime,
                  calibrations_for: Callable[[list], list] = lambda sources: []) -> list[Frame]:
    """Record a step in its outputs: origin, PROVENANCE, timestamps, HISTORY row, file name.

    An output that is one of the inputs (a primitive that passed a frame
    through) is replaced by a copy with its own headers, so the input keeps
    its history.

    Parameters
    ----------
    outputs, inputs : list of Frame
        What the primitive returned and what it was given.  When their
        numbers agree, output ``i`` comes from input ``i``; otherwise from all.
    primitive : str
        The primitive's name.
    params : dict
        The parameter values it ran with (the HISTORY ``args``).
    suffix : str
        The step's file-name suffix.
    started, stopped : datetime
        When the primitive started and finished.
    calibrations_for : callable, optional
        ``calibrations_for(sources) -> paths`` of the processed calibrations
        applied to those inputs (PROVENANCE rows added by ``primitive``).

    Returns
    -------
    list of Frame
        The stamped outputs, named ``original root + suffix``.
    """
    one_to_one = len(outputs) == len(inputs)
    stamped = []
    for i, frame in enumerate(outputs):
        if any(frame is f for f in inputs):
            frame = _shallow_copy(frame)
        sources = [inputs[i]] if one_to_one else list(inputs)
        if sources:
            remember_origin(frame, original_name(sources[0]))
            merge_provenance(frame, sources)
            if "HISTORY" not in frame.tables and "HISTORY" in sources[0].tables:
                frame.tables["HISTORY"] = sources[0].tables["HISTORY"].copy()
        for path in calibrations_for(sources):
            add_provenance(frame, path, primitive, stopped)
        mark_history(frame, primitive, stopped)
        add_history(frame, primitive, params, started, stopped)
        frame.filename = output_filename(frame, suffix)
        stamped.append(frame)
    return stamped
