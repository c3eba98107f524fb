"""What the sky puts on the detector: a seeded star field, the PSF, cosmic rays.

Stars are drawn with a Moffat profile integrated over pixels (oversampled
stamps, truncated where the profile falls below a fraction of an electron);
fluxes are in electrons for a 10 s exposure.
"""
from __future__ import annotations

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

__all__ = ["PSF_FWHM_ARCSEC", "PSF_BETA", "star_catalogue", "render_stars", "moffat_alpha",
           "cosmic_rays", "cosmic_ray_samples", "tangent_to_sky"]

#: Seeing FWHM of the simulated science frames, arcsec.
PSF_FWHM_ARCSEC = 0.70
#: Moffat beta of the simulated PSF.
PSF_BETA = 2.8
#: Number of stars in the field.
_N_STARS = 450
#: Faintest star flux in electrons (10 s).
_FLUX_MIN = 1500.0
#: Brightest star flux in electrons (10 s).
_FLUX_MAX = 4.0e7
#: Slope of the cumulative counts, N(>F) ~ F**-_LF_SLOPE.
_LF_SLOPE = 0.5
#: Radius (arcsec) around the base pointing within which stars are drawn.
_FIELD_RADIUS_ARCSEC = 200.0
#: Surface brightness (e-/pixel) below which the PSF wings are truncated.
_WING_LIMIT_E = 0.3
#: Largest stamp half-size in binned pixels.
_MAX_HALF = 96
#: Largest number of PSF samples evaluated at once (memory bound).
_BATCH_SAMPLES = 2_000_000


def tangent_to_sky(ra0: float, dec0: float, xi_arcsec, eta_arcsec):
    """Convert tangent-plane offsets (East, North; arcsec) about (ra0, dec0) to RA/Dec."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra0, dec0]
    wcs.wcs.crpix = [1.0, 1.0]  # FITS pixel 1 = 0-based pixel 0 = the offset origin
    wcs.wcs.cdelt = [1.0 / 3600.0, 1.0 / 3600.0]
    return wcs.all_pix2world(np.asarray(xi_arcsec, float), np.asarray(eta_arcsec, float), 0)


def star_catalogue(seed: int, ra0: float, dec0: float) -> Table:
    """The seeded star field around (ra0, dec0).

    Returns
    -------
    astropy.table.Table
        Columns ``id``, ``ra``, ``dec`` (degrees) and ``flux_e`` (total
        electrons in a 10 s exposure, before the flat-field response).
    """
    rng = np.random.default_rng([int(seed), 505])
    radius = _FIELD_RADIUS_ARCSEC * np.sqrt(rng.uniform(0, 1, _N_STARS))
    angle = rng.uniform(0, 2 * np.pi, _N_STARS)
    ra, dec = tangent_to_sky(ra0, dec0, radius * np.cos(angle), radius * np.sin(angle))
    u = rng.uniform((_FLUX_MAX / _FLUX_MIN) ** -_LF_SLOPE, 1.0, _N_STARS)
    flux = _FLUX_MIN * u ** (-1.0 / _LF_SLOPE)
    return Table({"id": np.arange(1, _N_STARS + 1), "ra": ra, "dec": dec, "flux_e": flux})


def moffat_alpha(fwhm_pix: float, beta: float = PSF_BETA) -> float:
    """Moffat core width alpha for a FWHM (same units)."""
    return fwhm_pix / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _half_size(flux, alpha, beta):
    peak = flux * (beta - 1.0) / (np.pi * alpha ** 2)
    reach = alpha * np.maximum(peak / _WING_LIMIT_E, 1.0) ** (1.0 / (2.0 * beta))
    half = np.clip(np.ceil(np.maximum(reach, 3.0 * alpha)), 4, _MAX_HALF).astype(int)
    # round up to a few sizes so that stars can be rendered in batches
    sizes = np.array([4, 6, 8, 12, 16, 24, 32, 48, 64, 96])
    return sizes[np.searchsorted(sizes, half)]


def _moffat(dx, dy, alpha, beta):
    norm = (beta - 1.0) / (np.pi * alpha ** 2)
    return norm * (1.0 + (dy[:, :, None] ** 2 + dx[:, None, :] ** 2) / alpha ** 2) ** (-beta)


def _stamps(fx, fy, size, alpha, beta, oversample, core):
    """Unit-flux stamps (n, 2*size+1, 2*size+1) for sub-pixel offsets fx, fy.

    Pixel-centre values in the wings; within ``core`` pixels of the centre
    the profile is integrated over each pixel by oversampling.
    """
    offsets = np.arange(-size, size + 1, dtype=np.float32)
    stamps = _moffat(offsets[None, :] - fx[:, None], offsets[None, :] - fy[:, None], alpha, beta)
    core = min(core, size)
    sub = (np.arange(oversample, dtype=np.float32) + 0.5) / oversample - 0.5
    grid = (np.arange(-core, core + 1, dtype=np.float32)[:, None] + sub[None, :]).ravel()
    fine = _moffat(grid[None, :] - fx[:, None], grid[None, :] - fy[:, None], alpha, beta)
    side = 2 * core + 1
    fine = fine.reshape(len(fx), side, oversample, side, oversample).mean(axis=(2, 4))
    stamps[:, size - core:size + core + 1, size - core:size + core + 1] = fine
    return stamps


def render_stars(image: np.ndarray, x, y, flux, fwhm_pix: float, beta: float = PSF_BETA) -> None:
    """Add Moffat stars to ``image`` in place, integrating over pixels.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 image (electrons); pixel ``(row j, column i)`` has its
        centre at ``(x=i, y=j)``.
    x, y : array_like
        Star centres in the image's pixel coordinates.
    flux : array_like
        Total flux of each star (sum over the infinite plane); the stamps
        are truncated where the profile falls below 0.3 e-.
    fwhm_pix : float
        PSF FWHM in pixels of ``image``.
    beta : float
        Moffat beta.
    """
    x, y, flux = (np.atleast_1d(np.asarray(v, float)) for v in (x, y, flux))
    if x.size == 0:
        return
    alpha = np.float32(moffat_alpha(fwhm_pix, beta))
    oversample = int(max(3, np.ceil(12.0 / fwhm_pix)))
    core = int(np.ceil(1.5 * fwhm_pix)) + 1
    half = _half_size(flux, alpha, beta)
    ny, nx = image.shape
    xc, yc = np.rint(x).astype(int), np.rint(y).astype(int)
    fx, fy = (x - xc).astype(np.float32), (y - yc).astype(np.float32)
    for size in np.unique(half):
        chosen = np.nonzero(half == size)[0]
        side = 2 * size + 1
        per_star = side ** 2 + ((2 * min(core, size) + 1) * oversample) ** 2
        per_batch = max(1, _BATCH_SAMPLES // per_star)
        for start in range(0, chosen.size, per_batch):
            batch = chosen[start:start + per_batch]
            stamps = _stamps(fx[batch], fy[batch], size, alpha, np.float32(beta), oversample, core)
            stamps *= flux[batch].astype(np.float32)[:, None, None]
            for stamp, cx, cy in zip(stamps, xc[batch], yc[batch]):
                x0, y0 = cx - size, cy - size
                ix0, iy0 = max(x0, 0), max(y0, 0)
                ix1, iy1 = min(x0 + side, nx), min(y0 + side, ny)
                if ix1 <= ix0 or iy1 <= iy0:
                    continue
                image[iy0:iy1, ix0:ix1] += stamp[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]


def cosmic_rays(rng: np.random.Generator, exptime: float) -> Table:
    """Seeded cosmic-ray tracks over the three CCDs.

    Each event is a straight track (most are short: length exponentially
    distributed, mean 4 unbinned pixels) depositing a log-normally
    distributed charge.

    Returns
    -------
    astropy.table.Table
        One row per event: ``ccd``, ``x``, ``y`` (unbinned CCD coordinates of
        the track start), ``length``, ``angle`` (radians), ``electrons``.
    """
    count = rng.poisson(15.0 * (exptime + 10.0))
    return Table({
        "ccd": rng.integers(0, 3, count),
        "x": rng.uniform(0, 2048, count), "y": rng.uniform(0, 4224, count),
        "length": rng.exponential(4.0, count), "angle": rng.uniform(0, np.pi, count),
        "electrons": rng.lognormal(np.log(2500.0), 0.6, count),
    })


def cosmic_ray_samples(events: Table, step: float = 0.25):
    """Points along each track carrying equal shares of its charge.

    Returns
    -------
    ccd, x, y, electrons : numpy.ndarray
        One entry per sample point (unbinned CCD coordinates).
    """
    npts = np.maximum(1, np.ceil(np.asarray(events["length"]) / step).astype(int))
    owner = np.repeat(np.arange(len(events)), npts)
    along = (np.arange(owner.size) - np.repeat(np.cumsum(npts) - npts, npts)) * step
    angle = np.asarray(events["angle"])[owner]
    x = np.asarray(events["x"])[owner] + along * np.cos(angle)
    y = np.asarray(events["y"])[owner] + along * np.sin(angle)
    electrons = np.asarray(events["electrons"])[owner] / npts[owner]
    return np.asarray(events["ccd"])[owner], x, y, electrons
