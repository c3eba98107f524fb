"""Time and memory of mosaicDetectors and resampleToCommonFrame on the tutorial science frames.

The five simulated science frames are brought to the input state of
mosaicDetectors with the project's own primitives (prepare, addDQ, addVAR,
overscanCorrect, ADUToElectrons, addVAR), then QECorrect, mosaicDetectors,
resampleToCommonFrame and flagCosmicRaysByStacking are run and measured
(wall time, CPU time and, with ``--memory``, the peak memory allocated
during the step; tracing memory slows the steps down).  The frames run one
after the other unless ``--threads N`` runs them on N threads, as the
reduction's default executor does::

    python benchmarks/bench_mosaic_resample.py                 # 2x2, as the tutorial
    python benchmarks/bench_mosaic_resample.py --threads 2
    python benchmarks/bench_mosaic_resample.py --memory
    python benchmarks/bench_mosaic_resample.py --binning 4 --interpolant linear
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
import tracemalloc
from pathlib import Path

from gmoswidgets.data import make_tutorial_dataset
from gmoswidgets.executor import SequentialExecutor, ThreadExecutor
from gmoswidgets.frame import read_frame
from gmoswidgets.primitives import StepContext, get_primitive

_PREPARATION = [("prepare", {}), ("addDQ", {"static_bpm": None}),
                ("addVAR", {"read_noise": True}), ("overscanCorrect", {}), ("ADUToElectrons", {}),
                ("addVAR", {"poisson_noise": True})]


def _run(name, frames, ctx, **params):
    prim = get_primitive(name)
    return prim(frames, ctx, **params)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binning", type=int, default=2)
    parser.add_argument("--interpolant", default="poly3")
    parser.add_argument("--data", help="existing directory with the simulated science frames")
    parser.add_argument("--memory", action="store_true", help="also trace the peak memory")
    parser.add_argument("--threads", type=int, default=1,
                        help="run the frames on this many threads (default: one after the other)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    executor = ThreadExecutor(args.threads) if args.threads > 1 else SequentialExecutor()
    ctx = StepContext(logger=logging.getLogger("bench"), executor=executor)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.data or tmp
        if not args.data:
            make_tutorial_dataset(directory, binning=args.binning, seed=2, groups=("science",))
        frames = [read_frame(p) for p in sorted(Path(directory).glob("N2017*.fits"))]
        for name, params in _PREPARATION:
            frames = _run(name, frames, ctx, **params)
        print(f"{len(frames)} frames, {len(frames[0].exts)} extensions of "
              f"{frames[0].exts[0].data.shape}, interpolant {args.interpolant}, "
              f"{args.threads} thread(s)")
        total_wall = total_cpu = 0.0
        steps = [("QECorrect", {}), ("mosaicDetectors", {"interpolant": args.interpolant}),
                 ("resampleToCommonFrame", {"interpolant": args.interpolant}),
                 ("flagCosmicRaysByStacking", {})]
        for name, params in steps:
            if args.memory:
                tracemalloc.start()
            wall, cpu = time.perf_counter(), time.process_time()
            frames = _run(name, frames, ctx, **params)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            memory = ""
            if args.memory:
                memory = f"  peak {tracemalloc.get_traced_memory()[1] / 2**20:6.0f} MiB"
                tracemalloc.stop()
            total_wall += wall
            total_cpu += cpu
            print(f"{name:26s} wall {wall:6.2f} s  cpu {cpu:6.2f} s{memory}  "
                  f"-> {frames[0].exts[0].data.shape}")
        print(f"{'total':26s} wall {total_wall:6.2f} s  cpu {total_cpu:6.2f} s")


if __name__ == "__main__":
    main()
