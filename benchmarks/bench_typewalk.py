"""Time typewalk's header reading + tags, and dataselect, over >= 1000 raw files.

The simulated tutorial data set (2x2 binning, 20 raw files, as the real
tutorial) is written once, then symlinked many times into a temporary
directory so that about 1000 files are walked::

    python benchmarks/bench_typewalk.py             # 50 copies = 1000 files
    python benchmarks/bench_typewalk.py --copies 100 --data existing/playdata
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

from gmoswidgets.cli.typewalk import typewalk
from gmoswidgets.data import make_tutorial_dataset
from gmoswidgets.select import select_data


def populate(source: Path, target: Path, copies: int) -> list:
    """Symlink every FITS file of ``source`` ``copies`` times into ``target``."""
    originals = sorted(source.glob("*.fits"))
    links = []
    for n in range(copies):
        for path in originals:
            link = target / f"{path.stem}_{n:04d}.fits"
            os.symlink(path.resolve(), link)
            links.append(str(link))
    return links


def timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50, help="links per raw file (default 50)")
    parser.add_argument("--data", help="an existing data set directory (default: simulate one)")
    parser.add_argument("--binning", type=int, default=2, help="binning of the simulated set")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_typewalk_") as tmp:
        tmp = Path(tmp)
        if args.data:
            source = Path(args.data)
        else:
            (_, seconds) = timed(make_tutorial_dataset, tmp / "playdata", binning=args.binning, seed=1)
            source = tmp / "playdata"
            print(f"simulated the {args.binning}x{args.binning} data set in {seconds:.1f} s")
        walk = tmp / "walk"
        walk.mkdir()
        files = populate(source, walk, args.copies)
        listing = io.StringIO()
        listed, seconds = timed(typewalk, str(walk), out=listing)
        assert len(listed) == len(files), "typewalk skipped files"
        print(f"typewalk:   {len(files)} files in {seconds:.2f} s = {len(files) / seconds:.0f} files/s")
        selected, seconds = timed(select_data, files, ["FLAT"], [], 'filter_name=="i"')
        print(f"dataselect: {len(files)} files in {seconds:.2f} s = {len(files) / seconds:.0f} files/s "
              f"({len(selected)} selected)")
        expr = '(object=="starfield" and exposure_time==10.) or ut_date>"2017-06-14"'
        selected, seconds = timed(select_data, files, [], ["CAL"], expr)
        print(f"dataselect --xtags CAL --expr ...: {seconds:.2f} s ({len(selected)} selected)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
