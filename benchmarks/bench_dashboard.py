"""Benchmark: the whole tutorial in the dashboard's kernel against the same tutorial from the shell.

Makes the 2x2 tutorial data, then

* **shell**: ``caldb init``, ``reduce @list_of_bias.txt``, ``caldb add``, the
  flat the same way, ``reduce @list_of_science.txt`` (each a process, as typed);
* **dashboard**: in a fresh process (its memory is the kernel's), a
  :class:`~gmoswidgets.ReductionApp` clicks "Make the bias", "Make the flat" and
  "Reduce the science" (background runs, as in Voilà; the step panel's
  picture drawn when each run ends), then re-runs the science from its last
  step and opens the stack's tab; measures the resident memory, the time to
  select (show) a step, a re-run of one step with its redraw, and the stack
  and sky view drawn when their tab is opened.

Prints one JSON object: wall seconds, CPU seconds (user + system, ``*_cpu``;
the shell's from its child processes, the dashboard's from its own process
with all its threads) and the load average, since the machine may be shared.
Goals (issue 11): dashboard within 1.2x the shell;
RSS <= 1.5 GB after the tutorial and a re-run; selecting a step <= 0.5 s;
re-run of one step + redraw <= 1 s.

    python benchmarks/bench_dashboard.py [--binning 2] [--spill-budget MB]

``--spill-budget`` sets the kernel's in-memory budget of ``keep='spill'``
(:mod:`gmoswidgets.membudget`; 0: every step on disk); the result reports it
with the bytes of pixel planes written to the spill files.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _rss_mb() -> tuple:
    """(current, peak) resident memory of this process in MB."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                values[key] = int(value.split()[0]) / 1024
    return round(values["VmRSS"]), round(values["VmHWM"])


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes."""
    times = os.times()
    return times.children_user + times.children_system


def shell(playground: Path) -> dict:
    """The tutorial's commands, each in its own process; wall and CPU seconds per stage."""
    env = {**os.environ, "GMOSWIDGETS_CONFIG": str(playground / "rsys.cfg")}
    (playground / "rsys.cfg").write_text(f"[calibs]\nstandalone = True\ndatabase_dir = {playground}\n")

    def run(*args):
        subprocess.run([str(BIN / args[0]), *args[1:]], cwd=playground, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stages = {"bias": [("caldb", "init"), ("reduce", "@list_of_bias.txt"),
                       ("caldb", "add", "N20170613S0180_bias.fits")],
              "flat": [("reduce", "@list_of_flats.txt"),
                       ("caldb", "add", "N20170702S0178_flat.fits")],
              "science": [("reduce", "@list_of_science.txt")]}
    times = {}
    for stage, commands in stages.items():
        start, cpu = time.perf_counter(), _children_cpu()
        for command in commands:
            run(*command)
        times[stage] = time.perf_counter() - start
        times[f"{stage}_cpu"] = _children_cpu() - cpu
    times["total"] = sum(times[s] for s in stages)
    times["total_cpu"] = sum(times[f"{s}_cpu"] for s in stages)
    return {k: round(v, 2) for k, v in times.items()}


def dashboard(data_dir: Path, workdir: Path, spill_budget_mb: float | None = None) -> dict:
    """The tutorial clicked in a ReductionApp (this process is the kernel)."""
    import logging
    logging.getLogger("gmoswidgets").setLevel(logging.WARNING)
    from gmoswidgets import ReductionApp
    from gmoswidgets.membudget import spill_budget
    if spill_budget_mb is not None:
        spill_budget().limit = int(spill_budget_mb * 2**20)
    written = 0    # bytes of pixel planes written to the spill files, by the three stages
    app = ReductionApp(data_dir, workdir=workdir, database_dir=workdir / "db", background=True)
    out = {"rss_start_mb": _rss_mb()[0]}
    total = total_cpu = 0.0
    for stage in ("bias", "flat", "science"):
        start, cpu = time.perf_counter(), time.process_time()
        app.stage_buttons[stage].click()
        app.join()
        app.step_panel.wait_drawn()
        out[stage] = round(time.perf_counter() - start, 2)
        out[f"{stage}_cpu"] = round(time.process_time() - cpu, 2)
        written += app.step_panel.reduction._store.bytes_written   # before the next stage's
        total += out[stage]
        total_cpu += out[f"{stage}_cpu"]
        assert stage in app.outputs, (app.status.value, app.step_panel.error.value)
    out["total"], out["total_cpu"] = round(total, 2), round(total_cpu, 2)
    out["rss_after_tutorial_mb"], _ = _rss_mb()
    panel = app.step_panel
    red = panel.reduction
    # selecting a step: its picture drawn (first time: read back from the spill files)
    picks = [0, len(red.steps) // 2, len(red.steps) - 2, len(red.steps) - 1]
    first, again = [], []
    cpu = time.process_time()
    for index in picks:
        start = time.perf_counter()
        panel.select(index)
        first.append(time.perf_counter() - start)
    first_cpu = (time.process_time() - cpu) / len(picks)
    for index in picks:
        start = time.perf_counter()
        panel.select(index)
        again.append(time.perf_counter() - start)
    out["select_step_s"] = {"median": round(statistics.median(first), 3),
                            "max": round(max(first), 3), "mean_cpu": round(first_cpu, 3),
                            "cached_median": round(statistics.median(again), 3)}
    # re-run the last step (one step) and redraw it (the step panel is on screen; tab 6 not)
    last = len(red.steps) - 1
    before_rerun = red._store.bytes_written
    panel.select(last)
    start, cpu = time.perf_counter(), time.process_time()
    panel.rerun_from(last)
    panel.join()
    panel.wait_drawn()
    out["rerun_last_step_and_redraw_s"] = round(time.perf_counter() - start, 2)
    out["rerun_last_step_and_redraw_cpu"] = round(time.process_time() - cpu, 2)
    out["rerun_engine_s"] = round(red.steps[last].elapsed, 2)
    out["rerun_spill_written_mb"] = round((red._store.bytes_written - before_rerun) / 2**20)
    # then open tab 6: the new stack and the sky view drawn
    start, cpu = time.perf_counter(), time.process_time()
    app.tabs.selected_index = len(app.tabs.children) - 1
    out["open_stack_tab_s"] = round(time.perf_counter() - start, 2)
    out["open_stack_tab_cpu"] = round(time.process_time() - cpu, 2)
    out["rss_after_rerun_mb"], out["rss_peak_mb"] = _rss_mb()
    out["keep"] = red.keep
    out["spill_budget_mb"] = round(spill_budget().limit / 2**20)
    out["spill_written_mb"] = round(written / 2**20)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binning", type=int, default=2)
    parser.add_argument("--spill-budget", type=float, metavar="MB",
                        help="the kernel's in-memory budget of keep='spill' (default: its own)")
    parser.add_argument("--dashboard-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dashboard_only:
        print(json.dumps(dashboard(args.dashboard_only / "playdata",
                                   args.dashboard_only / "playground_dashboard",
                                   args.spill_budget)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        load_before = os.getloadavg()[0]
        subprocess.run([sys.executable, "-m", "gmoswidgets.dashboard", "--data", str(tmp),
                        "--binning", str(args.binning), "--no-serve"], check=True,
                       stdout=subprocess.DEVNULL)
        result = {"binning": args.binning, "shell": shell(tmp / "playground")}
        (tmp / "playground_dashboard").mkdir()
        budget = [] if args.spill_budget is None else ["--spill-budget", str(args.spill_budget)]
        proc = subprocess.run([sys.executable, __file__, "--dashboard-only", str(tmp), *budget],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"the dashboard run failed:\n{proc.stderr}")
        result["dashboard"] = json.loads(proc.stdout.strip().splitlines()[-1])
        result["ratio"] = round(result["dashboard"]["total"] / result["shell"]["total"], 2)
        result["ratio_cpu"] = round(result["dashboard"]["total_cpu"]
                                    / result["shell"]["total_cpu"], 2)
        result["cpus"] = os.cpu_count()
        result["load_average_1min"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
