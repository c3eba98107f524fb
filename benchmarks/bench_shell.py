"""Benchmark: the tutorial typed in the shell, command by command (wall, CPU, peak RSS).

Runs the seed's commands, each in its own process of the virtualenv's console
scripts, in a playground next to the simulated ``playdata``::

    caldb init
    dataselect --tags BIAS ../playdata/*.fits -o list_of_bias.txt
    dataselect --tags FLAT --expr 'filter_name=="i"' ../playdata/*.fits -o list_of_flats.txt
    dataselect --expr '(object=="starfield" and exposure_time==10.)' ../playdata/*.fits \
        -o list_of_science.txt
    reduce @list_of_bias.txt
    caldb add N20170613S0180_bias.fits
    reduce @list_of_flats.txt
    caldb add N20170702S0178_flat.fits
    reduce @list_of_science.txt

The *tutorial* total is the three ``reduce`` and two ``caldb add`` commands
(issue 13's goal: <= 10.5 s at 2x2).  The package's bytecode is compiled
first (``compileall``, as a non-editable ``pip install`` does), so that no
command compiles the package's sources again: an environment with
``PYTHONDONTWRITEBYTECODE=1`` and an editable install would otherwise pay it in
every process (~0.1 s CPU per ``reduce``).  For each ``reduce`` the time of every
step is read from ``reduce.log``, with the time before the first step
(start-up, imports, reading the inputs), between the steps (writing outputs,
provenance) and after the last one (until the process has exited).  The
start-up alone is ``reduce --help`` and ``caldb --help``.  CPU is user + system
time of the command's process (and its children); the 1-minute load average is
printed with each run: on a shared machine compare CPU times.

    python benchmarks/bench_shell.py --binning 2 [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
#: The seed's list-making commands (not in the tutorial total).
SELECT = (
    ("dataselect", "--tags", "BIAS", "PLAYDATA", "-o", "list_of_bias.txt"),
    ("dataselect", "--tags", "FLAT", "--expr", 'filter_name=="i"', "PLAYDATA", "-o",
     "list_of_flats.txt"),
    ("dataselect", "--expr", '(object=="starfield" and exposure_time==10.)', "PLAYDATA", "-o",
     "list_of_science.txt"),
)
#: (list file, suffix of the processed calibration to add, or None for the science).
STAGES = (("list_of_bias.txt", "_bias"), ("list_of_flats.txt", "_flat"),
          ("list_of_science.txt", None))
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_STEP_START = re.compile(r" - Step (\d+)/(\d+): ")
_STEP_TOOK = re.compile(r" - (.+?) took ([\d.]+) s$")


def run_command(args, cwd: Path, env: dict) -> dict:
    """Run one command as typed; its wall and CPU seconds, peak RSS and start/end epochs."""
    start_epoch, start = time.time(), time.perf_counter()
    proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode:
        sys.exit(f"{shlex.join(args)} failed ({proc.returncode}):\n{stderr.decode()[-3000:]}")
    return {"command": shlex.join(args), "wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "user_s": round(usage.ru_utime, 3), "sys_s": round(usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "start": start_epoch,
            "end": start_epoch + wall, "load1": round(os.getloadavg()[0], 2)}


def _epoch(line: str) -> float | None:
    match = _LOG_TIME.match(line)
    if not match:
        return None
    stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def step_profile(log_text: str, result: dict) -> dict:
    """Seconds in each step of one ``reduce``, and before, between and after the steps."""
    steps, first, last = [], None, None
    for line in log_text.splitlines():
        if _STEP_START.search(line) and first is None:
            first = _epoch(line)
        took = _STEP_TOOK.search(line)
        if took:
            steps.append((took.group(1), float(took.group(2))))
            last = _epoch(line)
    if first is None or last is None:
        return {"steps": steps}
    in_steps = sum(t for _, t in steps)
    return {"steps": steps, "before_steps_s": round(first - result["start"], 2),
            "between_steps_s": round(max(last - first - in_steps, 0.0), 2),
            "after_steps_s": round(result["end"] - last, 2)}


def tutorial(playground: Path, env: dict) -> list[dict]:
    """The seed's commands in ``playground``; one result per command."""
    playdata = sorted(str(p) for p in (playground.parent / "playdata").glob("*.fits"))
    results = [run_command(("caldb", "init", "-w"), playground, env)]
    for command in SELECT:
        expanded = []
        for word in command:
            expanded.extend(os.path.relpath(p, playground) for p in playdata) \
                if word == "PLAYDATA" else expanded.append(word)
        result = run_command(tuple(expanded), playground, env)
        result["command"] = shlex.join(command).replace("PLAYDATA", "../playdata/*.fits")
        results.append(result)
    log = playground / "reduce.log"
    for list_name, suffix in STAGES:
        offset = log.stat().st_size if log.exists() else 0
        result = run_command(("reduce", f"@{list_name}"), playground, env)
        with open(log, encoding="utf-8") as fh:
            fh.seek(offset)
            result.update(step_profile(fh.read(), result))
        result["tutorial"] = True
        results.append(result)
        if suffix:
            first = (playground / list_name).read_text().split()[0]
            output = Path(first).stem + suffix + ".fits"
            result = run_command(("caldb", "add", output), playground, env)
            result["tutorial"] = True
            results.append(result)
    for tool in ("reduce", "caldb"):
        result = run_command((tool, "--help"), playground, env)
        result["startup"] = True
        results.append(result)
    return results


def print_run(results: list[dict]) -> None:
    """A table of one run: command, wall, CPU (user + sys), peak RSS, load; then step profiles."""
    print(f"{'command':62s} {'wall s':>7s} {'CPU s':>6s} {'user':>6s} {'sys':>5s} "
          f"{'RSS MB':>6s} {'load1':>5s}")
    for r in results:
        mark = "*" if r.get("tutorial") else " "
        print(f"{mark}{r['command'][:61]:61s} {r['wall_s']:7.2f} {r['cpu_s']:6.2f} "
              f"{r['user_s']:6.2f} {r['sys_s']:5.2f} {r['peak_rss_mb']:6d} {r['load1']:5.2f}")
    tut = [r for r in results if r.get("tutorial")]
    print(f"*{'tutorial (3 reduce + 2 caldb add)':61s} {sum(r['wall_s'] for r in tut):7.2f} "
          f"{sum(r['cpu_s'] for r in tut):6.2f}")
    for r in results:
        if "before_steps_s" in r:
            parts = " | ".join(f"{name} {t:.2f}" for name, t in r["steps"])
            print(f"  {r['command']}: before the steps {r['before_steps_s']:.2f} | {parts} | "
                  f"between {r['between_steps_s']:.2f} | after {r['after_steps_s']:.2f}")


def compile_package() -> None:
    """Write the bytecode of the package the venv imports (a pip install does it at install)."""
    subprocess.run([sys.executable, "-c", "import compileall, os, gmoswidgets; "
                    "compileall.compile_dir(os.path.dirname(gmoswidgets.__file__), quiet=1)"],
                   check=True, env={k: v for k, v in os.environ.items()
                                    if k != "PYTHONDONTWRITEBYTECODE"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binning", type=int, default=2, choices=(1, 2, 4))
    parser.add_argument("--dir", help="work directory (default: a temporary one); the data "
                                      "are simulated into DIR/playdata unless there")
    parser.add_argument("--repeat", type=int, default=1, help="run the tutorial this many times")
    parser.add_argument("--json", help="also write every run's results to this file")
    args = parser.parse_args(argv)
    base = Path(args.dir or tempfile.mkdtemp(prefix=f"shell{args.binning}_"))
    playdata, playground = base / "playdata", base / "playground"
    playground.mkdir(parents=True, exist_ok=True)
    if not list(playdata.glob("*.fits")):
        subprocess.run([sys.executable, "-m", "gmoswidgets.data", "make-tutorial", str(playdata),
                        "--binning", str(args.binning)], check=True, stdout=subprocess.DEVNULL)
    compile_package()
    config = playground / "rsys.cfg"
    config.write_text(f"[calibs]\nstandalone = True\ndatabase_dir = {playground}\n")
    env = {**os.environ, "GMOSWIDGETS_CONFIG": str(config)}
    runs = []
    for number in range(args.repeat):
        print(f"\nrun {number + 1}/{args.repeat}, {args.binning}x{args.binning}, "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        results = tutorial(playground, env)
        print_run(results)
        runs.append(results)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
