"""Helpers shared by several test modules (not tests themselves)."""
import numpy as np

from gmoswidgets.outputs import mark_history, utc_now
from gmoswidgets.primitives import StepContext, get_primitive


def run_steps(frames, steps, lookup=None):
    """Run (primitive, params) steps like the engine: validate, call, stamp the timestamps.

    ``lookup`` is the StepContext's calibration lookup ``(frame, caltype) -> (Frame, path, reason)``.
    """
    ctx = StepContext(calibration_lookup=lookup)
    for name, params in steps:
        prim = get_primitive(name)
        frames = prim(frames, ctx, **params)
        for frame in frames:
            mark_history(frame, name, utc_now())
    return frames


def centroid(image, x, y, half=6):
    """Background-subtracted first moments in a box around (x, y): (x, y, total)."""
    xi, yi = int(round(float(x))), int(round(float(y)))
    box = image[yi - half:yi + half + 1, xi - half:xi + half + 1].astype(float)
    ring = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
    box = box - np.median(ring)
    yy, xx = np.mgrid[yi - half:yi + half + 1, xi - half:xi + half + 1]
    return (box * xx).sum() / box.sum(), (box * yy).sum() / box.sum(), box.sum()


def fits_bytes(n=5000):
    """``n`` bytes that start like a FITS file (what the downloader tests serve)."""
    return b"SIMPLE  =                    T" + bytes(range(256)) * (n // 256)
