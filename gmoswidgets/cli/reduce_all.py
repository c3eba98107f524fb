"""``reduce-all``: reduce every raw file of a directory, calibrations first.

::

    reduce-all ../playdata/
    reduce-all /data/GN-2017A-SV-151/ --scheduler tcp://10.0.0.5:8786 -o products/

Biases, flats, fringe frames and science frames are grouped as calibration
association matches them, reduced in that order (as Dask tasks when a
scheduler is named, else on local threads), every new calibration is added
to the calibration database (``caldb init`` first), and a table of the
groups, their products and what could not be reduced (and why) is printed.
Exit code 0 when every group was reduced, 1 otherwise.
"""
from __future__ import annotations

import sys

from ..batch import Batch
from ..errors import GmosError
from ..executor import SCHEDULER_ENV
from ..logutils import config as configure_logging
from .common import Parser, run

__all__ = ["main", "build_parser"]

PROG = "reduce-all"


def build_parser() -> Parser:
    """The ``reduce-all`` argument parser."""
    parser = Parser(prog=PROG, description="Reduce every raw GMOS imaging file of a directory: "
                                           "biases, flats, fringe frames, then science.")
    parser.add_argument("directory", metavar="DIR", help="directory of raw files (*.fits)")
    parser.add_argument("-o", "--workdir", default=None,
                        help="where the products go (default: the current directory)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="Dask scheduler address (tcp://HOST:PORT), or sync, threads, "
                             f"processes (default: ${SCHEDULER_ENV}, else threads)")
    parser.add_argument("-c", "--config", metavar="RSYS_CFG",
                        help="calibration configuration file (default: $GMOSWIDGETS_CONFIG, "
                             "else ~/.geminidr/rsys.cfg)")
    parser.add_argument("-d", "--database-dir", metavar="DIR",
                        help="use the calibration database in DIR, ignoring the configuration")
    parser.add_argument("--logfile", default="reduce-all.log",
                        help="log file (default: reduce-all.log in the current directory)")
    return parser


def _reduce_all(argv) -> int:
    args = build_parser().parse_args(argv)
    service = None
    if args.config or args.database_dir:
        from ..caldb import CalibrationService
        service = CalibrationService(args.config, args.database_dir)
    configure_logging(file_name=args.logfile)
    batch = Batch(args.directory, workdir=args.workdir, scheduler=args.scheduler,
                  service=service)
    if not batch.groups:
        ignored = "".join(f"; {name}: {why}" for name, why in batch.ignored)
        raise GmosError(f"{args.directory}: no raw bias, flat or science file to reduce{ignored}")
    table = batch.run()
    print()
    table.pprint_all()
    for name, why in table.meta["ignored"]:
        print(f"ignored {name}: {why}")
    return 0 if all(status == "done" for status in table["status"]) else 1


def main(argv=None) -> int:
    """Entry point of the ``reduce-all`` command."""
    return run(PROG, _reduce_all, argv)


if __name__ == "__main__":
    sys.exit(main())
