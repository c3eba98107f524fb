"""Benchmark: "re-run one step + redraw" in the StepPanel, and the ImageView preview size.

Run::

    python benchmarks/bench_widgets.py              # simulates 2x2 tutorial data in a temp dir
    python benchmarks/bench_widgets.py --data DIR   # uses existing raw files in DIR

Goal: under 1 s to re-run a single-frame step and redraw its output at 2x2
binning (the tutorial's binning).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gmoswidgets.data import make_tutorial_dataset
from gmoswidgets.frame import read_frame
from gmoswidgets.select import select_data
from gmoswidgets.widgets import ImageView, StepPanel


def _timed(func, repeat: int) -> list:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def bench_rerun(files, workdir: Path, step: str, values: list, repeat: int) -> dict:
    """Run the bias recipe to ``step``, then re-run that step with alternating values."""
    panel = StepPanel(files=files, background=False, workdir=workdir)
    index = panel.reduction.step(step).index
    panel.run_to(index)
    engine, redraw = [], []

    def once(value=[0]):
        value[0] += 1
        panel.rerun_from(index, nbiascontam=values[value[0] % len(values)])
        engine.append(panel.reduction.steps[index].elapsed)
        redraw.append(panel.image_view.render_seconds)

    totals = _timed(once, repeat)
    return {"total": statistics.median(totals), "engine": statistics.median(engine),
            "render": statistics.median(redraw)}


def bench_preview(path) -> dict:
    """Tile + render a full raw frame; size of what is sent to the browser."""
    frame = read_frame(path)
    view = ImageView(debounce=0)
    times = _timed(lambda: view.show(frame), 3)
    return {"seconds": statistics.median(times), "bytes": len(view.image_mark.image.value),
            "png_shape": view.preview.shape, "frame_shape": view.tiled.shape,
            "frame_mbytes": view.tiled.data.nbytes / 1e6}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="directory of raw tutorial files")
    parser.add_argument("--binning", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.data is None:
            start = time.perf_counter()
            data = make_tutorial_dataset(tmp / "playdata", binning=args.binning, seed=2,
                                         groups=("bias", "science"))
            print(f"simulated {args.binning}x{args.binning} data in {time.perf_counter() - start:.1f} s")
            directory = data.directory
        else:
            directory = args.data
        files = sorted(directory.glob("*.fits"))
        biases = select_data(files, ["BIAS"])
        science = select_data(files, [], ["CAL"])
        preview = bench_preview(science[0])
        print(f"preview of a raw frame {preview['frame_shape']} ({preview['frame_mbytes']:.0f} MB "
              f"float32): PNG {preview['png_shape']}, {preview['bytes'] / 1e3:.0f} kB, "
              f"tile+render {preview['seconds']:.2f} s")
        for label, inputs in (("1 bias (single-frame step)", biases[:1]),
                              (f"{len(biases)} biases", biases)):
            result = bench_rerun(inputs, tmp / "work", "overscanCorrect", [8, 12], args.repeat)
            verdict = "OK" if result["total"] < 1.0 or len(inputs) > 1 else "SLOW"
            print(f"re-run overscanCorrect + redraw, {label}: {result['total']:.2f} s "
                  f"(engine {result['engine']:.2f} s, render {result['render']:.2f} s) {verdict}")


if __name__ == "__main__":
    main()
