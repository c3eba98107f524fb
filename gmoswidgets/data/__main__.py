"""Command line: ``python -m gmoswidgets.data make-tutorial DIR [options]``."""
from __future__ import annotations

import argparse
import sys
import time

from ..errors import GmosError
from .headers import FILTERS
from .instrument import DETECTORS, GAIN_SETTINGS, INSTRUMENTS, READ_SPEEDS
from .layout import ROI_NAMES
from .simulate import make_tutorial_dataset


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gmoswidgets.data",
                                     description="Simulated GMOS imaging data with ground truth.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-tutorial", help="write the DRAGONS GMOS imaging tutorial data set")
    make.add_argument("directory", help="output directory (created if needed)")
    make.add_argument("--instrument", choices=INSTRUMENTS, default="GMOS-N")
    make.add_argument("--detector", choices=tuple(DETECTORS), default="hamamatsu")
    make.add_argument("--date", default=None,
                      help="science night YYYY-MM-DD (picks the detector set and DRAGONS' dated tables)")
    make.add_argument("--read-speed", choices=READ_SPEEDS, default="slow")
    make.add_argument("--gain-setting", choices=GAIN_SETTINGS, default="low")
    make.add_argument("--binning", type=int, choices=(1, 2, 4), default=2)
    make.add_argument("--seed", type=int, default=1)
    make.add_argument("--filter", dest="filter_name", choices=FILTERS, default="i")
    make.add_argument("--roi", choices=ROI_NAMES, default="Full Frame")
    make.add_argument("--fringe", action=argparse.BooleanOptionalAction, default=None,
                      help="add fringes to the science frames (default: where DRAGONS corrects "
                           "them: z, and i on EEV/e2vDD)")
    make.add_argument("--groups", nargs="+", choices=("bias", "flat", "science"),
                      default=["bias", "flat", "science"])
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        ds = make_tutorial_dataset(args.directory, instrument=args.instrument, detector=args.detector,
                                   date=args.date, read_speed=args.read_speed,
                                   gain_setting=args.gain_setting, binning=args.binning, seed=args.seed,
                                   filter_name=args.filter_name, fringe=args.fringe, roi=args.roi,
                                   groups=tuple(args.groups))
    except GmosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for label, files in (("bias", ds.bias), ("flat", ds.flat), ("science", ds.science)):
        for path in files:
            print(f"{label:8s} {path}")
    print(f"truth    {ds.directory / 'truth'}")
    print(f"wrote {len(ds.files)} files in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
