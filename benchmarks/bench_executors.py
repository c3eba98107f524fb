"""Benchmark: the science recipe's per-frame steps on each local executor.

Runs the 2x2 science reduction once to get every step's inputs, then times
the per-frame steps (those that map their frames with ``ctx.map``) and, for
comparison, some that do not, on one thread, on local threads and on local
processes: wall and CPU seconds (this process and its finished child
processes: the process executor's workers live on, so their CPU is not in
its column), and the load average.  Threads help where numpy / scipy release the GIL (sep
holds it: on threads, detectSources runs in processes forked for the step);
processes pay for pickling the frames both ways.  Wall times mean something
only on an otherwise idle machine.

    python benchmarks/bench_executors.py --binning 2 --workers 2
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

#: Steps timed; all but the last map their frames over the executor (detectSources with
#: ``holds_gil=True``: on threads it runs in forked processes); flagCosmicRaysByStacking
#: splits its work over the executor's threads.
STEPS = ("biasCorrect", "flatCorrect", "QECorrect", "mosaicDetectors", "detectSources (1)",
         "resampleToCommonFrame", "flagCosmicRaysByStacking")


def _cpu() -> float:
    """CPU seconds of this process and of its finished child processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binning", type=int, default=2, choices=(1, 2, 4))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from gmoswidgets.caldb.lookup import CalibrationLookup
    from gmoswidgets.data import make_tutorial_dataset
    from gmoswidgets.executor import ProcessExecutor, SequentialExecutor, ThreadExecutor
    from gmoswidgets.logutils import config
    from gmoswidgets.primitives import StepContext
    from gmoswidgets.reduce import Reduce
    from gmoswidgets.reduction import Reduction
    work = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    config(mode="quiet", file_name=str(work / "bench.log"))  # messages to the file only
    ds = make_tutorial_dataset(work / "raw", binning=args.binning, seed=1)
    bias = Reduce(files=ds.bias, workdir=work, scheduler="sync").runr()[0]
    cals = {"processed_bias": bias}
    cals["processed_flat"] = Reduce(files=ds.flat, workdir=work, scheduler="sync",
                                    ucals=cals).runr()[0]
    red = Reduction(ds.science, workdir=work, keep="all", user_cals=cals)
    red.run_to(STEPS[-1])
    executors = {"sync": SequentialExecutor(), "threads": ThreadExecutor(args.workers),
                 "processes": ProcessExecutor(args.workers)}
    print(f"{args.binning}x{args.binning}, {len(ds.science)} frames, {args.workers} workers")
    print(f"{'step (wall / CPU s)':<26}" + "".join(f"{name:>16}" for name in executors))
    for label in STEPS:
        step = red.step(label)
        inputs = red.outputs(step.index - 1)
        times = []
        for executor in executors.values():
            ctx = StepContext(calibration_lookup=CalibrationLookup(cals), executor=executor)
            wall, cpu = time.perf_counter(), _cpu()
            step.definition(list(inputs), ctx, **step.params)
            times.append((time.perf_counter() - wall, _cpu() - cpu))
        print(f"{label:<26}" + "".join(f"{w:9.2f} /{c:5.2f}" for w, c in times))
    print("load average %.2f %.2f %.2f" % os.getloadavg())
    for executor in executors.values():
        executor.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
