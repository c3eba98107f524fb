"""Benchmark: source detection on one mosaic plane, stage by stage (wall and CPU).

Times what :func:`gmoswidgets.primitives.photometry.find_sources` does
(bad-pixel mask, background model, subtraction, ``sep.extract``,
measurements), and ``sep.Background`` with its ``back()`` map for
comparison, on a mosaic's SCI, VAR and DQ planes saved as ``.npy`` files
(``PREFIX_sci.npy``, ``PREFIX_var.npy``, ``PREFIX_dq.npy``) or made from a
playground of ``bench_shell.py`` (the first science frame after
mosaicDetectors)::

    python benchmarks/bench_detect.py --planes /tmp/mos_1 [--repeat 3] [--one-core]
    python benchmarks/bench_detect.py --playground /tmp/bs1/playground --save /tmp/mos_1

``--one-core`` runs the banded kernels in the calling thread, as in the
processes detectSources forks for several frames.  CPU is this process's
(every thread's); on a shared machine compare CPU times.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import sep

from gmoswidgets import executor
from gmoswidgets.primitives import photometry as ph


def _planes_from_playground(playground: str):
    os.environ.setdefault("GMOSWIDGETS_CONFIG", os.path.join(playground, "rsys.cfg"))
    os.chdir(playground)
    from gmoswidgets.caldb.lookup import default_service
    from gmoswidgets.reduction import Reduction
    files = open("list_of_science.txt").read().split()[:1]
    reduction = Reduction(files, keep="last", calservice=default_service())
    reduction.run_to("mosaicDetectors")
    ext = reduction.outputs("mosaicDetectors")[0].exts[0]
    return np.asarray(ext.data), np.asarray(ext.variance), np.asarray(ext.mask)


def _timed(results: dict, name: str, func):
    wall, cpu = time.perf_counter(), time.process_time()
    value = func()
    results.setdefault(name, []).append((time.perf_counter() - wall, time.process_time() - cpu))
    return value


def run(sci, var, dq, repeat: int) -> dict:
    """Stage times ``{name: [(wall, cpu), ...]}`` over ``repeat`` runs."""
    options = {p.name: p.default for p in ph.DETECTION_PARAMS}
    kernels, sky_background = ph._kernels()
    results: dict = {}
    for _ in range(repeat):
        bad = np.empty(sci.shape, bool)
        _timed(results, "bad pixels", lambda: executor.map_bands(
            lambda a, b: kernels.bad_pixels(sci, var, True, dq, True, 249, a, b, bad),
            sci.shape[0]))
        _timed(results, "sep.Background", lambda: sep.Background(sci, mask=bad, bw=32, bh=32,
                                                                  fw=8, fh=8))
        reference = sep.Background(sci, mask=bad, bw=32, bh=32, fw=8, fh=8)
        _timed(results, "sep back()", reference.back)
        sky = _timed(results, "sky_background", lambda: sky_background(
            sci, bad, mesh_size=32, filter_size=8))
        sub, err = np.empty_like(sci), np.empty_like(sci)
        spline = sky.spline()
        rms = np.float32(sky.globalrms)
        _timed(results, "subtract", lambda: executor.map_bands(
            lambda a, b: kernels.subtract_background(sci, *spline, var, True, bad, rms, a, b,
                                                     sub, err), sci.shape[0]))
        objects, segmap = _timed(results, "sep.extract", lambda: sep.extract(
            sub, 2.0, err=err, mask=bad, minarea=8, deblend_cont=0.005, filter_type="conv",
            segmentation_map=True))
        _timed(results, "measure", lambda: ph._measure(sub, err, bad, objects,
                                                       segmap.astype(np.int32), sky, dq, 3.5,
                                                       2.0, False))
        _timed(results, "find_sources", lambda: ph.find_sources(sci, var, dq, **options))
        _timed(results, "object_mask", lambda: ph.object_mask(sci, var, None,
                                                              **ph.MASK_DEFAULTS))
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--planes", help="prefix of the saved _sci/_var/_dq .npy planes")
    source.add_argument("--playground", help="a bench_shell.py playground directory")
    parser.add_argument("--save", help="save the planes made from --playground at this prefix")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one-core", action="store_true",
                        help="banded kernels in the calling thread (as in a forked process)")
    args = parser.parse_args(argv)
    if args.planes:
        sci, var, dq = (np.load(f"{args.planes}_{name}.npy") for name in ("sci", "var", "dq"))
    else:
        sci, var, dq = _planes_from_playground(args.playground)
        if args.save:
            for name, plane in zip(("sci", "var", "dq"), (sci, var, dq)):
                np.save(f"{args.save}_{name}.npy", plane)
    if args.one_core:
        executor._start_forked()
    print(f"{sci.shape[1]} x {sci.shape[0]} pixels, load average {os.getloadavg()[0]:.2f}, "
          f"{'one core' if args.one_core else 'bands on every core'}")
    for name, times in run(sci, var, dq, args.repeat).items():
        print(f"  {name:15s} wall " + " ".join(f"{w:.3f}" for w, _ in times)
              + "   cpu " + " ".join(f"{c:.3f}" for _, c in times))


if __name__ == "__main__":
    main()
