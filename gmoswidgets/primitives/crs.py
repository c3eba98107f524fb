"""flagCosmicRaysByStacking and scaleCountsToReference: the steps before stackFrames.

Semantics follow DRAGONS (``core/primitives_image.py`` and
``core/primitives_preprocess.py``; ``shared/reference/dragons-gmos-imaging.md``
1.2):

* **flagCosmicRaysByStacking** (loosely IRAF ``imcoadd``): the aligned
  images are median-combined after matching their backgrounds with an
  additive offset; sources are detected on the median to build an object
  mask; in each image, pixels more than ``hsigma`` standard deviations
  (``sqrt(VAR)``) above the median that are neither in the object mask nor
  already bad or without data are cosmic rays, and so are the pixels
  connected to one that stand 4 standard deviations above the median (a
  hit's tail).  The flags are grown by a disk of radius ``dilation`` and
  OR-ed into DQ as ``cosmic_ray`` (8).
* **scaleCountsToReference** scales every image to the first one: by the
  exposure-time ratio (``tolerance=0``, the default), or by the flux ratio
  of the OBJCAT sources matched on the sky when that ratio lies within
  ``[1 - tolerance, 1 / (1 - tolerance)]``.  ``ORIGTEXP`` keeps the original
  exposure time and ``EXPTIME`` becomes the reference's.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from .. import dq as dqbits
from ..errors import GmosError
from ..executor import map_in_memory
from ..frame import Extension, Frame
from ..gmos.keywords import EXPTIME, ORIGTEXP
from ..numerics.combine import sorting_network
from ..numerics.stats import clipped_median
from ._calib import light_copy
from .base import Param, StepContext, primitive
from .photometry import MASK_DEFAULTS, object_mask

__all__ = ["flagCosmicRaysByStacking", "scaleCountsToReference", "median_stack", "flux_scaling"]

#: DQ bits of input pixels never flagged as cosmic rays (DRAGONS: bad_pixel, no_data).
_EXCLUDE_BITS = dqbits.BAD_PIXEL | dqbits.NO_DATA
#: DQ bits of input pixels left out of the median (they carry no sky signal).
_STACK_EXCLUDE_BITS = _EXCLUDE_BITS | dqbits.UNILLUMINATED
#: Pixels by which the median's object mask is grown, so that star wings that
#: differ between frames (seeing) are not taken for cosmic rays.
_OBJECT_GROW = 2
#: Rows of the stack combined at once (bounds the temporary memory).
_CHUNK_ROWS = 256
#: Row chunks of the median between progress reports.
_CHUNKS_PER_REPORT = 4
#: Share of flagCosmicRaysByStacking's progress reached when the median is made.
_MEDIAN_PROGRESS = 0.4
#: Most pixels used for a background level (a regular subsample).
_LEVEL_SAMPLES = 200_000


def _level(values: np.ndarray) -> float:
    """Sigma-clipped median of a regular subsample of values (:func:`_sample`); 0 if none."""
    if values.size == 0:
        return 0.0
    return clipped_median(values, sigma=3.0, maxiters=10)


#: Stand-ins for the planes a frame lacks (the kernels take arrays, with a flag).
_NO_MASK = np.zeros((0, 0), dqbits.DTYPE)
_NO_FLOAT = np.zeros((0, 0), np.float32)
_NO_BOOL = np.zeros((0, 0), bool)


def _clipped_std(values: np.ndarray) -> float:
    """Sigma-clipped (3 sigma) standard deviation of ``values`` (astropy's, imported when used)."""
    from astropy.stats import sigma_clipped_stats
    return sigma_clipped_stats(values, sigma=3.0)[2]


def _planes(ext: Extension) -> tuple:
    """``(data, variance, has_var, mask, has_mask)`` of an extension as the kernels take them."""
    data = np.asarray(ext.data, np.dtype(np.float32).newbyteorder("="))
    var = ext.variance
    if var is not None:
        var = np.asarray(var, np.dtype(np.float32).newbyteorder("="))
    mask = ext.mask
    if mask is not None:
        mask = np.asarray(mask, np.dtype(dqbits.DTYPE).newbyteorder("="))
    return (data, _NO_FLOAT if var is None else var, var is not None,
            _NO_MASK if mask is None else mask, mask is not None)


def _sample(ext: Extension, bits: int) -> np.ndarray:
    """The finite SCI values of the pixels without DQ ``bits``: at most ``_LEVEL_SAMPLES``,
    a regular subsample in pixel order."""
    from . import crs_kernels as kernels  # numba: loaded by the science stage only
    data, _, _, mask, has_mask = _planes(ext)
    return kernels.select_values(data, _NO_FLOAT, np.float32(0), False, mask, has_mask, bits,
                                 _NO_BOOL, False, True, _LEVEL_SAMPLES)


def _usable_at(ext: Extension, bits: int, index: np.ndarray) -> np.ndarray:
    """Whether the pixels of an extension at flat ``index`` have none of the DQ ``bits`` set."""
    if ext.mask is None:
        return np.ones(index.shape, bool)
    return (ext.mask.flat[index] & bits) == 0


def median_stack(frames: list[Frame], offsets: list[float], *, map_chunks=None, progress=None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Median of single-extension images after adding ``offsets``.

    Pixels flagged bad_pixel, no_data or unilluminated are left out.  Cosmic
    rays on unilluminated pixels are therefore not looked for: those pixels
    carry no sky signal and stay flagged (64) in the stack's DQ.  (The
    illumination edge moves across the sky with each dither and its mask is
    only approximate, so comparing dark and lit pixels would flag sky.)

    ``map_chunks(func, row_slices)``, if given, runs the row chunks (e.g. on
    threads: each writes its own rows of the outputs).  ``progress(fraction)``, if
    given, is called in this thread after every ``_CHUNKS_PER_REPORT`` chunks
    (the engine then lets go of the pages it has read of mapped inputs).

    Returns
    -------
    median : numpy.ndarray
        float32; NaN where no image has a usable pixel.
    variance : numpy.ndarray
        float32 variance of the median, ``pi/2 * mean(VAR) / n``, or None
        when the inputs have no VAR.
    count : numpy.ndarray
        uint8 number of images with a usable pixel.
    """
    from . import crs_kernels as kernels  # numba: loaded by the science stage only
    shape = frames[0].exts[0].data.shape
    # every pixel is written by a chunk
    median = np.empty(shape, np.float32)
    has_var = all(f.exts[0].variance is not None for f in frames)
    variance = np.empty(shape, np.float32) if has_var else None
    counts = np.empty(shape, np.uint8)
    native = np.dtype(np.float32).newbyteorder("=")
    pairs = sorting_network(len(frames))

    def chunk(rows: slice) -> None:
        size = (len(frames), rows.stop - rows.start, shape[1])
        stack = np.empty(size, np.float32)
        var_stack = np.empty(size, np.float32) if has_var else np.zeros((0, 0, 0), np.float32)
        for k, (f, o) in enumerate(zip(frames, offsets)):
            # the image plus its offset, NaN where it has no usable pixel
            ext = f.exts[0]
            mask = _NO_MASK if ext.mask is None else np.asarray(
                ext.mask[rows], np.dtype(dqbits.DTYPE).newbyteorder("="))
            kernels.usable_plane(np.asarray(ext.data[rows], native), np.float32(o), mask,
                                 ext.mask is not None, _STACK_EXCLUDE_BITS, stack[k])
            if has_var:
                var_stack[k] = ext.variance[rows]
        kernels.stack_median(stack, var_stack, has_var, pairs, median[rows],
                             variance[rows] if has_var else _NO_FLOAT, counts[rows])

    chunks = [slice(r0, min(r0 + _CHUNK_ROWS, shape[0])) for r0 in range(0, shape[0], _CHUNK_ROWS)]
    for first in range(0, len(chunks), _CHUNKS_PER_REPORT):
        (map_chunks or (lambda func, items: [func(item) for item in items]))(
            chunk, chunks[first:first + _CHUNKS_PER_REPORT])
        if progress is not None:
            progress(min(first + _CHUNKS_PER_REPORT, len(chunks)) / len(chunks))
    return median, variance, counts


#: Threshold (in sigma of the difference) where only two images cover a pixel.
_PAIR_SIGMA = 5.0
#: Threshold (sigma) for the neighbours of a flagged pixel to be flagged too.
_NEIGHBOUR_SIGMA = 4.0
#: (dy, dx) of a pixel's eight neighbours (and itself).
_SQUARE = np.argwhere(np.ones((3, 3), bool)) - 1
#: A pixel is sharper than any star when its excess over the 5x5 median is
#: this many times the excess of the 3x3 median over the 5x5 one (the
#: "fine structure" test of L.A.Cosmic, van Dokkum 2001, with its objlim).
_SHARPNESS = 5.0


#: ... and it stands out of a sky background: its excess over the 5x5 median
#: is more than this fraction of its height above the sky (on a bright
#: star's wing the 5x5 median is nearly as high as the pixel).
_ISOLATION = 0.5


def _sharp(data: np.ndarray, index: np.ndarray, threshold: np.ndarray, level: float) -> np.ndarray:
    """Whether each pixel (flat ``index``) stands out of its surroundings like a cosmic ray.

    It must exceed the median of its 5x5 neighbourhood by more than
    ``threshold`` (one value per pixel) and by more than ``_ISOLATION`` of
    its height above the sky ``level``, and its 3x3 neighbourhood must not
    be much brighter than the 5x5 one (a star's is; ``_SHARPNESS``).
    """
    ys, xs = np.unravel_index(index, data.shape)
    # the 5x5 windows, edge pixels repeated beyond the image
    steps = np.arange(-2, 3)
    rows = np.clip(ys[:, None] + steps, 0, data.shape[0] - 1)
    cols = np.clip(xs[:, None] + steps, 0, data.shape[1] - 1)
    windows = data[rows[:, :, None], cols[:, None, :]]
    m5 = np.median(windows.reshape(ys.size, 25), axis=1)
    m3 = np.median(windows[:, 1:4, 1:4].reshape(ys.size, 9), axis=1)
    value = data[ys, xs]
    excess = value - m5
    return ((excess > threshold) & (excess > _SHARPNESS * np.maximum(m3 - m5, 0))
            & (excess > _ISOLATION * (value - level)))


def _sharp_peaks(data: np.ndarray, index: np.ndarray, threshold: np.ndarray,
                 level: float) -> np.ndarray:
    """The pixels of ``index`` (flat) far above their surroundings and sharper than the PSF.

    Where a single image covers the sky, the stack median cannot reveal its
    cosmic rays: a pixel there is one when it is :func:`_sharp` with its
    ``threshold`` (one value per pixel).  Only pixels ``threshold`` above the sky ``level`` are
    examined, which keeps this cheap.
    """
    high = data.flat[index] - level > threshold
    index, threshold = index[high], threshold[high]
    return index[_sharp(data, index, threshold, level)] if index.size else index


class _DiffTests:
    """The test of one image's difference from the median, at flat pixel indices.

    A pixel is a candidate (on sky, usable) whose difference exceeds the
    ``background`` of the differences by ``k`` sigma.  With two images the
    median is their mean and hides half of a hit: their difference is tested
    against its own noise instead (``k_pair`` sigma of the difference, i.e.
    twice the difference against ``k_pair`` times ``sigma``).  The
    difference, sigma (``sqrt(VAR)``, or the constant ``sigma`` without VAR)
    and candidacy are evaluated at the indices only (``kernels.above_at``).
    ``planes`` are the image's as :func:`_planes` gives them.
    """

    def __init__(self, planes, offset, median, count, sky, sigma, background):
        self.planes, self.offset, self.median, self.count = planes, offset, median, count
        self.sky, self.const_sigma, self.background = sky, sigma, background

    def sigma(self, index: np.ndarray) -> np.ndarray:
        """float32 sigma of the pixels ``index``."""
        _, var, has_var, _, _ = self.planes
        if not has_var:
            return np.full(index.shape, self.const_sigma, np.float32)
        return np.sqrt(np.maximum(var.flat[index], 0))

    def above(self, index: np.ndarray, k: float, k_pair: float) -> np.ndarray:
        from . import crs_kernels as kernels  # numba: loaded by the science stage only
        data, var, has_var, mask, has_mask = self.planes
        return kernels.above_at(index, data, self.median, self.offset, var, has_var,
                                self.const_sigma, self.count, self.sky, mask, has_mask,
                                _EXCLUDE_BITS, self.background, k, k_pair)


def _offsets(structure: np.ndarray) -> np.ndarray:
    """(dy, dx) of the true elements of a centred odd-sized structuring element."""
    return np.argwhere(structure) - np.array(structure.shape) // 2


def _around(index: np.ndarray, offsets: np.ndarray, shape: tuple) -> np.ndarray:
    """Sorted unique flat indices of ``index`` dilated by ``offsets``, within ``shape``."""
    ys, xs = np.unravel_index(index, shape)
    ys = ys[:, None] + offsets[:, 0]
    xs = xs[:, None] + offsets[:, 1]
    inside = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
    return np.unique(np.ravel_multi_index((ys[inside], xs[inside]), shape))


def _grow(mask: np.ndarray, times: int) -> np.ndarray:
    """``mask`` grown ``times`` times by a pixel's four neighbours (scipy's
    ``binary_dilation(mask, iterations=times)``: every pixel within ``times`` steps)."""
    for _ in range(times):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return mask


def _disk(radius: float) -> np.ndarray:
    r = int(math.floor(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx ** 2 + yy ** 2 <= radius ** 2


@primitive(
    Param("hsigma", float, 7.0, "Threshold above the median, in standard deviations.", min=0.0),
    Param("dilation", float, 1.0, "Radius (pixels) of the disk the cosmic-ray flags are grown by.",
          min=0.0),
    suffix="_CRMasked",
)
def flagCosmicRaysByStacking(frames: list[Frame], ctx: StepContext, *, hsigma: float,
                             dilation: float) -> list[Frame]:
    """Flag cosmic rays by comparing each aligned image with the median of all.

    Where only one image has usable sky (the dithered edges of the field),
    a pixel is flagged when it stands out of its own neighbourhood and is
    sharper than a star (see ``_sharp_peaks``).  A hit's fainter tail, the
    pixels connected to a flagged one that pass the same tests with a lower
    threshold (``_NEIGHBOUR_SIGMA``), is flagged too before the flags are
    grown by ``dilation``.  The
    tests are evaluated only at the pixels that can pass them (their
    difference from the median already a couple of sigma high), and the
    growing works on pixel lists: the flags are sparse.

    Parameters
    ----------
    frames : list of Frame
        Single-extension images on one pixel grid (after resampleToCommonFrame).
    ctx : StepContext
    hsigma : float
        Detection threshold in units of ``sqrt(VAR)``.
    dilation : float
        Radius of the disk by which the flagged pixels are grown.

    Returns
    -------
    list of Frame
        The inputs with ``cosmic_ray`` (8) OR-ed into DQ.
    """
    if len(frames) < 2:
        ctx.log.warning("flagCosmicRaysByStacking needs at least two images; nothing flagged")
        return list(frames)
    shapes = {(len(f.exts),) + f.exts[0].data.shape for f in frames}
    if len(shapes) != 1 or len(frames[0].exts) != 1:
        raise GmosError("flagCosmicRaysByStacking needs single-extension images on one grid; "
                        "run mosaicDetectors and resampleToCommonFrame first")
    from . import crs_kernels as kernels  # numba: loaded by the science stage only
    # the frames' and the median's row chunks on the executor's threads (numpy and the
    # compiled kernels release the GIL)
    on_threads = partial(map_in_memory, ctx.executor)
    levels = on_threads(lambda f: _level(_sample(f.exts[0], _STACK_EXCLUDE_BITS)), frames)
    offsets = [levels[0] - level for level in levels]
    median, median_var, count = median_stack(
        frames, offsets, map_chunks=on_threads,
        progress=lambda done: ctx.progress(_MEDIAN_PROGRESS * done, "median"))
    # the median's NaN pixels are its bad ones (as a NO_DATA DQ would make them)
    objects = object_mask(median, median_var, None, **MASK_DEFAULTS)
    del median_var
    sky = np.isfinite(median) & ~_grow(objects, _OBJECT_GROW)
    del objects
    # one image only: compare it with its own surroundings instead
    alone = np.flatnonzero(count == 1)
    grow = _offsets(_disk(dilation)) if dilation >= 1 else None

    def flag(i: int) -> np.ndarray:
        """Flat indices of the cosmic-ray pixels of frame ``i``."""
        ext = frames[i].exts[0]
        data, var, has_var, mask, has_mask = _planes(ext)
        offset = np.float32(offsets[i])
        # the differences from the median on the candidate pixels (on sky, usable)
        candidates = (data, median, offset, True, mask, has_mask, _EXCLUDE_BITS, sky, True)
        background = _level(kernels.select_values(*candidates, True, _LEVEL_SAMPLES))
        sigma = np.float32(0 if has_var else _clipped_std(
            kernels.select_values(*candidates, False, data.size)))
        tests = _DiffTests((data, var, has_var, mask, has_mask), offset, median, count, sky, sigma,
                           background)
        # every pixel that can pass a test lies above this (with some margin for rounding)
        least = 0.99 * min(hsigma, _PAIR_SIGMA * math.sqrt(2.0), _NEIGHBOUR_SIGMA) / 2
        floor = min(background, background / 2) - 1e-3 * (1 + abs(background))
        args = (data, median, offset, var, has_var, sigma, mask, has_mask, _EXCLUDE_BITS, sky,
                np.float32(floor), np.float32(least))
        above = kernels.indices_above(*args)
        flagged = above[tests.above(above, hsigma, _PAIR_SIGMA * math.sqrt(2.0))
                        & (count.flat[above] != 1)]
        single = alone[_usable_at(ext, _STACK_EXCLUDE_BITS, alone)]
        if single.size:
            flagged = np.union1d(flagged, _sharp_peaks(ext.data, single,
                                                       hsigma * tests.sigma(single), levels[i]))
        # the fainter tail of a hit: the pixels above a lower threshold connected
        # to its core (as L.A.Cosmic's sigfrac, repeated along a streak)
        added = flagged
        while added.size:
            near = np.setdiff1d(_around(added, _SQUARE, data.shape), flagged, assume_unique=True)
            tail = [near[tests.above(near, _NEIGHBOUR_SIGMA, _NEIGHBOUR_SIGMA)]]
            # where one image covers the sky its tail stands out of its own surroundings
            near = near[(count.flat[near] == 1) & _usable_at(ext, _STACK_EXCLUDE_BITS, near)]
            if near.size:
                tail.append(near[_sharp(ext.data, near, _NEIGHBOUR_SIGMA * tests.sigma(near),
                                        levels[i])])
            added = np.unique(np.concatenate(tail))
            flagged = np.union1d(flagged, added)
        if grow is not None and flagged.size:
            flagged = _around(flagged, grow, data.shape)
        return flagged

    def flagged_mask(i: int) -> tuple[np.ndarray, int]:
        """The new DQ of frame ``i`` (``cosmic_ray`` OR-ed in) and the number of pixels flagged."""
        flagged = flag(i)
        ext = frames[i].exts[0]
        mask = np.zeros(ext.data.shape, dqbits.DTYPE) if ext.mask is None else ext.mask.copy()
        mask.flat[flagged] |= dqbits.COSMIC_RAY
        return mask, flagged.size

    # a few frames at a time (one per thread), reporting progress between them: the engine
    # then lets go of the pages read of mapped inputs
    out = []
    batch = max(getattr(ctx.executor, "max_workers", 1), 1)
    for first in range(0, len(frames), batch):
        indices = range(first, min(first + batch, len(frames)))
        for i, (mask, nflagged) in zip(indices, on_threads(flagged_mask, indices)):
            frame = frames[i]
            ctx.log.info("flagCosmicRaysByStacking: %s: %s pixels flagged as cosmic rays",
                         frame.filename, nflagged)
            new = light_copy(frame)
            new.exts[0].mask = mask
            out.append(new)
            ctx.progress(_MEDIAN_PROGRESS + (1 - _MEDIAN_PROGRESS) * (i + 1) / len(frames),
                         frame.filename)
    return out


# -- scaleCountsToReference ------------------------------------------------------------

def flux_scaling(flux: np.ndarray, ref_flux: np.ndarray, flux_err: np.ndarray | None = None,
                 ref_err: np.ndarray | None = None, sigma: float = 3.0,
                 max_iters: int = 10) -> float:
    """Factor ``s`` with ``ref_flux ~ s * flux``: weighted least squares with clipping.

    Errors on both sides enter the weights ``1 / (ref_err**2 + s**2 flux_err**2)``;
    without errors every source weighs the same.  Sources more than ``sigma``
    robust standard deviations (MAD-based; at least the quoted errors) off the
    fit are rejected, iteratively.
    """
    x = np.asarray(flux, float)
    y = np.asarray(ref_flux, float)
    ex = np.zeros_like(x) if flux_err is None else np.asarray(flux_err, float)
    ey = np.zeros_like(y) if ref_err is None else np.asarray(ref_err, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0) & np.isfinite(ex) & np.isfinite(ey)
    if not keep.any():
        return float("nan")
    scale = float(np.median(y[keep] / x[keep]))
    with_errors = np.all((ex ** 2 + ey ** 2)[keep] > 0)
    for _ in range(max_iters):
        weights = 1.0 / (ey ** 2 + scale ** 2 * ex ** 2) if with_errors else np.ones_like(x)
        scale = float(np.sum((weights * x * y)[keep]) / np.sum((weights * x * x)[keep]))
        resid = (y - scale * x) * np.sqrt(weights)
        # Robust spread; with errors the residuals are in sigmas, so at least 1.
        spread = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep])))
        if with_errors:
            spread = max(spread, 1.0)
        if spread == 0:
            break
        new_keep = keep & (np.abs(resid) <= sigma * spread)
        if new_keep.sum() == keep.sum() or new_keep.sum() < 2:
            break
        keep = new_keep
    return scale


def _catalogue(frame: Frame):
    """(SkyCoord, flux, flux error or None) from a frame's OBJCAT(s), or None."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord  # ~0.1 s to import: only when scaling by flux
    cats = [ext.objcat for ext in frame.exts if ext.objcat is not None
            and {"X_WORLD", "Y_WORLD", "FLUX_AUTO"} <= set(ext.objcat.colnames) and len(ext.objcat)]
    if not cats:
        return None
    ra = np.concatenate([np.asarray(c["X_WORLD"], float) for c in cats])
    dec = np.concatenate([np.asarray(c["Y_WORLD"], float) for c in cats])
    flux = np.concatenate([np.asarray(c["FLUX_AUTO"], float) for c in cats])
    err = (np.concatenate([np.asarray(c["FLUXERR_AUTO"], float) for c in cats])
           if all("FLUXERR_AUTO" in c.colnames for c in cats) else None)
    good = np.isfinite(ra) & np.isfinite(dec)
    return SkyCoord(ra[good] * u.deg, dec[good] * u.deg), flux[good], \
        None if err is None else err[good]


def _match(ref_coords, coords, radius):
    """For each reference source: index of its match in ``coords`` and whether it matched."""
    from astropy import units as u
    idx, sep, _ = ref_coords.match_to_catalog_sky(coords)
    return idx, sep < radius * u.arcsec


def _source_scalings(frames, radius, use_common, log):
    """Flux-ratio scaling of each non-reference frame (None where it cannot be measured)."""
    ref = _catalogue(frames[0])
    if ref is None:
        log.warning("scaleCountsToReference: %s has no usable OBJCAT; scaling by exposure time",
                    frames[0].filename)
        return [None] * (len(frames) - 1), [0] * (len(frames) - 1)
    ref_coords, ref_flux, ref_err = ref
    cats = [_catalogue(f) for f in frames[1:]]
    common = np.ones(len(ref_flux), bool)
    if use_common and len(frames) > 2:
        for cat in cats:
            if cat is not None and len(cat[1]):
                common &= _match(ref_coords, cat[0], radius)[1]
        if not common.any():
            log.warning("scaleCountsToReference: no source is common to all images; "
                        "using use_common=False")
            common[:] = True
    scalings, nmatched = [], []
    for frame, cat in zip(frames[1:], cats):
        if cat is None or not len(cat[1]):
            log.warning("scaleCountsToReference: %s has no usable OBJCAT", frame.filename)
            scalings.append(None)
            nmatched.append(0)
            continue
        idx, matched = _match(ref_coords, cat[0], radius)
        matched &= common
        if not matched.any():
            log.warning("scaleCountsToReference: no source of %s matches the reference",
                        frame.filename)
            scalings.append(None)
            nmatched.append(0)
            continue
        flux, err = cat[1][idx[matched]], None if cat[2] is None else cat[2][idx[matched]]
        scalings.append(flux_scaling(flux, ref_flux[matched], err,
                                     None if ref_err is None else ref_err[matched]))
        nmatched.append(int(matched.sum()))
    return scalings, nmatched


@primitive(
    Param("tolerance", float, 0.0, "Use the source flux ratio if within [1-tol, 1/(1-tol)]; "
          "0 scales by exposure time only.", min=0.0, max=1.0),
    Param("use_common", bool, True, "Use only the sources common to all images."),
    Param("radius", float, 0.5, "Matching radius for the sources (arcsec).", min=0.0),
    suffix="_countsScaled",
)
def scaleCountsToReference(frames: list[Frame], ctx: StepContext, *, tolerance: float,
                           use_common: bool, radius: float) -> list[Frame]:
    """Scale the images to the counts of the first (reference) image.

    Parameters
    ----------
    frames : list of Frame
    ctx : StepContext
    tolerance : float
        0: scale by exposure-time ratio.  Otherwise the OBJCAT flux ratio is
        used when it lies within ``[1 - tolerance, 1 / (1 - tolerance)]``
        (any ratio for 1), the exposure-time ratio when not.
    use_common : bool
        Measure the ratio on the sources found in every image only.
    radius : float
        Sky matching radius in arcsec.

    Returns
    -------
    list of Frame
        Scaled copies: SCI x s, VAR x s^2, ``ORIGTEXP`` kept, ``EXPTIME`` = reference's.
    """
    if len(frames) < 2:
        ctx.log.info("scaleCountsToReference: a single image needs no scaling")
        return list(frames)
    ref_texp = float(frames[0].descriptor("exposure_time"))
    if tolerance > 0:
        measured, nmatched = _source_scalings(frames, radius, use_common, ctx.log)
    else:
        ctx.log.info("scaleCountsToReference: scaling all images by exposure time only")
        measured, nmatched = [None] * (len(frames) - 1), [0] * (len(frames) - 1)
    factors = [1.0]
    for frame, scaling, num in zip(frames[1:], measured, nmatched):
        time_scaling = ref_texp / float(frame.descriptor("exposure_time"))
        if scaling is not None and np.isfinite(scaling) and scaling > 0 and (
                tolerance == 1 or (1 - tolerance) <= scaling <= 1 / (1 - tolerance)):
            ctx.log.info("scaleCountsToReference: %s x %.4f (from %s sources)", frame.filename,
                         scaling, num)
            factors.append(scaling)
            continue
        if scaling is not None:
            ctx.log.warning("scaleCountsToReference: scaling %.3f of %s (from %s sources) is "
                            "inconsistent with the exposure-time scaling %.3f; using the latter",
                            scaling, frame.filename, num, time_scaling)
        factors.append(time_scaling)
    out = []
    for frame, factor in zip(frames, factors):
        if factor == 1.0:
            out.append(frame)
            continue
        new = light_copy(frame)
        for ext in new.exts:
            ext.data = ext.data * np.float32(factor)
            if ext.variance is not None:
                ext.variance = ext.variance * np.float32(factor ** 2)
        if ORIGTEXP not in new.phu:
            new.phu[ORIGTEXP] = (float(frame.descriptor("exposure_time")),
                                 "Original exposure time")
        new.phu[EXPTIME] = ref_texp
        ctx.log.info("scaleCountsToReference: %s scaled by %.4f", frame.filename, factor)
        out.append(new)
    return out


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (flagCosmicRaysByStacking, scaleCountsToReference)
