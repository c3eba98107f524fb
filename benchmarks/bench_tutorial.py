"""Benchmark: the seed's whole tutorial (bias, flat, science) on simulated data.

Each stage runs in its own process so that its peak memory (max RSS) is its
own; the data set is made first, in another process.  Prints one JSON line
per stage (wall and CPU time, peak memory, time of each step) and a table.

    python benchmarks/bench_tutorial.py --binning 2
    python benchmarks/bench_tutorial.py --binning 1 --stages bias
    python benchmarks/bench_tutorial.py --binning 2 --scheduler sync   # per-frame work in one thread
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("bias", "flat", "science")


def run_stage(stage: str, playground: Path, scheduler: str | None = None) -> dict:
    """Reduce one stage with the seed's API inside ``playground``; return the measurements."""
    from gmoswidgets.caldb import CalibrationService, set_calservice
    from gmoswidgets.reduce import Reduce
    from gmoswidgets.select import select_data
    import logging
    logging.getLogger("gmoswidgets").setLevel(logging.WARNING)
    os.chdir(playground)
    caldb = CalibrationService(database_dir=playground)
    set_calservice(caldb)
    files = sorted(str(p) for p in (playground.parent / "playdata").glob("*.fits"))
    selection = {"bias": select_data(files, ["BIAS"], []),
                 "flat": select_data(files, ["FLAT"], []),
                 "science": select_data(files, [], ["CAL"])}[stage]
    wall, cpu = time.perf_counter(), time.process_time()
    red = Reduce(files=selection, scheduler=scheduler)
    red.runr()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if stage != "science":
        caldb.add_cal(red.output_filenames[0])
    steps = [(s.label, round(s.elapsed or 0.0, 3)) for s in red.reduction.steps]
    return {"stage": stage, "files": len(selection), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "steps": steps}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binning", type=int, default=2, choices=(1, 2, 4))
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--scheduler", help="where the per-frame work runs: sync, threads "
                                            "(the default), processes or a Dask scheduler address")
    parser.add_argument("--stage", help=argparse.SUPPRESS)   # internal: run one stage here
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(run_stage(args.stage, Path(args.dir), args.scheduler)))
        return 0
    base = Path(args.dir or tempfile.mkdtemp(prefix=f"bench{args.binning}_"))
    playdata, playground = base / "playdata", base / "playground"
    playground.mkdir(parents=True, exist_ok=True)
    if not list(playdata.glob("*.fits")):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gmoswidgets.data", "make-tutorial", str(playdata),
                        "--binning", str(args.binning)], check=True, stdout=subprocess.DEVNULL)
        print(f"simulated the {args.binning}x{args.binning} data set in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    from gmoswidgets.caldb import CalibrationService
    stages = args.stages.split(",")
    if stages[0] == "bias":          # a full run starts from an empty database
        CalibrationService(database_dir=playground).init(wipe=True)
    results = []
    for stage in stages:
        command = [sys.executable, __file__, "--stage", stage, "--dir", str(playground)]
        if args.scheduler:
            command += ["--scheduler", args.scheduler]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        print(json.dumps(result), flush=True)
    print(f"\n{args.binning}x{args.binning}, per-frame work on {args.scheduler or 'threads'}: "
          "stage, files, wall s, CPU s, peak RSS MB")
    for r in results:
        print(f"  {r['stage']:8s} {r['files']:3d} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['peak_rss_mb']:9.0f}")
    print(f"  total        {sum(r['wall_s'] for r in results):8.1f} "
          f"{sum(r['cpu_s'] for r in results):8.1f} {max(r['peak_rss_mb'] for r in results):9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
