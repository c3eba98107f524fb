"""adjustWCSToReference: make every image's WCS agree with the first one's.

As DRAGONS (``core/primitives_register.py``, ``gempy/library/matching.py``):
the reference is the first image; the reference OBJCAT sources are put
through reference WCS -> input WCS^-1, the offset is found by a brute
search within ``first_pass`` arcsec, then refined by matching within
``match_radius`` and a least-squares fit (a shift, plus rotation and/or
scale on request).  With too few matches the telescope offsets (POFFSET,
QOFFSET, PA; descriptors ``detector_x_offset``/``detector_y_offset``)
are used instead.

The correction is an affine pixel transform ``T(p) = M p + t`` (1-based
pixels) with ``world_new(p) = world_old(T(p))``; it is folded into the
FITS WCS exactly: ``CD' = CD M`` and ``CRPIX' = M^-1 (CRPIX - t)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from ..errors import GmosError
from ..frame import Frame
from ._calib import light_copy
from .base import Param, StepContext, primitive
from .photometry import add_world_columns, extension_wcs

__all__ = ["adjustWCSToReference", "AffineFit", "match_catalogs", "apply_affine_to_header"]

#: Refinement passes of match-and-fit after the brute-force search.
_REFINE_PASSES = 5
#: Rotation bound of the fit (DRAGONS bounds it to +-5 degrees).
_MAX_ROTATION_DEG = 5.0


@dataclass
class AffineFit:
    """A fitted pixel transform ``T(p) = matrix @ p + shift`` and its quality.

    Attributes
    ----------
    matrix : numpy.ndarray
        2x2 linear part (rotation times scale; identity for a pure shift).
    shift : numpy.ndarray
        (dx, dy) in pixels.
    nmatched : int
        Number of matched source pairs used in the fit.
    rms : float
        Rms of the fit residuals in pixels.
    """

    matrix: np.ndarray
    shift: np.ndarray
    nmatched: int = 0
    rms: float = float("nan")

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return xy @ self.matrix.T + self.shift

    @property
    def rotation_deg(self) -> float:
        """Rotation angle of the linear part, degrees counter-clockwise."""
        return float(np.degrees(np.arctan2(self.matrix[1, 0], self.matrix[0, 0])))

    @property
    def scale(self) -> float:
        """Scale factor of the linear part."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix))))


def _fit_transform(src: np.ndarray, dst: np.ndarray, rotate: bool, scale: bool) -> AffineFit:
    """Least-squares transform taking ``src`` onto ``dst`` (both (N, 2))."""
    c_src, c_dst = src.mean(axis=0), dst.mean(axis=0)
    matrix = np.eye(2)
    if rotate or scale:
        p = (src[:, 0] - c_src[0]) + 1j * (src[:, 1] - c_src[1])
        q = (dst[:, 0] - c_dst[0]) + 1j * (dst[:, 1] - c_dst[1])
        norm = np.sum(np.abs(p) ** 2)
        if norm > 0:
            coeff = np.sum(np.conj(p) * q) / norm
            angle = np.angle(coeff) if rotate else 0.0
            angle = np.clip(angle, -np.radians(_MAX_ROTATION_DEG), np.radians(_MAX_ROTATION_DEG))
            factor = np.real(np.sum(np.conj(p) * q * np.exp(-1j * angle))) / norm if scale else 1.0
            cos, sin = np.cos(angle), np.sin(angle)
            matrix = factor * np.array([[cos, -sin], [sin, cos]])
    fit = AffineFit(matrix, c_dst - matrix @ c_src, len(src))
    fit.rms = float(np.sqrt(np.mean(np.sum((fit(src) - dst) ** 2, axis=1)))) if len(src) else np.nan
    return fit


def _clipped_fit(src, dst, pairs, rotate, scale, nsigma=3.0, floor=0.01):
    """Fit the matched ``pairs``, rejecting pairs off by more than ``nsigma`` robust sigmas.

    Returns the fit and the pairs kept.  ``floor`` (pixels) stops the
    clipping from eating good pairs when the residuals are tiny.
    """
    while True:
        fit = _fit_transform(src[pairs[:, 0]], dst[pairs[:, 1]],
                             rotate and len(pairs) >= 2, scale and len(pairs) >= 2)
        resid = np.hypot(*(fit(src[pairs[:, 0]]) - dst[pairs[:, 1]]).T)
        # for 2-D Gaussian errors the median radial residual is 1.1774 sigma
        limit = nsigma * max(np.median(resid) / 1.1774, floor)
        keep = resid <= limit
        if keep.all() or keep.sum() < 2:
            return fit, pairs
        pairs = pairs[keep]


def _brute_offset(src: np.ndarray, dst: np.ndarray, search: float, radius: float):
    """Offset (dst - src) agreed by the most source pairs, searched within ``search`` pixels.

    Every pair closer than ``search`` votes for its offset; the offset with
    the most other votes within ``radius`` wins, and the mean of those
    votes is returned ((0, 0) when no pair is close enough).
    """
    from scipy.spatial import cKDTree  # ~0.1 s to import: only the science stage matches
    pairs = cKDTree(dst).query_ball_point(src, search)
    offsets = np.array([dst[j] - src[i] for i, js in enumerate(pairs) for j in js]).reshape(-1, 2)
    if len(offsets) == 0:
        return np.zeros(2)
    tree = cKDTree(offsets)
    counts = tree.query_ball_point(offsets, radius, return_length=True)
    members = tree.query_ball_point(offsets[int(np.argmax(counts))], radius)
    return offsets[members].mean(axis=0)


def match_catalogs(src: np.ndarray, dst: np.ndarray, first_pass: float, match_radius: float,
                   rotate: bool = False, scale: bool = False) -> tuple[AffineFit, np.ndarray]:
    """Align pixel positions ``src`` onto ``dst`` (same pixel frame).

    Parameters
    ----------
    src : numpy.ndarray
        (N, 2) measured positions (x, y) in the input image.
    dst : numpy.ndarray
        (M, 2) reference positions projected into the same image.
    first_pass : float
        Search radius of the brute-force offset search, in pixels.
    match_radius : float
        Matching radius of the refinement, in pixels.
    rotate, scale : bool
        Also fit a rotation / a scale factor.

    Returns
    -------
    fit : AffineFit
        The transform taking ``src`` onto ``dst``; ``nmatched`` is 0 when
        nothing matched.
    pairs : numpy.ndarray
        (K, 2) indices (src, dst) of the matched pairs.
    """
    from scipy.spatial import cKDTree
    offset = _brute_offset(src, dst, first_pass, match_radius)
    fit = AffineFit(np.eye(2), offset)
    tree = cKDTree(dst)
    pairs = np.zeros((0, 2), dtype=int)
    for _ in range(_REFINE_PASSES):
        dist, idx = tree.query(fit(src), distance_upper_bound=match_radius)
        ok = np.isfinite(dist)
        isrc, idst = np.nonzero(ok)[0], idx[ok]
        # keep one-to-one matches only (the closest source for each reference)
        order = np.argsort(dist[ok])
        _, first = np.unique(idst[order], return_index=True)
        keep = order[first]
        new_pairs = np.column_stack([isrc[keep], idst[keep]])
        if len(new_pairs) == 0:
            return AffineFit(np.eye(2), offset), new_pairs
        fit, new_pairs = _clipped_fit(src, dst, new_pairs, rotate, scale)
        converged = set(map(tuple, new_pairs)) == set(map(tuple, pairs))
        pairs = new_pairs
        if converged:
            break
    fit.nmatched = len(pairs)
    return fit, pairs


def _linear_wcs(header):
    """The 2x2 CD matrix of a header (from CDi_j, or PCi_j x CDELTi)."""
    return _cd_matrix(extension_wcs(header))


def _cd_matrix(wcs):
    """The 2x2 CD matrix of a celestial WCS (None for None)."""
    if wcs is None:
        return None
    return wcs.wcs.cd.copy() if wcs.wcs.has_cd() else wcs.wcs.get_pc() * wcs.wcs.cdelt[:, None]


def apply_affine_to_header(header: fits.Header, fit: AffineFit,
                           base_header: fits.Header | None = None) -> None:
    """Fold a pixel transform into a FITS WCS: ``world_new(p) = world_base(fit(p))``.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header to update in place (CRPIXi, CDi_j; PCi_j/CDELTi are replaced
        by CDi_j).
    fit : AffineFit
        Transform in 1-based pixels.
    base_header : astropy.io.fits.Header, optional
        Header whose WCS is transformed (default: ``header`` itself); the
        offsets fallback uses the reference image's WCS.
    """
    base = header if base_header is None else base_header
    cd = _linear_wcs(base)
    crpix = np.array([float(base["CRPIX1"]), float(base["CRPIX2"])])
    new_cd = cd @ fit.matrix
    new_crpix = np.linalg.solve(fit.matrix, crpix - fit.shift)
    if base is not header:
        for key in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CUNIT1", "CUNIT2", "RADESYS",
                    "EQUINOX", "LONPOLE", "LATPOLE"):
            if key in base:
                header[key] = base[key]
    for i in (1, 2):
        header.remove(f"CDELT{i}", ignore_missing=True)
        for j in (1, 2):
            header.remove(f"PC{i}_{j}", ignore_missing=True)
    header["CRPIX1"], header["CRPIX2"] = float(new_crpix[0]), float(new_crpix[1])
    for i in (1, 2):
        for j in (1, 2):
            header[f"CD{i}_{j}"] = float(new_cd[i - 1, j - 1])


def _pixel_scale_arcsec(wcs) -> float:
    """Pixel scale (arcsec) of a celestial WCS."""
    return float(np.sqrt(abs(np.linalg.det(_cd_matrix(wcs))))) * 3600.0


def _sources_fit(ref_wcs, ref_cat, wcs, cat, first_pass, match_radius, rotate, scale):
    """Fit the correction of the image with ``wcs``/``cat`` from the reference's sources.

    Returns None when either catalogue is missing or empty.
    """
    if ref_cat is None or cat is None or len(ref_cat) == 0 or len(cat) == 0:
        return None
    ra, dec = ref_wcs.all_pix2world(*_positions(ref_cat).T, 1)
    dst = np.column_stack(wcs.all_world2pix(ra, dec, 1))
    src = _positions(cat)
    pixscale = _pixel_scale_arcsec(wcs)
    fit, _ = match_catalogs(src, dst, first_pass / pixscale, match_radius / pixscale,
                            rotate, scale)
    return fit


def _positions(cat) -> np.ndarray:
    """(N, 2) 1-based source positions: windowed centroids when the OBJCAT has them."""
    xcol, ycol = ("XWIN_IMAGE", "YWIN_IMAGE") if "XWIN_IMAGE" in cat.colnames else ("X_IMAGE",
                                                                                   "Y_IMAGE")
    return np.column_stack([np.asarray(cat[xcol], float), np.asarray(cat[ycol], float)])


def _offsets_fit(ref, frame):
    """The pixel transform input -> reference from the telescope offsets, or None.

    As DRAGONS' ``_create_wcs_from_offsets``: shift by the difference of
    ``detector_x_offset``/``detector_y_offset`` and rotate by the PA
    difference about the reference's CRPIX.
    """
    values = []
    for f in (frame, ref):
        xoff, yoff = f.descriptor("detector_x_offset"), f.descriptor("detector_y_offset")
        if xoff is None or yoff is None or "PA" not in f.phu:
            return None
        values.append((xoff, yoff, float(f.phu["PA"])))
    (xin, yin, pa_in), (xref, yref, pa_ref) = values
    centre = np.array([float(ref.exts[0].header["CRPIX1"]), float(ref.exts[0].header["CRPIX2"])])
    angle = np.radians(pa_ref - pa_in)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    # p_ref = R (p_in - off_in - c) + off_ref + c
    shift = -rot @ (np.array([xin, yin]) + centre) + np.array([xref, yref]) + centre
    return AffineFit(rot, shift)


@primitive(
    Param("method", str, "sources", "Alignment method.", choices=("sources", "offsets")),
    Param("fallback", str, "offsets", "Method used when the sources do not match well enough.",
          choices=("offsets",), optional=True),
    Param("first_pass", float, 5.0, "Search radius of the initial offset search (arcsec).",
          min=0.0),
    Param("match_radius", float, 0.5, "Matching radius of the refined fit (arcsec).", min=0.0),
    Param("min_sources", int, 3, "Minimum number of matched sources for a fit.", min=1),
    Param("cull_sources", bool, False, "Use only star-like, unflagged sources?"),
    Param("rotate", bool, False, "Fit a rotation as well as a shift?"),
    Param("scale", bool, False, "Fit a scale factor as well as a shift?"),
    suffix="_wcsCorrected",
)
def adjustWCSToReference(frames: list[Frame], ctx: StepContext, *, method: str,
                         fallback: str | None, first_pass: float, match_radius: float,
                         min_sources: int, cull_sources: bool, rotate: bool,
                         scale: bool) -> list[Frame]:
    """Correct each image's WCS so that its sources land on the first image's.

    Every input must have a single extension (run mosaicDetectors first).
    The first image is the reference and is returned unchanged.  OBJCAT
    X_WORLD/Y_WORLD are recomputed with the corrected WCS.
    """
    if len(frames) < 2:
        ctx.log.warning("No correction will be performed, since at least two input images are "
                        "required for adjustWCSToReference")
        return [f.copy() for f in frames]
    multi = [f.filename for f in frames if len(f) != 1]
    if multi:
        raise GmosError("adjustWCSToReference needs single-extension images (run "
                        "mosaicDetectors first); not so: " + ", ".join(multi))
    # each input's WCS, made once (~5 ms each from a header)
    wcses = [extension_wcs(f.exts[0].header) for f in frames]
    for f, wcs in zip(frames, wcses):
        if wcs is None:
            raise GmosError(f"{f.filename} has no celestial WCS; cannot align it")
    ref_ext = frames[0].exts[0]
    ref_cat = _culled(ref_ext.objcat) if cull_sources else ref_ext.objcat
    outputs = [_header_copy(frames[0])]
    ctx.log.info("Reference image: %s", frames[0].filename)
    for n, frame in enumerate(frames[1:], start=1):
        out = _header_copy(frame)
        fit, used = None, method
        if method == "sources":
            cat = frame.exts[0].objcat
            fit = _sources_fit(wcses[0], ref_cat, wcses[n], _culled(cat) if cull_sources else cat,
                               first_pass, match_radius, rotate, scale)
            nmatch = 0 if fit is None else fit.nmatched
            if nmatch < min_sources:
                ctx.log.warning("%s: only %d source(s) matched the reference (min_sources=%d); "
                                "%s", frame.filename, nmatch, min_sources,
                                "using the telescope offsets" if fallback else
                                "WCS left unchanged")
                fit, used = None, fallback
        header = out.exts[0].header
        pixscale = _pixel_scale_arcsec(wcses[n])
        if used == "sources":
            apply_affine_to_header(header, fit)
            ctx.log.info("%s: %s sources matched; shift (%+.3f, %+.3f) pix = (%+.3f\", %+.3f\"), "
                         "rotation %+.4f deg, scale %.5f, rms %.3f\"", frame.filename, fit.nmatched,
                         fit.shift[0], fit.shift[1], fit.shift[0] * pixscale,
                         fit.shift[1] * pixscale, fit.rotation_deg, fit.scale, fit.rms * pixscale)
        elif used == "offsets":
            fit = _offsets_fit(frames[0], frame)
            if fit is None:
                ctx.log.warning("%s: cannot obtain the offsets (POFFSET, QOFFSET, PA) from the "
                                "headers; WCS left unchanged", frame.filename)
            else:
                apply_affine_to_header(header, fit, base_header=frames[0].exts[0].header)
                ctx.log.info("%s: WCS set from the reference and the telescope offsets (shift "
                             "(%+.2f, %+.2f) pix, rotation %+.3f deg)", frame.filename,
                             fit.shift[0], fit.shift[1], fit.rotation_deg)
        if out.exts[0].objcat is not None:
            add_world_columns(out.exts[0].objcat, header)
        outputs.append(out)
        ctx.progress(n / (len(frames) - 1), f"adjustWCSToReference {frame.filename}")
    return outputs


def _header_copy(frame: Frame) -> Frame:
    """A copy with its own headers, tables and OBJCAT sharing the (unchanged) pixel planes."""
    new = light_copy(frame)
    for ext in new.exts:
        ext.objcat = None if ext.objcat is None else ext.objcat.copy()
    return new


def _culled(cat):
    """The unflagged, star-like rows of an OBJCAT (FWHM within 50% of the median)."""
    if cat is None or len(cat) == 0:
        return cat
    good = np.asarray(cat["FLAGS"]) == 0
    fwhm = np.asarray(cat["FWHM_IMAGE"], float)
    if good.sum() >= 3:
        median = np.nanmedian(fwhm[good])
        good &= np.abs(fwhm - median) < 0.5 * median
    return cat[good]


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (adjustWCSToReference,)
