"""Benchmark: peak memory and time of the engine's memory policies (``keep=``).

Two workloads, each run in its own process per policy so that its peak
memory (max RSS) is its own:

* ``tutorial``: the seed's tutorial (bias, flat, science) with ``Reduce``;
* ``biases``: one ``makeProcessedBias`` of many raw biases (``--nbias``, made
  from several simulated bias sets with different seeds, renamed so that
  every file is its own exposure).

Prints one JSON line per run (wall and CPU seconds, peak RSS, megabytes
spilled, load average) and a table.  Peak RSS is given twice: of the
reduction's process alone, and the largest of it and of the processes it
forked (``wait4``'s ``ru_maxrss``, what ``bench_shell.py`` reports: a forked
child counts the parent's pages it inherited).  ``--steps`` adds each step's
peak RSS (the process's high-water mark is reset at each step through
``/proc/self/clear_refs``) and the children's peak if a step raised it.  Spill files go to ``$TMPDIR`` (a
50-frame 1x1 stack needs ~26 GB there with ``keep='stream'``: the processed
frames of two steps)::

    python benchmarks/bench_memory.py --binning 2 --policies last,spill,stream
    TMPDIR=/dev/shm python benchmarks/bench_memory.py --workload biases --binning 4 --nbias 50
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("bias", "flat", "science")
#: Raw biases in one simulated tutorial data set.
_SET = 10


def _vm_hwm_mb() -> float:
    """This process's peak RSS since the last reset (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _profile_steps(profile: list) -> None:
    """Record each step's peak RSS into ``profile`` (wraps ``Reduction._execute``; per-frame
    steps streamed together as one chain are one entry, ``first..last``)."""
    from gmoswidgets.reduction import Reduction
    execute = Reduction._execute

    def measured(self, index, until=None):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before, start = _children_peak_mb(), time.perf_counter()
        pending = {s.index for s in self.steps if s.status not in ("done", "skipped")}
        execute(self, index, until)
        children = _children_peak_mb()
        ran = [s.label for s in self.steps
               if s.index in pending and s.status in ("done", "skipped")]
        profile.append({"step": "..".join(ran[::len(ran) - 1] if len(ran) > 1 else ran),
                        "s": round(time.perf_counter() - start, 2),
                        "peak_mb": round(_vm_hwm_mb()),
                        "children_peak_mb": round(children) if children > before else None})
    Reduction._execute = measured


def _measure(run, profile: list | None = None) -> dict:
    if profile is not None:
        _profile_steps(profile)
    wall, cpu = time.perf_counter(), time.process_time()
    reduction = run()
    own = max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
              + [step["peak_mb"] for step in profile or ()])
    result = {"wall_s": round(time.perf_counter() - wall, 2),
              "cpu_s": round(time.process_time() - cpu, 2),
              "peak_rss_mb": round(max(own, _children_peak_mb()), 1),
              "own_peak_rss_mb": round(own, 1),
              "load": round(os.getloadavg()[0], 2)}
    if profile:
        result["steps"] = profile
    store = reduction._store
    result["spilled_mb"] = round(getattr(store, "bytes_written", 0) / 1e6, 1)
    if reduction.keep == "spill":  # every step's planes: what spilling them all as FITS writes
        result["planes_mb"] = round(sum(f.nbytes for s in reduction.steps
                                        for f in reduction.outputs(s.index)) / 1e6, 1)
    return result


def run_tutorial_stage(stage: str, policy: str, data: Path, work: Path,
                       profile: list | None = None) -> dict:
    """One tutorial stage with ``Reduce(keep=policy)`` in ``work`` (its own caldb)."""
    from gmoswidgets.caldb import CalibrationService, set_calservice
    from gmoswidgets.reduce import Reduce
    from gmoswidgets.select import select_data
    import logging
    logging.getLogger("gmoswidgets").setLevel(logging.WARNING)
    os.chdir(work)
    caldb = CalibrationService(database_dir=work)
    if stage == STAGES[0]:
        caldb.init(wipe=True)
    set_calservice(caldb)
    files = sorted(str(p) for p in data.glob("*.fits"))
    selection = {"bias": select_data(files, ["BIAS"], []),
                 "flat": select_data(files, ["FLAT"], []),
                 "science": select_data(files, [], ["CAL"])}[stage]
    red = Reduce(files=selection, keep=policy)

    def run():
        red.runr()
        return red.reduction

    result = _measure(run, profile)
    if stage != "science":
        caldb.add_cal(red.output_filenames[0])
    red.reduction.close()
    return {"workload": "tutorial", "stage": stage, "policy": policy, "files": len(selection),
            **result}


def run_bias_stack(policy: str, data: Path, work: Path, profile: list | None = None) -> dict:
    """makeProcessedBias of every raw file in ``data`` with ``Reduction(keep=policy)``."""
    from gmoswidgets.reduction import Reduction
    import logging
    logging.getLogger("gmoswidgets").setLevel(logging.ERROR)
    files = sorted(data.glob("*.fits"))
    red = Reduction(files, keep=policy, workdir=work)

    def run():
        red.run_all()
        return red

    result = _measure(run, profile)
    red.close()
    return {"workload": "biases", "stage": "bias", "policy": policy, "files": len(files), **result}


def make_biases(directory: Path, count: int, binning: int) -> None:
    """``count`` raw biases: simulated sets of ten with seeds 1, 2, ..., renamed uniquely."""
    from gmoswidgets.data import make_tutorial_dataset
    directory.mkdir(parents=True, exist_ok=True)
    for seed in range(1, -(-count // _SET) + 1):
        staging = directory / f"set{seed}"
        dataset = make_tutorial_dataset(staging, binning=binning, groups=("bias",), seed=seed)
        for index, path in enumerate(sorted(dataset.bias)):
            number = (seed - 1) * _SET + index
            if number < count:
                path.rename(directory / f"N20170613S{1000 + number:04d}.fits")
        shutil.rmtree(staging)


def _child(args, *extra) -> dict:
    extra += ("--steps",) if args.steps else ()
    out = subprocess.run([sys.executable, __file__, *extra, "--binning", str(args.binning)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(extra)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("tutorial", "biases"), default="tutorial")
    parser.add_argument("--binning", type=int, default=2, choices=(1, 2, 4))
    parser.add_argument("--policies", default="last,spill,stream")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--nbias", type=int, default=50)
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--steps", action="store_true", help="also each step's peak RSS")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # kind policy data work
    args = parser.parse_args(argv)
    if args.child:
        kind, policy, data, work = args.child
        profile = [] if args.steps else None
        if kind == "biases":
            result = run_bias_stack(policy, Path(data), Path(work), profile)
        else:
            result = run_tutorial_stage(kind, policy, Path(data), Path(work), profile)
        print(json.dumps(result))
        return 0

    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-memory-"))
    data = root / f"{args.workload}{args.binning}"
    if not data.exists():
        if args.workload == "biases":
            make_biases(data, args.nbias, args.binning)
        else:
            from gmoswidgets.data import make_tutorial_dataset
            make_tutorial_dataset(data, binning=args.binning, seed=2)
    rows = []
    for policy in args.policies.split(","):
        work = root / f"work-{args.workload}{args.binning}-{policy}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        stages = ["biases"] if args.workload == "biases" else args.stages.split(",")
        for stage in stages:
            row = _child(args, "--child", stage, policy, str(data), str(work))
            steps = row.pop("steps", [])
            print(json.dumps(row), flush=True)
            for step in steps:
                children = step["children_peak_mb"]
                print(f"  {step['step']:40s} {step['s']:6.2f} s  peak {step['peak_mb']:5d} MB"
                      + (f"  forked children {children} MB" if children else ""), flush=True)
            rows.append(row)
    print(f"\n{'workload':9} {'stage':8} {'policy':7} {'files':>5} {'wall s':>7} {'CPU s':>6} "
          f"{'peak MB':>8} {'(own)':>6} {'spilled MB':>10} {'planes MB':>9} {'load':>5}")
    for r in rows:
        print(f"{r['workload']:9} {r['stage']:8} {r['policy']:7} {r['files']:5d} {r['wall_s']:7.2f} "
              f"{r['cpu_s']:6.2f} {r['peak_rss_mb']:8.0f} {r['own_peak_rss_mb']:6.0f} "
              f"{r['spilled_mb']:10.0f} "
              f"{r.get('planes_mb', 0):9.0f} {r['load']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
