"""DQ through resampling, measured against the simulator's truth (issue 10, item 4).

Three rules for the DQ plane when ``mosaicDetectors`` and
``resampleToCommonFrame`` resample the data with ``poly3``:

* ``linear``: each flagged input pixel is spread over the bilinear (2x2)
  footprint; samples beyond the input's edges carry ``no_data`` (the rule
  before this measurement);
* ``dragons``: each bit plane goes through the data's own interpolant and
  is set where ``|interpolated| > dq_threshold`` (0.001); samples beyond
  the edges carry ``no_data`` (DRAGONS' ``cval``);
* ``poly3``: as ``dragons``, but samples beyond the edges carry no bit
  (the data there are copies of the edge pixels): ``resample_dq``'s rule.

One simulated tutorial is reduced once per rule (bias and flat shared; the
science with ``resampleToCommonFrame:write_outputs``), and every aligned
frame and the stack are compared with the truth: the sky level
(``sky_e`` x the flat's normalisation) plus the true stars rendered with the
simulator's PSF.  The data of the aligned frames are the same under both
rules (only DQ differs), so the pixels one rule keeps and the other flags
show directly what the flags protect against.

    python benchmarks/dq_resampling.py --instrument GMOS-N --detector eev --binning 4
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path

import numpy as np
from astropy.wcs import WCS
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

RULES = ("linear", "dragons", "poly3")
#: Residual categories of the aligned frames' sky pixels (distance in binned pixels from a
#: truly unlit / off-detector pixel of the raw frame, through the true WCS).
DISTANCE_BINS = ((0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (6, np.inf))


def _edge_samples_no_data(mask, amap, out_shape, threshold, no_data, out, interpolant):
    """:func:`resample_dq` with the samples beyond the input's edges carrying ``no_data``
    (DRAGONS' ``cval``; also the rule before this measurement)."""
    from gmoswidgets.numerics import interpolate
    pad = 3
    padded = np.pad(mask, pad, constant_values=no_data)
    moved = amap.then(interpolate.AffineMap.translation(pad, pad))
    bits = interpolate.resample_dq(padded, moved, out_shape, threshold, no_data, interpolant=interpolant)
    inside = interpolate.covered(amap, mask.shape, out_shape)
    target = np.full(out_shape, no_data, bits.dtype) if out is None else out
    np.copyto(target, bits, where=inside)
    return target


def _use_rule(rule: str) -> None:
    """Make mosaicDetectors and resampleToCommonFrame resample DQ with ``rule``."""
    from gmoswidgets.numerics import interpolate
    from gmoswidgets.primitives import mosaic, resample

    def resample_planes(data, variance, mask, amap, out_shape, interpolant="poly3", *,
                        threshold=interpolate.DQ_THRESHOLD, no_data=16, out=None):
        if rule == "poly3" or mask is None:
            return interpolate.resample_planes(data, variance, mask, amap, out_shape, interpolant,
                                               threshold=threshold, no_data=no_data, out=out)
        out = (None, None, None) if out is None else tuple(out)
        sci, var, _ = interpolate.resample_planes(data, variance, None, amap, out_shape,
                                                  interpolant, out=(out[0], out[1], None))
        bits = _edge_samples_no_data(mask, amap, out_shape, threshold, no_data, out[2],
                                     "linear" if rule == "linear" else "poly3")
        return sci, var, bits
    mosaic.resample_planes = resample_planes
    resample.resample_planes = resample_planes


def reduce_with_rules(base: Path, *, instrument, detector, binning, seed, date=None) -> dict:
    """Simulate once, reduce bias/flat once and the science once per rule; {rule: folder}."""
    from accuracy import needs_fringe_frame
    from gmoswidgets.caldb import CalibrationService, set_calservice
    from gmoswidgets.data import load_truth, make_tutorial_dataset
    from gmoswidgets.reduce import Reduce
    from gmoswidgets.select import expr_parser, select_data
    logging.getLogger("gmoswidgets").setLevel(logging.WARNING)
    raw = base / "raw"
    if not (raw / "truth").exists():
        make_tutorial_dataset(raw, instrument=instrument, detector=detector, binning=binning,
                              seed=seed, date=date)
    truth = load_truth(raw)
    files = sorted(str(p) for p in raw.glob("*.fits"))
    filt = truth.filter_name
    science = select_data(files, [], ["CAL"],
                          expr_parser(f'(observation_class=="science" and filter_name=="{filt}")'))
    calib = base / "calib"
    calib.mkdir(exist_ok=True)
    os.chdir(calib)
    cals = sorted(calib.glob("*_bias.fits")) + sorted(calib.glob("*_flat.fits"))
    if not cals:
        caldb = CalibrationService(database_dir=calib)
        caldb.init()
        set_calservice(caldb)
        for selection in (select_data(files, ["BIAS"], []),
                          select_data(files, ["FLAT"], [], expr_parser(f'filter_name=="{filt}"'))):
            red = Reduce(files=selection)
            red.runr()
            caldb.add_cal(red.output_filenames[0])
        if needs_fringe_frame(truth):
            red = Reduce(files=science, recipename="makeProcessedFringe")
            red.runr()
            caldb.add_cal(red.output_filenames[0])
        cals = sorted(calib.glob("*_bias.fits")) + sorted(calib.glob("*_flat.fits"))
    folders = {}
    for rule in RULES:
        folder = base / rule
        folder.mkdir(exist_ok=True)
        os.chdir(folder)
        if not list(folder.glob("*_stack.fits")):
            caldb = CalibrationService(database_dir=folder)
            caldb.init()
            set_calservice(caldb)
            for cal in list(cals) + sorted(calib.glob("*_fringe.fits")):
                caldb.add_cal(str(cal))
            _use_rule(rule)
            red = Reduce(files=science, uparms=[("resampleToCommonFrame:write_outputs", True)])
            red.runr()
        folders[rule] = folder
    return folders


def _ccd_distances(truth) -> dict:
    """Per extension: distance to the nearest unlit or off-CCD pixel, measured over its whole CCD."""
    out = {}
    for ccd in dict.fromkeys(truth.amps["ccdname"]):
        index = [i for i in range(len(truth.amps)) if truth.amps["ccdname"][i] == ccd]
        index.sort(key=lambda i: int(truth.amps["detsec"][i].strip("[]").split(":")[0]))
        lit = np.hstack([truth.illuminated(i) for i in index])
        dist = ndimage.distance_transform_edt(np.pad(lit, 1, constant_values=False))[1:-1, 1:-1]
        x0 = 0
        for i in index:
            width = truth.illuminated(i).shape[1]
            out[i] = dist[:, x0:x0 + width]
            x0 += width
    return out


def true_distance(truth, name: str, wcs: WCS, shape, distances: dict) -> np.ndarray:
    """Per pixel of an aligned frame: distance (raw binned pixels) to the nearest unlit or
    off-CCD pixel of raw frame ``name``, through the true WCS (0 off the detector)."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    ra, dec = wcs.all_pix2world(xx.ravel(), yy.ravel(), 0)
    best = np.zeros(ra.size, np.float32)
    for index, dist in distances.items():
        sec = truth.datasec(index)
        x, y = truth.wcs(name, index).all_world2pix(ra, dec, 0)
        ix, iy = np.rint(x).astype(int) - sec.x1, np.rint(y).astype(int) - sec.y1
        on = (ix >= 0) & (iy >= 0) & (ix < dist.shape[1]) & (iy < dist.shape[0])
        best[on] = np.maximum(best[on], dist[iy[on], ix[on]])
    return best.reshape(shape)


def star_model(truth, wcs: WCS, shape, norm: float):
    """The true stars (electrons, flat-fielded) rendered on an aligned frame's grid."""
    from gmoswidgets.data.sky import render_stars
    image = np.zeros(shape, np.float32)
    x, y = wcs.all_world2pix(truth.stars["ra"], truth.stars["dec"], 0)
    render_stars(image, x, y, np.asarray(truth.stars["flux_e"]) * norm,
                 truth.psf_fwhm_arcsec / truth.pixel_scale, truth.psf_beta)
    return image


def _stats(r: np.ndarray) -> dict:
    if r.size == 0:
        return {"n": 0}
    return {"n": int(r.size), "median": float(np.median(r)), "mean": float(np.mean(r)),
            "rms68": float(0.5 * np.subtract(*np.percentile(r, [84.135, 15.865]))),
            "gt3": float(np.mean(np.abs(r) > 3)), "gt5": float(np.mean(np.abs(r) > 5))}


def measure_aligned(truth, folders: dict) -> dict:
    """Residuals (data - truth) / sqrt(VAR) of the aligned frames' sky pixels, per distance bin."""
    from gmoswidgets.frame import read_frame
    norm = truth.flat_normalisation()
    rows = {}
    distances = _ccd_distances(truth)
    names = truth.science_names()
    for name in names:
        exts = {rule: read_frame(next(folders[rule].glob(f"{name}*_align.fits")))[0] for rule in folders}
        ref = exts[RULES[0]]
        for rule in RULES[1:]:
            change = float(np.max(np.abs(ref.data - exts[rule].data) / np.sqrt(np.maximum(ref.variance, 1e-6))
                                  * (ref.variance > 0)))
            print(f"{name}: aligned data of {rule} differ from {RULES[0]} by up to {change:.3f} sigma "
                  "(detectSources -> adjustWCSToReference saw other DQ)", file=sys.stderr)
        wcs = WCS(ref.header)
        sigma = np.sqrt(np.maximum(ref.variance, 1e-6))
        stars = star_model(truth, wcs, ref.data.shape, norm)
        residual = (ref.data - truth.frame(name).sky_e * norm - stars) / sigma
        sky = (stars < 0.1 * sigma) & (ref.variance > 0)
        saturated_near = _near_saturated(truth, wcs, ref.data.shape)
        distance = true_distance(truth, name, wcs, ref.data.shape, distances)
        far = sky & ~saturated_near & (distance >= 8) & (exts[RULES[0]].mask == 0)
        offset = float(np.median(residual[far]))   # sky level: the one fitted number per frame
        residual -= offset
        for lo, hi in DISTANCE_BINS:
            inbin = sky & ~saturated_near & (distance > lo) & (distance <= hi)
            for rule in RULES:
                good = inbin & (exts[rule].mask == 0)
                rows.setdefault(("sky", lo, hi, rule, "kept"), []).append(residual[good])
                rows.setdefault(("sky", lo, hi, rule, "all"), []).append(np.full(int(inbin.sum()), 0.0))
            for rule in RULES[1:]:
                only = inbin & (exts[RULES[0]].mask == 0) & (exts[rule].mask != 0)
                rows.setdefault(("sky", lo, hi, f"flagged by {rule} only", "kept"), []).append(residual[only])
        # near saturated stars (within 5"), both kept vs only the linear rule keeps
        near = saturated_near & (distance >= 6)
        both = near & (exts["linear"].mask == 0) & (exts["poly3"].mask == 0)
        only = near & (exts["linear"].mask == 0) & (exts["poly3"].mask != 0)
        rows.setdefault(("saturated", 0, 5, "kept by linear and poly3", "kept"), []).append(residual[both])
        rows.setdefault(("saturated", 0, 5, "flagged by poly3 only", "kept"), []).append(residual[only])
        print(f"{name}: sky offset {offset:+.3f} sigma", file=sys.stderr)
    return {key: np.concatenate(v) for key, v in rows.items()}


def _near_saturated(truth, wcs, shape, radius_arcsec=5.0):
    """Pixels within ``radius_arcsec`` of a star the simulator saturated."""
    sat = truth.stars[np.asarray(truth.stars["saturated"])]
    centres = np.zeros(shape, bool)
    if len(sat):
        x, y = wcs.all_world2pix(sat["ra"], sat["dec"], 0)
        inside = (x >= 0) & (y >= 0) & (x < shape[1] - 0.5) & (y < shape[0] - 0.5)
        centres[np.rint(y[inside]).astype(int), np.rint(x[inside]).astype(int)] = True
    if not centres.any():
        return centres
    return ndimage.distance_transform_edt(~centres) <= radius_arcsec / truth.pixel_scale


def measure_stacks(truth, folders: dict) -> dict:
    """Stack: usable fraction (the matrix's criterion) and residuals near/far from flagged inputs."""
    from accuracy import measure, sky_noise_ratio, usable_fraction
    from gmoswidgets.frame import read_frame
    norm = truth.flat_normalisation()
    out = {}
    aligned = sorted(folders[RULES[0]].glob("*_align.fits"))
    flagged_any = None
    for path in aligned:
        mask = read_frame(path)[0].mask != 0
        flagged_any = mask if flagged_any is None else flagged_any | mask
    distance = ndimage.distance_transform_edt(~flagged_any)
    for rule, folder in folders.items():
        stack = next(folder.glob("*_stack.fits"))
        m = measure(stack, truth)
        fraction, count = usable_fraction(m, stride=1)
        ratio, _, _ = sky_noise_ratio(m.ext)
        sigma = np.sqrt(np.maximum(m.ext.variance, 1e-6))
        stars = star_model(truth, m.wcs, m.ext.data.shape, norm)
        ref = truth.science_names()[0]
        residual = (m.ext.data - truth.frame(ref).sky_e * norm - stars) / sigma
        sky = ((stars < 0.1 * sigma) & (m.ext.mask == 0) & (m.ext.variance > 0)
               & ~_near_saturated(truth, m.wcs, m.ext.data.shape))
        residual -= np.median(residual[sky & (distance > 8)])
        out[rule] = {"usable": fraction, "count": count, "sky_ratio": ratio,
                     "near": _stats(residual[sky & (distance <= 3)]),
                     "far": _stats(residual[sky & (distance > 8)]),
                     "dq0": int((m.ext.mask == 0).sum())}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instrument", default="GMOS-N")
    parser.add_argument("--detector", default="eev")
    parser.add_argument("--binning", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--base", default=None, help="working folder (kept; default: a new temporary one)")
    args = parser.parse_args(argv)
    import tempfile
    base = Path(args.base or tempfile.mkdtemp(prefix="dq-resampling-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    folders = reduce_with_rules(base, instrument=args.instrument, detector=args.detector,
                                binning=args.binning, seed=args.seed)
    from gmoswidgets.data import load_truth
    truth = load_truth(base / "raw")
    rows = measure_aligned(truth, folders)
    print(f"## {args.instrument} {args.detector} {args.binning}x{args.binning} seed {args.seed} ({base})")
    print("aligned frames, sky pixels: residual (data - truth)/sqrt(VAR) of the DQ-0 pixels")
    print("| category | distance (px) | rule | DQ-0 pixels | median | mean | rms68 | >3 sigma | >5 sigma |")
    for (kind, lo, hi, rule, what), r in rows.items():
        if what != "kept":
            continue
        total = rows.get((kind, lo, hi, rule, "all"))
        frac = f" ({r.size / total.size:.3f})" if total is not None and total.size else ""
        s = _stats(r)
        if s["n"] == 0:
            print(f"| {kind} | {lo}-{hi} | {rule} | 0 | | | | | |")
            continue
        print(f"| {kind} | {lo}-{hi} | {rule} | {s['n']}{frac} | {s['median']:+.3f} | {s['mean']:+.3f} | "
              f"{s['rms68']:.3f} | {s['gt3']:.4f} | {s['gt5']:.4f} |")
    stacks = measure_stacks(truth, folders)
    print("stack: usable = DQ-0 fraction of the truly illuminated pixels; residuals of DQ-0 sky pixels "
          "near (<= 3 px) / far (> 8 px) from any pixel flagged in an aligned frame")
    print("| rule | usable | sky/sqrt(VAR) | DQ-0 px | near: n, mean, rms68, >3, >5 | far: n, mean, rms68, >3, >5 |")
    for rule, s in stacks.items():
        cells = []
        for part in ("near", "far"):
            p = s[part]
            cells.append(f"{p['n']}, {p['mean']:+.3f}, {p['rms68']:.3f}, {p['gt3']:.4f}, {p['gt5']:.4f}")
        print(f"| {rule} | {s['usable']:.4f} of {s['count']} | {s['sky_ratio']:.3f} | {s['dq0']} | "
              f"{cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
