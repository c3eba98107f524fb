"""Simulate the raw files of the DRAGONS GMOS imaging tutorial, with ground truth.

:func:`make_tutorial_dataset` writes biases, twilight flats and dithered
science frames as the Gemini archive delivers them (PHU + one uint16
extension with overscan per amplifier: 12 for Hamamatsu, 6 for e2vDD, 3 for
EEV), plus ``truth/`` (see :mod:`gmoswidgets.data.truth`), for GMOS-N or
GMOS-S and each of their detector sets (:mod:`gmoswidgets.data.instrument`).

Signal chain, per amplifier, in electrons then ADU::

    lambda = response * (sky + stars + fringe)          # e-, expectation
    e      = lambda + Poisson noise + read noise + cosmic rays
    ADU    = e / gain + bias level + frame offset + row offset
             + bottom-row ramp + bias structure            # data pixels
    ADU    = bias level + frame offset + row offset + ramp + read noise   # overscan
             + a trail of the row's last data pixel in the first 4 columns
    raw    = clip(round(ADU), 0, saturation) as uint16

``saturation`` is the amplifier's raw saturation level as DRAGONS computes
it (well depth x binning / gain, capped at the 16-bit limit; rounded up so
that DRAGONS' ``data >= SATLEVEL`` test catches the clipped pixels).  GMOS
has no separate non-linear regime in DRAGONS (non-linear level = saturation
level), so the response is linear up to it.  Light reaches only the pixels
DRAGONS' illumination mask calls lit (:mod:`gmoswidgets.data.illumination`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from ..errors import ParameterError
from . import headers as hdrs
from .detector import CCD_QE, FRINGE_FRACTION, PTP_RMS, VIGNETTING_RADIUS_ARCSEC, DetectorModel
from .illumination import mask_source
from .instrument import Configuration, check_dates, configuration
from .layout import ROI_NAMES, AmpLayout, amp_layouts, mosaic_reference, roi_keywords
from .sky import (PSF_BETA, PSF_FWHM_ARCSEC, cosmic_ray_samples, cosmic_rays, render_stars,
                  star_catalogue, tangent_to_sky)
from .truth import CONVENTIONS, FrameTruth, Truth, load_truth, save_truth

__all__ = ["TutorialDataset", "make_tutorial_dataset", "SKY_RATE", "FLAT_LEVELS_E", "OVERSCAN_TRAIL"]

#: Sky surface brightness in e-/s/arcsec^2 at unit response, per filter.
SKY_RATE = {"i": 1200.0, "z": 2100.0}
#: Twilight level per binned pixel (e-) of the five flats at unit response.
#: Twilight fades while the exposure time is cut from 40 s to 16 s, so the
#: flats stay at ~20-28k ADU whatever the binning.
FLAT_LEVELS_E = (45000.0, 42000.0, 39000.0, 36000.0, 33000.0)
#: Twilight field pointing (RA, Dec).
_TWILIGHT_POINTING = (201.5, 19.8)
#: Rows of per-row bias jitter (ADU rms) and frame-to-frame bias drift (ADU rms).
_ROW_JITTER_ADU = 0.6
_FRAME_DRIFT_ADU = 1.5
#: Below this expectation (e-) photon noise is drawn from a Poisson law, above
#: it from its Gaussian limit.
_POISSON_LIMIT = 30.0
#: Expected signal (e-) below which a pixel is treated as dark.
_DARK_LIMIT = 1e-3
#: Fraction of the last data pixel's charge found in the first overscan columns
#: (the reason DRAGONS ignores ``nbiascontam`` = 4 columns next to the data).
OVERSCAN_TRAIL = (2e-3, 5e-4, 1e-4, 2e-5)
#: Margin (binned pixels) around an amplifier within which stars are rendered.
_STAR_MARGIN = 100


@dataclass
class TutorialDataset:
    """A simulated tutorial data set on disk.

    Attributes
    ----------
    directory : pathlib.Path
    bias, flat, science : list of pathlib.Path
        The files of each group, sorted by name.
    truth : Truth
        The ground truth (as :func:`load_truth` reads it back).
    """

    directory: Path
    bias: list
    flat: list
    science: list
    truth: Truth

    @property
    def files(self) -> list:
        """Every raw file, sorted by name."""
        return sorted(self.bias + self.flat + self.science)


@dataclass
class _Amp:
    layout: AmpLayout
    gain: float
    read_noise: float
    bias_level: float
    saturation: float
    structure: np.ndarray
    ramp: np.ndarray
    response: np.ndarray
    fringe: np.ndarray | None


def _frame_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(name[1:9]), int(name[10:])])


def _prepare_amps(config: Configuration, layouts, model: DetectorModel, fringe: bool) -> list:
    amps = []
    for layout in layouts:
        name = layout.ampname
        amps.append(_Amp(layout, config.gains[name], config.read_noises[name], config.bias_levels[name],
                         config.saturation(name, layout.xbin), model.bias_structure(layout),
                         model.bottom_ramp(layout), model.response(layout),
                         model.fringe_pattern(layout) if fringe else None))
    return amps


def _photon_and_read_noise(rng, expected: np.ndarray | None, read_noise: float, shape) -> np.ndarray:
    """Electrons read out: photon noise plus read noise.

    Photon noise is Poisson below :data:`_POISSON_LIMIT` e- and its
    Gaussian limit above; ``expected=None`` means no light (a bias).
    """
    out = rng.standard_normal(shape, dtype=np.float32)
    if expected is None:
        out *= np.float32(read_noise)
        return out
    faint = (expected > _DARK_LIMIT) & (expected < _POISSON_LIMIT)
    poisson = rng.poisson(expected[faint]).astype(np.float32) + np.float32(read_noise) * out[faint]
    out *= np.sqrt(expected + np.float32(read_noise ** 2))
    out += expected
    out[faint] = poisson
    return out


def _star_positions(header: fits.Header, stars, layout: AmpLayout):
    """Stars near an amplifier, in data-section coordinates."""
    x, y = WCS(header).all_world2pix(stars["ra"], stars["dec"], 0)
    x = x - layout.datasec.x1
    y = y - layout.datasec.y1
    ny, nx = layout.datasec.shape
    near = ((x > -_STAR_MARGIN) & (x < nx + _STAR_MARGIN)
            & (y > -_STAR_MARGIN) & (y < ny + _STAR_MARGIN))
    return np.nonzero(near)[0], x[near], y[near]


def _deposit_cosmic_rays(samples, amp: _Amp, electrons_image: np.ndarray) -> np.ndarray:
    """Add the cosmic-ray charge landing on an amplifier; return rows (x, y, e-) in array coords."""
    ccd, x, y, charge = samples
    layout = amp.layout
    sec = layout.ccdsec
    on = (ccd == layout.ccd) & (x >= sec.x1) & (x < sec.x2) & (y >= sec.y1) & (y < sec.y2)
    if not on.any():
        return np.zeros((0, 3))
    ix = ((x[on] - sec.x1) // layout.xbin).astype(int)
    iy = ((y[on] - sec.y1) // layout.ybin).astype(int)
    ny, nx = electrons_image.shape
    flat_index = iy * nx + ix
    hit, total = np.unique(flat_index, return_inverse=True)
    deposit = np.bincount(total, weights=charge[on])
    electrons_image.ravel()[hit] += deposit.astype(np.float32)
    return np.column_stack([hit % nx + layout.datasec.x1, hit // nx + layout.datasec.y1, deposit])


def _raw_extension(rng, amp: _Amp, electrons: np.ndarray, bias_offset: float) -> tuple:
    """Digitise one amplifier: returns (uint16 array, pre-clipping ADU of the data)."""
    layout = amp.layout
    ny = layout.shape[0]
    row_level = (amp.bias_level + bias_offset + amp.ramp
                 + rng.normal(0.0, _ROW_JITTER_ADU, ny).astype(np.float32))[:, None]
    adu = np.empty(layout.shape, dtype=np.float32)
    data = electrons / np.float32(amp.gain) + amp.structure + row_level
    adu[layout.datasec.slices] = data
    overscan = row_level + np.float32(amp.read_noise / amp.gain) * rng.standard_normal(
        layout.biassec.shape, dtype=np.float32)
    # charge left behind by the last data pixel of each row trails into the
    # first overscan columns read after it (the ones next to the data)
    right = layout.biassec.x1 >= layout.datasec.x2
    edge = (electrons[:, -1] if right else electrons[:, 0]) / np.float32(amp.gain)
    trail = np.asarray(OVERSCAN_TRAIL, np.float32)
    if right:
        overscan[:, :trail.size] += edge[:, None] * trail[None, :]
    else:
        overscan[:, -trail.size:] += edge[:, None] * trail[None, ::-1]
    adu[layout.biassec.slices] = overscan
    raw = np.clip(np.rint(adu), 0, np.ceil(amp.saturation)).astype(np.uint16)
    return raw, data


def _flag_saturated(saturated, index, x, y, adu, level) -> None:
    """Flag stars whose peak (3x3 around the centre, before clipping) reaches saturation."""
    inside = (x >= 1) & (x < adu.shape[1] - 1.5) & (y >= 1) & (y < adu.shape[0] - 1.5)
    if not inside.any():
        return
    ix, iy = np.rint(x[inside]).astype(int), np.rint(y[inside]).astype(int)
    peak = np.max([adu[iy + dy, ix + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    saturated[index[inside]] |= peak >= level


def _pointings(plan) -> None:
    for frame in plan:
        if frame.kind == "science":
            ra, dec = tangent_to_sky(*hdrs.BASE_POINTING, *hdrs.offset_to_sky(*frame.offset))
            frame.pointing = (float(ra), float(dec))
        elif frame.kind == "flat":
            frame.pointing = _TWILIGHT_POINTING
        else:
            frame.pointing = hdrs.BASE_POINTING


def _validate(binning, filter_name, roi):
    if binning not in (1, 2, 4):
        raise ParameterError(f"binning must be 1, 2 or 4, not {binning!r}")
    if filter_name not in hdrs.FILTERS:
        raise ParameterError(f"filter_name must be one of {', '.join(hdrs.FILTERS)}, not {filter_name!r}")
    if roi not in ROI_NAMES:
        raise ParameterError(f"unknown ROI {roi!r}; choose one of {', '.join(ROI_NAMES)}")


def make_tutorial_dataset(directory, *, instrument: str = "GMOS-N", detector: str = "hamamatsu",
                          binning: int = 2, roi: str = "Full Frame", seed: int = 1, filter_name: str = "i",
                          fringe: bool | None = None, groups=("bias", "flat", "science"), date=None,
                          read_speed: str = "slow", gain_setting: str = "low") -> TutorialDataset:
    """Write the tutorial's raw files (and their ground truth) into ``directory``.

    Parameters
    ----------
    directory : str or pathlib.Path
        Created if needed.  Gets the ``.fits`` files and a ``truth/`` folder.
    instrument : str
        ``'GMOS-N'`` (the tutorial's) or ``'GMOS-S'``.
    detector : str
        ``'hamamatsu'`` (the tutorial's), ``'e2vdd'`` or ``'eev'``.
    binning : int
        1, 2 (the tutorial's) or 4, along both axes.
    seed : int
        Everything random (stars, noise, patterns) follows from it.
    filter_name : str
        ``'i'`` (the tutorial) or ``'z'``.
    fringe : bool, optional
        Add a fringe pattern to the science frames; default: where DRAGONS
        fringe-corrects the filter on the detector (z everywhere, i on EEV
        and e2vDD: :attr:`Configuration.fringe_filters`).
    roi : str
        ``'Full Frame'``, ``'CCD2'``, ``'Central Spectrum'`` or ``'Central Stamp'``.
    groups : iterable of str
        Subset of ``('bias', 'flat', 'science')`` to write.
    date : datetime.date or str, optional
        Science night (``YYYY-MM-DD``); the other frames keep the tutorial's
        distance to it.  Default: the configuration's
        (:func:`gmoswidgets.data.instrument.default_date`), 2017-06-14 for
        GMOS-N Hamamatsu.  It picks the detector set and DRAGONS' dated
        gain, read-noise and bias tables.
    read_speed, gain_setting : str
        ``'slow'``/``'fast'`` read and ``'low'``/``'high'`` gain.

    Returns
    -------
    TutorialDataset

    Raises
    ------
    ParameterError
        For an unknown binning, filter, ROI, group or configuration, or a
        configuration DRAGONS cannot calibrate on that date.
    """
    _validate(binning, filter_name, roi)
    config = configuration(instrument, detector, date=date, read_speed=read_speed,
                           gain_setting=gain_setting)
    groups = tuple(groups)
    plan = hdrs.tutorial_plan(config, groups, binning)
    check_dates(config, {frame.start.date() for frame in plan})
    _pointings(plan)
    if fringe is None:
        fringe = filter_name in config.fringe_filters
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sim = _Simulator(config, seed, binning, roi, filter_name, bool(fringe))
    arrays, frames, written = {}, [], {"bias": [], "flat": [], "science": []}
    for frame in plan:
        hdulist, truth, cr_rows = sim.exposure(frame)
        path = directory / f"{frame.name}.fits"
        hdulist.writeto(path, overwrite=True, output_verify="ignore")
        written[frame.kind].append(path)
        frames.append(truth)
        if cr_rows is not None:
            arrays[f"cr_{frame.name}"] = cr_rows
    arrays.update(sim.fixed_patterns())
    sim.stars["saturated"] = sim.saturated
    save_truth(directory, _truth_meta(sim, groups, frames), arrays)
    return TutorialDataset(directory, sorted(written["bias"]), sorted(written["flat"]),
                           sorted(written["science"]), load_truth(directory))


class _Simulator:
    """The fixed parts of a data set (amplifiers, patterns, stars) and one exposure at a time."""

    def __init__(self, config, seed, binning, roi, filter_name, fringe):
        self.config = config
        self.seed, self.binning, self.roi = seed, binning, roi
        self.filter_name, self.fringe = filter_name, fringe
        self.model = DetectorModel(seed, config, binning)
        self.amps = _prepare_amps(config, amp_layouts(config, binning, roi), self.model, fringe)
        self.roi_keywords = roi_keywords(config, roi, binning)
        self.stars = star_catalogue(seed, *hdrs.BASE_POINTING)
        self.saturated = np.zeros(len(self.stars), bool)
        self.pixel_area = (config.pixel_scale * binning) ** 2
        self.fwhm_pix = PSF_FWHM_ARCSEC / (config.pixel_scale * binning)

    def fixed_patterns(self) -> dict:
        """Per-amplifier truth images, keyed as :class:`Truth` reads them."""
        arrays = {}
        for amp in self.amps:
            arrays[f"bias_structure_{amp.layout.index}"] = amp.structure
            arrays[f"response_{amp.layout.index}"] = amp.response
            arrays[f"illuminated_{amp.layout.index}"] = self.model.lit(amp.layout)
            if amp.fringe is not None:
                arrays[f"fringe_{amp.layout.index}"] = amp.fringe
        return arrays

    def _levels(self, rng, frame):
        """Sky (or twilight) and fringe levels in e- per binned pixel at unit response."""
        if frame.kind == "science":
            sky = SKY_RATE[self.filter_name] * frame.exptime * self.pixel_area * float(rng.normal(1.0, 0.03))
            return sky, (FRINGE_FRACTION[self.filter_name] * sky if self.fringe else 0.0)
        if frame.kind == "flat":
            return FLAT_LEVELS_E[(frame.dataset - 1) % len(FLAT_LEVELS_E)], 0.0
        return 0.0, 0.0

    def _expected(self, amp, frame, header, sky_e, fringe_e):
        """Expected electrons on the data pixels, and the stars near this amplifier."""
        scene = np.full(amp.layout.datasec.shape, sky_e, np.float32)
        near = None
        if frame.kind == "science":
            near = _star_positions(header, self.stars, amp.layout)
            index, x, y = near
            render_stars(scene, x, y, np.asarray(self.stars["flux_e"])[index], self.fwhm_pix)
        if fringe_e:
            scene += np.float32(fringe_e) * amp.fringe
        scene *= amp.response
        return scene, near

    def exposure(self, frame):
        """Simulate one file: returns (HDUList, FrameTruth, cosmic-ray rows or None)."""
        rng = _frame_rng(self.seed, frame.name)
        sky_e, fringe_e = self._levels(rng, frame)
        bias_offset = float(rng.normal(0.0, _FRAME_DRIFT_ADU))
        elevation = 68.3 - 2.0 * frame.dataset
        phu = hdrs.primary_header(self.config, frame, self.filter_name, self.roi_keywords,
                                  elevation=elevation,
                                  azimuth=121.0 + 1.5 * frame.dataset,
                                  airmass=1.0 / np.sin(np.deg2rad(elevation)))
        phu["NEXTEND"] = (len(self.amps), "Number of extensions")
        crs = cosmic_ray_samples(cosmic_rays(rng, frame.exptime)) if frame.kind == "science" else None
        hdus, wcs_truth, cr_rows = [fits.PrimaryHDU(header=phu)], [], []
        for amp in self.amps:
            header = hdrs.extension_header(self.config, amp.layout, frame, amp.gain, amp.read_noise)
            wcs_truth.append({"crpix": [header["CRPIX1"], header["CRPIX2"]],
                              "crval": [header["CRVAL1"], header["CRVAL2"]],
                              "cd": [[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]]})
            expected, near = (None, None) if frame.kind == "bias" else self._expected(
                amp, frame, header, sky_e, fringe_e)
            electrons = _photon_and_read_noise(rng, expected, amp.read_noise, amp.layout.datasec.shape)
            if crs is not None:
                rows = _deposit_cosmic_rays(crs, amp, electrons)
                cr_rows.append(np.column_stack([np.full(len(rows), amp.layout.index), rows]))
            raw, adu = _raw_extension(rng, amp, electrons, bias_offset)
            if near is not None:
                _flag_saturated(self.saturated, *near, adu, amp.saturation)
            hdus.append(fits.ImageHDU(data=raw, header=header))
        truth = FrameTruth(frame.name, frame.kind, frame.exptime, tuple(frame.offset), tuple(frame.pointing),
                           float(sky_e), float(fringe_e), bias_offset, wcs_truth)
        return fits.HDUList(hdus), truth, (np.vstack(cr_rows) if cr_rows else None)


def _lit_radius(sim: _Simulator) -> float:
    """Radius (unbinned pixels) of the largest circle about CCD2's centre holding only lit pixels.

    Chip gaps are not counted as unlit; amplifiers outside the readout
    window are not looked at.
    """
    centre = mosaic_reference(sim.config)
    radius = np.inf
    for amp in sim.amps:
        dark = ~sim.model.lit(amp.layout)
        if dark.any():
            xm, ym = sim.model.mosaic_grid(amp.layout)
            radius = min(radius, float(np.hypot(xm[dark] - centre[0], ym[dark] - centre[1]).min()))
    return radius if np.isfinite(radius) else None


def _truth_meta(sim: _Simulator, groups, frames) -> dict:
    config = sim.config
    stars = sim.stars
    mask, mask_binning = mask_source(config, sim.binning)
    cx, cy = mosaic_reference(config)
    placements = {f"ccd{i + 1}": {"shift": list(shift), "rotation_deg": rot}
                  for i, (shift, rot) in enumerate(config.placements) if i != 1}
    return {
        "version": 2,
        "seed": int(sim.seed), "binning": int(sim.binning), "roi": sim.roi,
        "filter_name": sim.filter_name, "fringe": sim.fringe, "groups": list(groups),
        "configuration": config.describe(),
        "pixel_scale_arcsec": config.pixel_scale * sim.binning,
        "pixel_scale_unbinned_arcsec": config.pixel_scale,
        "psf": {"model": "Moffat", "fwhm_arcsec": PSF_FWHM_ARCSEC, "beta": PSF_BETA},
        "base_pointing": list(hdrs.BASE_POINTING),
        "wcs_model": {
            "reference": f"pointing (RA, DEC) on the centre of CCD2, unbinned ({cx}, {cy}) 0-based",
            "orientation": "PA=0: East left (-x), North up (+y); TAN projection, no distortion",
            **placements,
        },
        "illumination": {
            "mask": mask, "mask_binning": mask_binning,
            "rule": ("lit where DRAGONS' mask (chosen by DRAGONS' rule) is 0; a binning without a mask "
                     "uses the nearest finer one, a binned pixel being lit only if all its finer pixels are"),
            "vignetting": f"1 - 0.08 (r / {VIGNETTING_RADIUS_ARCSEC}\")^2 inside the lit field, r from CCD2's centre",
        },
        "illuminated_radius_unbinned": _lit_radius(sim),
        "ccd_qe": list(CCD_QE), "ptp_rms": PTP_RMS, "fringe_fraction": FRINGE_FRACTION[sim.filter_name],
        "sky_rate_e_per_s_arcsec2": SKY_RATE[sim.filter_name],
        "overscan_trail": list(OVERSCAN_TRAIL),
        "conventions": CONVENTIONS,
        "amps": [{"index": a.layout.index, "ampname": a.layout.ampname, "ccdname": a.layout.ccdname,
                  "gain": a.gain, "read_noise": a.read_noise, "bias_level": a.bias_level,
                  "saturation_adu": a.saturation,
                  "datasec": a.layout.datasec.to_string(), "biassec": a.layout.biassec.to_string(),
                  "ccdsec": a.layout.ccdsec.to_string(), "detsec": a.layout.detsec.to_string()}
                 for a in sim.amps],
        "bad_columns": [b.as_dict() for b in sim.model.bad_columns],
        "stars": {"id": [int(v) for v in stars["id"]], "ra": [float(v) for v in stars["ra"]],
                  "dec": [float(v) for v in stars["dec"]],
                  "flux_e": [float(v) for v in stars["flux_e"]],
                  "saturated": [bool(v) for v in stars["saturated"]]},
        "frames": [f.as_dict() for f in frames],
    }
