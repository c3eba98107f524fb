"""``caldb``: the local calibration manager, as in the DRAGONS tutorial.

::

    caldb init                      # create the database named by ~/.geminidr/rsys.cfg
    caldb init -w                   # wipe it and start empty (files on disk are kept)
    caldb config                    # where the configuration and database are; counts
    caldb add N20170613S0180_bias.fits
    caldb list
    caldb remove N20170613S0180_bias.fits      # the entry only, never the file
    caldb explain N20170614S0201.fits processed_bias   # why each calibration was (not) chosen

``-c FILE`` reads another rsys.cfg; ``-d DIR`` uses a database directory
directly.  Errors are one line on stderr and exit code 1.
"""
from __future__ import annotations

import argparse
import sys

from ..caldb import CALTYPES, CalibrationService
from ..errors import FileProblem, GmosError
from .common import quick_exit

__all__ = ["main"]

PROG = "caldb"
_LIST_COLUMNS = ("File", "Type", "Instrument", "Detector", "Binning", "Read mode", "ROI",
                 "Filter", "Date", "Status", "Directory")


class _Usage(GmosError):
    """A bad command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(f"{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Local calibration manager: a database of processed "
                                            "calibrations for automatic association.")
    parser.add_argument("-c", "--config", metavar="RSYS_CFG",
                        help="configuration file to read (default: $GMOSWIDGETS_CONFIG, "
                             "else ~/.geminidr/rsys.cfg)")
    parser.add_argument("-d", "--database-dir", metavar="DIR",
                        help="use the database in DIR, ignoring the configuration file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    sub.add_parser("config", help="show the configuration and what the database holds")
    init = sub.add_parser("init", help="create the database")
    init.add_argument("-w", "--wipe", action="store_true",
                      help="delete the existing database first (calibration files are kept)")
    add = sub.add_parser("add", help="add processed calibrations (or update their entries)")
    add.add_argument("files", nargs="+", metavar="FILE")
    listing = sub.add_parser("list", help="list the calibrations in the database")
    listing.add_argument("-t", "--type", choices=CALTYPES, help="only this calibration type")
    remove = sub.add_parser("remove", help="remove entries (the files on disk are kept)")
    remove.add_argument("files", nargs="+", metavar="FILE")
    explain = sub.add_parser("explain", help="why each stored calibration is or is not "
                                             "chosen for a frame")
    explain.add_argument("frame", metavar="FRAME")
    explain.add_argument("caltype", choices=CALTYPES, metavar="CALTYPE",
                         help=f"one of {', '.join(CALTYPES)}")
    explain.add_argument("-v", "--verbose", action="store_true", help="show every rule's check")
    return parser


def _table(rows, header) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _config(svc, args) -> int:
    svc.config(verbose=True)
    return 0


def _init(svc, args) -> int:
    if args.wipe and svc.db.exists:
        status = svc.config(verbose=False)
        if status.problem:
            print(f"Deleting {svc.database_path} ({status.problem})")
        else:
            counts = ", ".join(f"{n} {c}" for c, n in sorted(status.counts.items())) or "empty"
            print(f"Deleting {svc.database_path}: {sum(status.counts.values())} entries "
                  f"({counts}). The calibration files themselves are kept.")
    print(svc.init(wipe=args.wipe))
    return 0


def _add(svc, args) -> int:
    failed = 0
    for name in args.files:
        try:
            print(svc.add_cal(name))
        except FileProblem as exc:
            print(f"{PROG}: cannot add {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _list(svc, args) -> int:
    entries = svc.list_files(args.type)
    if not entries:
        print(f"The calibration database {svc.database_path} holds no "
              f"{args.type or 'calibrations'}.")
        return 0
    rows = [(e.filename, e.caltype, e.props.instrument, e.props.detector, e.props.binning,
             e.props.read_mode, e.props.roi, e.props.filter_name,
             f"{e.props.ut_datetime:%Y-%m-%d %H:%M:%S}", "MISSING" if e.missing else "ok",
             e.path.parent) for e in entries]
    print(_table(rows, _LIST_COLUMNS))
    missing = sum(1 for e in entries if e.missing)
    if missing:
        print(f"\n{missing} file(s) MISSING from disk: restore them or drop their entries "
              f"with: caldb remove FILE")
    return 0


def _remove(svc, args) -> int:
    failed = 0
    for name in args.files:
        try:
            entry = svc.remove_cal(name)
        except GmosError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"removed {entry.caltype} {entry.filename} from the database "
              f"(the file {entry.path} is not deleted)")
    return 1 if failed else 0


def _explain(svc, args) -> int:
    reports = svc.explain(args.frame, args.caltype)
    if not reports:
        print(f"No {args.caltype} in the calibration database {svc.database_path}.")
        return 0
    print(f"{args.caltype} for {args.frame}:")
    for report in reports:
        mark = "CHOSEN" if report.chosen else ("match" if report.matches else "no")
        print(f"  {mark:<6}  {report.filename}: {'; '.join(report.reasons)}")
        if args.verbose:
            for name, ok, detail in report.checks:
                print(f"            [{'ok' if ok else 'FAIL'}] {detail}")
    return 0


_COMMANDS = {"config": _config, "init": _init, "add": _add, "list": _list, "remove": _remove,
             "explain": _explain}


def main(argv=None) -> int:
    """Run ``caldb``; returns the exit code (0 ok, 1 error)."""
    try:
        return _main(argv)
    finally:
        if argv is None:      # from the shell
            quick_exit()


def _main(argv) -> int:
    try:
        args = _parser().parse_args(argv)
        svc = CalibrationService(config_file=args.config, database_dir=args.database_dir)
        try:
            return _COMMANDS[args.command](svc, args)
        finally:
            svc.close()
    except GmosError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
