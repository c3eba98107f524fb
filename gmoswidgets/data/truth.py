"""Ground truth of a simulated data set, kept next to the data (not as FITS).

Layout: ``DIR/truth/truth.json`` (scalars, tables, per-frame facts) and
``DIR/truth/arrays.npz`` (per-amplifier images and cosmic-ray pixel lists).
No FITS file is written there: a non-GMOS FITS file in the data folder
would break ``dataselect ../playdata/*.fits``.

Coordinate conventions (also stored in ``truth.json`` under ``conventions``):

* per-amplifier images (:meth:`Truth.bias_structure`, :meth:`Truth.true_flat`,
  :meth:`Truth.fringe_pattern`) cover the extension's DATASEC, binned;
* pixel positions (:meth:`Truth.sky_to_pixel`, :meth:`Truth.cosmic_rays`)
  are 0-based array coordinates (x = column, y = row) of the *raw*
  extension, overscan included;
* fluxes and sky levels are electrons; the bias structure is ADU.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from ..errors import FileProblem
from .layout import Window

__all__ = ["Truth", "FrameTruth", "load_truth", "TRUTH_DIRNAME", "CONVENTIONS"]

TRUTH_DIRNAME = "truth"
_JSON = "truth.json"
_ARRAYS = "arrays.npz"

CONVENTIONS = {
    "images": "per-amplifier images cover the extension DATASEC, binned, numpy (row, column)",
    "pixels": "0-based array coordinates of the raw extension (x=column, y=row), overscan included",
    "true_flat": ("relative response = illumination x vignetting x CCD QE x pixel-to-pixel QE "
                  "x dead columns; 1 at the centre of CCD2 before pixel-to-pixel noise. "
                  "DRAGONS' normalizeFlat divides by the CCD2 mean instead, so compare shapes "
                  "or renormalise"),
    "sky_e": "sky per binned pixel in electrons for unit response (multiply by true_flat)",
    "flux_e": "total star flux in electrons in one 10 s science exposure, before the response",
    "bias_structure": "fixed ADU pattern added to the data pixels only (not the overscan)",
    "illuminated": "per-amplifier boolean image over the DATASEC: True where the sky reaches the pixel",
    "saturation_adu": ("raw level (ADU) at which an amplifier's data pixels clip, DRAGONS' saturation "
                       "level for the amplifier, binning, gain and date (rounded up)"),
    "bias_level": "mean raw level of the overscan is bias_level + bias_offset_adu of the frame",
    "offsets": ("p, q telescope offsets in arcsec (POFFSET, QOFFSET); stars move by (+p, +q) / pixel "
                "scale on the detector, as DRAGONS' detector_x/y_offset and offset alignment assume; "
                "at PA=0 the pointing moves East by p and South by q (RAOFFSET = p, DECOFFSE = -q)"),
}


@dataclass
class FrameTruth:
    """What went into one simulated file.

    Attributes
    ----------
    name : str
        File name without ``.fits``.
    kind : str
        ``'bias'``, ``'flat'`` or ``'science'``.
    exptime : float
        Seconds.
    offset : tuple of float
        (p, q) telescope offset in arcsec.
    pointing : tuple of float
        (RA, Dec) of the telescope in degrees, on the centre of CCD2.
    sky_e : float
        Sky (science) or twilight (flat) level per binned pixel for unit
        response, electrons; 0 for biases.
    fringe_e : float
        Fringe amplitude (electrons per unit pattern) for unit response.
    bias_offset_adu : float
        Frame-to-frame change of the bias level (ADU), all amplifiers.
    wcs : list of dict
        The header WCS of each extension (equal to the true one).
    """

    name: str
    kind: str
    exptime: float
    offset: tuple
    pointing: tuple
    sky_e: float
    fringe_e: float
    bias_offset_adu: float
    wcs: list

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"name": self.name, "kind": self.kind, "exptime": self.exptime,
                "offset": list(self.offset), "pointing": list(self.pointing),
                "sky_e": self.sky_e, "fringe_e": self.fringe_e,
                "bias_offset_adu": self.bias_offset_adu, "wcs": self.wcs}


class Truth:
    """The ground truth of a simulated data set.

    Attributes
    ----------
    directory : pathlib.Path
        The data directory.
    meta : dict
        Everything from ``truth.json``.
    seed, binning : int
    roi, filter_name : str
    fringe : bool
    pixel_scale : float
        Binned pixel scale, arcsec.
    psf_fwhm_arcsec, psf_beta : float
        The Moffat PSF of the science frames.
    stars : astropy.table.Table
        ``id``, ``ra``, ``dec``, ``flux_e``, ``saturated`` (saturated in at
        least one science frame).
    amps : astropy.table.Table
        Per extension: ``index``, ``ampname``, ``ccdname``, ``gain``,
        ``read_noise`` (e-), ``bias_level`` (ADU), ``saturation_adu``,
        ``datasec``, ``biassec``, ``ccdsec``, ``detsec``.
    configuration : dict
        Instrument, detector, date, DETID, DETTYPE, read mode, the DRAGONS
        tables used, CCD names.
    frames : dict of str -> FrameTruth
    bad_columns : list of dict
    """

    def __init__(self, directory, meta: dict, arrays):
        self.directory = Path(directory)
        self.meta = meta
        self._arrays = arrays
        self.seed = meta["seed"]
        self.binning = meta["binning"]
        self.roi = meta["roi"]
        self.filter_name = meta["filter_name"]
        self.fringe = meta["fringe"]
        self.pixel_scale = meta["pixel_scale_arcsec"]
        self.psf_fwhm_arcsec = meta["psf"]["fwhm_arcsec"]
        self.psf_beta = meta["psf"]["beta"]
        self.stars = Table(meta["stars"])
        self.amps = Table(rows=meta["amps"])
        self.frames = {f["name"]: FrameTruth(f["name"], f["kind"], f["exptime"], tuple(f["offset"]),
                                             tuple(f["pointing"]), f["sky_e"], f["fringe_e"],
                                             f["bias_offset_adu"], f["wcs"])
                       for f in meta["frames"]}
        self.bad_columns = meta["bad_columns"]
        self.configuration = meta["configuration"]

    def __repr__(self) -> str:
        kinds = [f.kind for f in self.frames.values()]
        config = self.configuration
        return (f"<Truth {self.directory}: {config['instrument']} {config['detector_name']} {config['date']}, "
                f"seed {self.seed}, {self.binning}x{self.binning}, {self.roi}, "
                f"filter {self.filter_name}, {kinds.count('bias')} bias / {kinds.count('flat')} flat / "
                f"{kinds.count('science')} science, {len(self.stars)} stars>")

    # -- per-amplifier images ---------------------------------------------------
    def _image(self, kind: str, amp_index: int):
        key = f"{kind}_{int(amp_index)}"
        if key not in self._arrays:
            raise KeyError(f"no {kind} stored for extension index {amp_index}")
        return self._arrays[key]

    def bias_structure(self, amp_index: int) -> np.ndarray:
        """Fixed bias structure (ADU) over the DATASEC of extension ``amp_index`` (0-based).

        What an overscan-corrected (``function='none'``) master bias
        converges to: the level, row jitter and bottom ramp are shared
        with the overscan and so removed by the overscan correction.
        """
        return self._image("bias_structure", amp_index)

    def true_flat(self, amp_index: int) -> np.ndarray:
        """True relative response over the DATASEC of extension ``amp_index`` (0-based).

        Normalised to 1 at the centre of CCD2 (before pixel-to-pixel
        noise); see ``CONVENTIONS['true_flat']``.
        """
        return self._image("response", amp_index)

    def illuminated(self, amp_index: int) -> np.ndarray:
        """Boolean map over the DATASEC of extension ``amp_index``: True where the sky reaches."""
        return self._image("illuminated", amp_index)

    def flat_normalisation(self) -> float:
        """The factor DRAGONS' GMOS ``normalizeFlat`` would divide the true flat by.

        The median response over CCD2 with a 5% border (at least 20 pixels)
        removed; ``None`` when the readout does not include CCD2.
        """
        values = []
        for index, name in enumerate(self.amps["ccdname"]):
            if name != self.configuration["ccd_names"][1]:
                continue
            response = self.true_flat(index)
            ny = response.shape[0]
            border = max(int(0.05 * ny), 20)
            values.append(response[border:ny - border])
        if not values:
            return None
        ccd2 = np.hstack(values)
        width = ccd2.shape[1]
        border = max(int(0.05 * width), 20)
        return float(np.median(ccd2[:, border:width - border]))

    def normalized_flat(self, amp_index: int) -> np.ndarray:
        """True flat divided by :meth:`flat_normalisation`: what ``normalizeFlat`` aims at."""
        return self.true_flat(amp_index) / np.float32(self.flat_normalisation())

    def fringe_pattern(self, amp_index: int) -> np.ndarray | None:
        """Fringe pattern (unit amplitude) over the DATASEC, or None without fringes."""
        if not self.fringe:
            return None
        return self._image("fringe", amp_index)

    def datasec(self, amp_index: int) -> Window:
        """The DATASEC of extension ``amp_index`` (0-based, half-open ``x1, x2, y1, y2``)."""
        return Window.from_string(self.amps["datasec"][amp_index])

    # -- per-frame facts ----------------------------------------------------------
    def frame(self, name: str) -> FrameTruth:
        """The :class:`FrameTruth` of file ``name`` (with or without ``.fits``)."""
        key = Path(str(name)).name.removesuffix(".fits")
        try:
            return self.frames[key]
        except KeyError:
            raise KeyError(f"{key} is not a file of this data set") from None

    def science_names(self) -> list:
        """Names of the science frames, sorted."""
        return sorted(n for n, f in self.frames.items() if f.kind == "science")

    def dither_offsets(self) -> Table:
        """Science pointings: ``name``, ``p``, ``q`` (arcsec), ``ra``, ``dec`` (deg)."""
        names = self.science_names()
        frames = [self.frames[n] for n in names]
        return Table({"name": names, "p": [f.offset[0] for f in frames],
                      "q": [f.offset[1] for f in frames],
                      "ra": [f.pointing[0] for f in frames], "dec": [f.pointing[1] for f in frames]})

    def cosmic_rays(self, name: str) -> Table:
        """Pixels hit by cosmic rays in a science frame.

        Returns
        -------
        astropy.table.Table
            ``ext`` (0-based extension index), ``x``, ``y`` (raw array
            coordinates), ``electrons`` deposited.
        """
        key = f"cr_{self.frame(name).name}"
        rows = self._arrays[key] if key in self._arrays else np.zeros((0, 4))
        return Table({"ext": rows[:, 0].astype(int), "x": rows[:, 1].astype(int),
                      "y": rows[:, 2].astype(int), "electrons": rows[:, 3]})

    def wcs(self, name: str, amp_index: int) -> WCS:
        """The (true = header) WCS of extension ``amp_index`` of a file."""
        params = self.frame(name).wcs[amp_index]
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crpix = params["crpix"]
        wcs.wcs.crval = params["crval"]
        wcs.wcs.cd = params["cd"]
        return wcs

    def sky_to_pixel(self, name: str, ra, dec) -> Table:
        """Where sky positions fall on a file's extensions.

        Parameters
        ----------
        name : str
            File name.
        ra, dec : array_like
            Degrees.

        Returns
        -------
        astropy.table.Table
            ``source`` (index into ``ra``), ``ext``, ``x``, ``y`` (raw
            array coordinates) for every position inside a DATASEC.
        """
        ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
        rows = {"source": [], "ext": [], "x": [], "y": []}
        for index in range(len(self.amps)):
            sec = self.datasec(index)
            x, y = self.wcs(name, index).all_world2pix(ra, dec, 0)
            inside = (x >= sec.x1 - 0.5) & (x < sec.x2 - 0.5) & (y >= sec.y1 - 0.5) & (y < sec.y2 - 0.5)
            for i in np.nonzero(inside)[0]:
                rows["source"].append(int(i))
                rows["ext"].append(index)
                rows["x"].append(float(x[i]))
                rows["y"].append(float(y[i]))
        return Table(rows, dtype=(int, int, float, float))


def save_truth(directory, meta: dict, arrays: dict) -> Path:
    """Write ``truth.json`` and ``arrays.npz`` under ``directory/truth``."""
    folder = Path(directory) / TRUTH_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / _JSON, "w") as fh:
        json.dump(meta, fh, indent=1)
    np.savez(folder / _ARRAYS, **arrays)
    return folder


def load_truth(directory) -> Truth:
    """Load the ground truth written by :func:`gmoswidgets.data.make_tutorial_dataset`.

    Parameters
    ----------
    directory : str or pathlib.Path
        The data directory (the one holding the FITS files).

    Returns
    -------
    Truth

    Raises
    ------
    FileProblem
        If the directory holds no simulator truth.
    """
    folder = Path(directory) / TRUTH_DIRNAME
    if not (folder / _JSON).exists():
        raise FileProblem(folder, "no simulated ground truth here (truth/truth.json is missing)")
    with open(folder / _JSON) as fh:
        meta = json.load(fh)
    return Truth(directory, meta, _LazyArrays(folder / _ARRAYS))


class _LazyArrays:
    """Read-only mapping over an ``.npz`` file that loads each array on first use."""

    def __init__(self, path: Path):
        self.path = path
        self._cache = {}
        with np.load(path) as npz:
            self._keys = frozenset(npz.files)

    def __contains__(self, key) -> bool:
        return key in self._keys

    def __getitem__(self, key) -> np.ndarray:
        if key not in self._cache:
            with np.load(self.path) as npz:
                self._cache[key] = npz[key]
        return self._cache[key]
