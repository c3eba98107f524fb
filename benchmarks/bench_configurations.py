"""Benchmark: the simulator and the whole tutorial for each GMOS configuration.

For each configuration (GMOS-N/GMOS-S x Hamamatsu/e2vDD/EEV) the tutorial
data set is simulated, then bias, flat and science are reduced with the
seed's API in a fresh process (where DRAGONS fringe-corrects the filter on
that detector -- i band on EEV and e2vDD -- a processed fringe is made from
the science frames first).  Prints one JSON line per configuration and a
table.

    python benchmarks/bench_configurations.py --binning 2
    python benchmarks/bench_configurations.py --binning 4 --only GMOS-S-eev
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name -> (instrument, detector)
CONFIGURATIONS = {
    "GMOS-N-hamamatsu": ("GMOS-N", "hamamatsu"),
    "GMOS-S-hamamatsu": ("GMOS-S", "hamamatsu"),
    "GMOS-N-e2vdd": ("GMOS-N", "e2vdd"),
    "GMOS-N-eev": ("GMOS-N", "eev"),
    "GMOS-S-eev": ("GMOS-S", "eev"),
}


def reduce_all(base: Path) -> dict:
    """Reduce the tutorial in ``base/playground`` (in this process); wall time of each stage."""
    from gmoswidgets.caldb import CalibrationService, set_calservice
    from gmoswidgets.data import load_truth
    from gmoswidgets.data.instrument import facts
    from gmoswidgets.reduce import Reduce
    from gmoswidgets.select import select_data
    logging.getLogger("gmoswidgets").setLevel(logging.WARNING)
    playground = base / "playground"
    playground.mkdir(exist_ok=True)
    os.chdir(playground)
    caldb = CalibrationService(database_dir=playground)
    caldb.init()
    set_calservice(caldb)
    files = sorted(str(p) for p in (base / "playdata").glob("*.fits"))
    truth = load_truth(base / "playdata")
    science = select_data(files, [], ["CAL"])
    stages = [("bias", select_data(files, ["BIAS"], []), None),
              ("flat", select_data(files, ["FLAT"], []), None)]
    fringe_filters = facts()["fringe"]["needs_correction_by_pretty_detector"][truth.configuration["detector_name"]]
    if truth.filter_name in fringe_filters:
        stages.append(("fringe", science, "makeProcessedFringe"))
    stages.append(("science", science, None))
    times = {}
    for stage, selection, recipe in stages:
        t0 = time.perf_counter()
        red = Reduce(files=selection, recipename=recipe)
        red.runr()
        times[stage] = round(time.perf_counter() - t0, 1)
        if stage != "science":
            caldb.add_cal(red.output_filenames[0])
    return {"stages_wall_s": times,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def bench(name: str, binning: int, base: Path) -> dict:
    """Simulate and reduce one configuration under ``base``; return the measurements."""
    instrument, detector = CONFIGURATIONS[name]
    playdata, playground = base / "playdata", base / "playground"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gmoswidgets.data", "make-tutorial", str(playdata),
                    "--instrument", instrument, "--detector", detector, "--binning", str(binning)],
                   check=True, stdout=subprocess.DEVNULL)
    simulate = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in playdata.glob("*.fits")) / 1e6
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--run", str(base)], capture_output=True, text=True)
    reduce = time.perf_counter() - t0
    result = {"configuration": name, "binning": binning, "simulate_s": round(simulate, 1),
              "data_mb": round(size)}
    if proc.returncode:
        return {**result, "error": proc.stderr.strip().splitlines()[-1][:200]}
    return {**result, "reduce_s": round(reduce, 1), **json.loads(proc.stdout.strip().splitlines()[-1])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binning", type=int, default=2, choices=(1, 2, 4))
    parser.add_argument("--only", nargs="+", choices=tuple(CONFIGURATIONS), default=list(CONFIGURATIONS))
    parser.add_argument("--run", help=argparse.SUPPRESS)   # internal: reduce the tutorial under this dir
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(reduce_all(Path(args.run))))
        return 0
    results = []
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"benchconf_{name}_") as tmp:
            result = bench(name, args.binning, Path(tmp))
        print(json.dumps(result), flush=True)
        results.append(result)
    print(f"\n{'configuration':20s} {'simulate':>9s} {'data':>8s} {'reduce':>8s} {'peak RSS':>9s}")
    for r in results:
        reduce = f"{r['reduce_s']:.1f} s" if "reduce_s" in r else "failed"
        rss = f"{r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else "-"
        print(f"{r['configuration']:20s} {r['simulate_s']:7.1f} s {r['data_mb']:5d} MB {reduce:>8s} {rss:>9s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
