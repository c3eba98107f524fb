"""Checks of a reduction's inputs, made when the reduction is created (before any step runs).

A bad value found here costs one line naming the file, instead of a
``ZeroDivisionError`` at step 15 of 19:

* :func:`check_inputs`: every exposure time is a finite number, more than 0
  except for biases (and darks); every ``CCDSUM`` is a GMOS binning; the
  inputs that are not biases share one filter (a flat of another filter is
  never stacked with the others).
* :func:`check_user_calibrations`: a ``--user_cal`` file is a processed
  calibration of the type it is given as (not a raw bias).
* :func:`check_writable_dir` and :func:`check_writable_file`: the working
  directory and the log file can be written (checked by trying, which is
  right for every user, root included, and for read-only mounts).
* :func:`check_flat_usable`: a processed flat has usable (finite, > 0)
  pixels in every extension (called by ``flatCorrect``).

Values that are absent are left to the descriptors, which name the missing
keyword when a step needs it.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from .checksums import start_md5sums
from .errors import FileProblem
from .gmos.descriptors import descriptor_value
from .gmos.tags import tags_of

__all__ = ["GMOS_BINNINGS", "read_inputs", "check_inputs", "check_user_calibrations",
           "check_writable_dir", "check_writable_file", "check_flat_usable"]

#: The on-chip binnings GMOS reads out (``CCDSUM`` values, per axis).
GMOS_BINNINGS = (1, 2, 4)
#: Kinds of frames whose exposure time may be 0.
_ZERO_EXPOSURE_TAGS = {"BIAS", "DARK"}


def _value(headers, name):
    """A descriptor's value, or None if the file lacks what it needs."""
    try:
        return descriptor_value(headers, name)
    except FileProblem:
        return None


def _check_exposure(headers, tags) -> None:
    if "EXPTIME" not in headers.phu:
        return
    value = _value(headers, "exposure_time")
    if value is None or not math.isfinite(value):
        shown = headers.phu["EXPTIME"] if value is None else value
        raise FileProblem(headers.path, f"exposure time {shown!r} s: it must be a finite number")
    if value <= 0 and not tags & _ZERO_EXPOSURE_TAGS:
        raise FileProblem(headers.path, f"exposure time {value} s: it must be more than 0 "
                                        "for a frame that is not a bias")


def _check_binning(headers) -> None:
    for index, header in enumerate(headers.ext_headers, start=1):
        if "CCDSUM" not in header:
            continue
        parts = str(header["CCDSUM"]).split()
        if len(parts) != 2 or any(p not in {str(b) for b in GMOS_BINNINGS} for p in parts):
            raise FileProblem(headers.path, f"extension {index}: CCDSUM {header['CCDSUM']!r} is "
                                            f"not a GMOS binning (two of "
                                            f"{', '.join(map(str, GMOS_BINNINGS))}, e.g. '2 2')")


def read_inputs(files) -> list:
    """The headers of a reduction's inputs, read once (values only) and checked together.

    The files' checksums for ``PROVENANCE`` are started on another thread
    (:func:`gmoswidgets.checksums.start_md5sums`): they are ready when the
    inputs are stamped.

    Parameters
    ----------
    files : list of path-like

    Returns
    -------
    list
        One header set per file (:func:`gmoswidgets.fitsheader.header_values`).

    Raises
    ------
    FileProblem
        An unreadable input, or inputs refused by :func:`check_inputs`.
    """
    from .fitsheader import header_values
    start_md5sums(files)
    headers_list = [header_values(path) for path in files]
    check_inputs(headers_list)
    return headers_list


def check_inputs(headers_list) -> None:
    """Refuse inputs that would fail late or must not be reduced together.

    Parameters
    ----------
    headers_list : list of HeaderSet
        The headers of the reduction's inputs, in order.

    Raises
    ------
    FileProblem
        Naming the first offending file and the problem.
    """
    reference = None
    for headers in headers_list:
        tags = tags_of(headers)
        _check_exposure(headers, tags)
        _check_binning(headers)
        if "BIAS" in tags:
            continue
        filter_name = _value(headers, "filter_name")
        if filter_name is None:
            continue
        if reference is None:
            reference = (filter_name, headers.filename)
        elif filter_name != reference[0]:
            raise FileProblem(headers.path, f"filter {filter_name}, but {reference[0]} in "
                                            f"{reference[1]}: reduce frames of one filter together")


def check_user_calibrations(user_cals) -> None:
    """Refuse a user calibration that is not a processed calibration of its type.

    Parameters
    ----------
    user_cals : UserCalibrations or None
        The ``--user_cal`` files by calibration type.

    Raises
    ------
    FileProblem
        Naming the file, the type it was given as and what it is.
    """
    from .caldb.properties import caltype_of
    from .frame import read_headers
    for caltype, path in (getattr(user_cals, "files", None) or {}).items():
        tags = tags_of(read_headers(path))
        actual = caltype_of(tags)
        if actual == caltype:
            continue
        kind = next((t.lower() for t in ("BIAS", "FLAT", "FRINGE", "BPM") if t in tags), "frame")
        what = (f"a {actual}" if actual else
                f"a raw {kind}" if "RAW" in tags or "UNPREPARED" in tags else
                f"a partly reduced {kind}, not a processed calibration")
        raise FileProblem(path, f"given as the user {caltype}, but it is {what}; give the "
                                f"output of reduce (e.g. {path.stem}_{caltype.split('_')[-1]}.fits)")


def check_writable_dir(directory) -> None:
    """Raise FileProblem unless files can be created in ``directory`` (or where it will be made).

    Parameters
    ----------
    directory : path-like
        The output directory; if it does not exist yet, its nearest existing
        parent is tried.
    """
    where = Path(directory).absolute()
    while not where.exists() and where.parent != where:
        where = where.parent
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise FileProblem(where, f"cannot write outputs in this directory ({exc.strerror}); "
                                 "run from a directory you can write in") from None


def check_writable_file(path) -> None:
    """Raise FileProblem unless ``path`` can be opened for appending (it is created if absent)."""
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise FileProblem(path, f"cannot write the log file ({exc.strerror}); give a "
                                "writable --logfile or run from a directory you can write in") from None


def check_flat_usable(flat, planes, index) -> None:
    """Raise FileProblem naming the flat if ``planes`` (its cut for one extension) has no usable pixel.

    Parameters
    ----------
    flat : Frame
        The processed flat.
    planes : numpy.ndarray
        The flat's response for one science extension.
    index : int
        1-based extension number, for the message.
    """
    import numpy as np
    if not np.any(np.isfinite(planes) & (planes > 0)):
        raise FileProblem(flat.path or flat.filename, f"no usable pixels in extension {index} of "
                                                      "this processed flat (all zero, negative or "
                                                      "not finite); make the flat again")
