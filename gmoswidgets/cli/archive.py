"""``gmos-archive``: search the Gemini Observatory Archive, find calibrations, download files.

::

    gmos-archive search --program GN-2017A-SV-151 --date 20170614 --obsclass science --filter i
    gmos-archive calibrations N20170614S0201.fits --types bias,flat
    gmos-archive get --program GN-2017A-SV-151 --date 20170614 --obsclass science --filter i \\
        --calibrations bias,flat -d playdata -o sci.txt    # also writes sci_bias.txt, sci_flat.txt
    reduce @sci_bias.txt

The archive is ``--server URL``, else ``$GMOSWIDGETS_ARCHIVE_URL``, else
https://archive.gemini.edu.  Proprietary data need your archive session
cookie (``gemini_archive_session``, from your browser after logging in):
put its value in ``$GEMINI_ARCHIVE_COOKIE``, or in a file given with
``--cookie-file`` (not on the command line, where other users could see it).
Problems (a truncated result, a file that failed, a calibration type not
found) are one line each on stderr; the exit code is 1 if any file failed.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..archive import (ARCHIVE_URL_ENV, COOKIE_ENV, PLAYDATA, calibrations_for, download_files,
                       row_tags, search)
from ..gmos.tags import format_tags
from ..logutils import get_logger
from .common import Parser, UsageError, check_list_target, expand_inputs, run, split_list, write_list

__all__ = ["main"]

PROG = "gmos-archive"
#: Columns printed by ``search`` (the archive's names) and their headings.
_SHOWN = (("name", "file"), ("data_label", "data label"), ("object", "object"),
          ("filter_name", "filter"), ("exposure_time", "exptime"), ("detector_binning", "bin"),
          ("detector_roi_setting", "roi"), ("ut_datetime", "UT"), ("file_size", "size"),
          ("qa_state", "QA"))


def _common(parser) -> None:
    parser.add_argument("--server", metavar="URL",
                        help=f"the archive's base URL (default ${ARCHIVE_URL_ENV}, else the real one)")
    parser.add_argument("--cookie-file", metavar="PATH",
                        help=f"a file holding your archive session cookie (default ${COOKIE_ENV})")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S",
                        help="seconds to wait for the network (default 60)")


def _criteria(parser) -> None:
    group = parser.add_argument_group("search criteria (combined with AND)")
    group.add_argument("--program", help="program, observation ID or data label")
    group.add_argument("--date", help="UTC date or range: 20170614, 20170601-20170630")
    group.add_argument("--object", help="object name (case-insensitive; * as a wildcard)")
    group.add_argument("--filter", help="filter: i, r, g, ...")
    group.add_argument("--obsclass", help="science, dayCal, partnerCal, ...")
    group.add_argument("--obstype", help="OBJECT, BIAS, FLAT, ...")
    group.add_argument("--instrument", help="GMOS-N, GMOS-S or GMOS")
    group.add_argument("--binning", help="1x1, 2x2, 4x4")
    group.add_argument("--orderby", help="the archive's ordering, e.g. ut_datetime_desc")


def _parser() -> Parser:
    parser = Parser(prog=PROG, description="Search the Gemini Observatory Archive, find the "
                                           "calibrations of files, download them.",
                    epilog=f"The archive: --server URL, else ${ARCHIVE_URL_ENV}, else "
                           "https://archive.gemini.edu. Proprietary data: put the value of "
                           "your archive session cookie (gemini_archive_session, from your "
                           f"browser after logging in) in ${COOKIE_ENV}, or in a file given "
                           "with --cookie-file.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=Parser)
    found = commands.add_parser("search", help="list the files matching criteria")
    _criteria(found)
    found.add_argument("--tags", action="store_true", help="also show the tags of each file")
    found.add_argument("-o", "--output", metavar="LIST", help="write the file names to this list")
    _common(found)
    cals = commands.add_parser("calibrations", help="the calibrations the archive matches to files")
    cals.add_argument("files", nargs="+", metavar="FILE", help="archive file names or @lists")
    _cal_options(cals)
    cals.add_argument("-o", "--output", metavar="LIST",
                      help="write the calibration names to this list")
    _common(cals)
    get = commands.add_parser("get", help="download files (by name, or all matching criteria)")
    get.add_argument("files", nargs="*", metavar="FILE", help="archive file names or @lists")
    _criteria(get)
    _cal_options(get, flag="--calibrations", default=None)
    get.add_argument("-d", "--directory", default=PLAYDATA, metavar="DIR",
                     help=f"where the FITS files go (default {PLAYDATA})")
    get.add_argument("-o", "--output", metavar="LIST",
                     help="write the downloaded files to this list for reduce (and, with "
                          "--calibrations, one LIST_<type> per calibration type)")
    _common(get)
    return parser


def _cal_options(parser, *, flag="--types", default="bias,flat") -> None:
    suffix = f" (default {default})" if default else ""
    parser.add_argument(flag, dest="types", default=default, metavar="T1,T2",
                        help="calibration types: bias, flat, processed_bias, processed_flat, "
                             f"processed_fringe, processed_bpm, ...{suffix}")
    parser.add_argument("--processed", action="store_true",
                        help="ask for the processed kind of each type (bias -> processed_bias)")
    parser.add_argument("--count", type=int, metavar="N",
                        help="keep the best N matches per file and type (the archive gives up "
                             "to 50 biases and 20 flats)")


def _cookie(args) -> str | None:
    if not args.cookie_file:
        return None
    try:
        return Path(args.cookie_file).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise UsageError(f"cannot read the cookie file {args.cookie_file}: {err.strerror}") from None


def _criteria_of(args) -> dict:
    return {key: getattr(args, key) for key in ("program", "date", "object", "filter", "obsclass",
                                                "obstype", "instrument", "binning")}


def _search(args, cookie):
    criteria = _criteria_of(args)
    if not any(criteria.values()):
        raise UsageError("give at least one criterion (--date, --program, --object, ...): an "
                         "empty search would list the archive's first 500 files")
    return search(**criteria, orderby=args.orderby, server=args.server, cookie=cookie,
                  timeout=args.timeout)


def _text(value) -> str:
    import numpy as np
    return "--" if np.ma.is_masked(value) else str(value)


def _print_table(table, *, tags: bool) -> None:
    rows = [[heading for _, heading in _SHOWN] + (["tags"] if tags else [])]
    for row in table:
        rows.append([_text(row[key]) if key in table.colnames else "--" for key, _ in _SHOWN]
                    + ([format_tags(row_tags(row))] if tags else []))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _cmd_search(args, cookie) -> int:
    if args.output:
        check_list_target(args.output)
    table = _search(args, cookie)
    _print_table(table, tags=args.tags)
    print(f"{len(table)} file(s)", file=sys.stderr)
    if args.output:
        write_list(args.output, table["name"])
    return 0


def _names(files) -> list:
    return [Path(name).name for name in expand_inputs(files)]


def _calibrations(names, args, cookie):
    return calibrations_for(names, caltypes=split_list([args.types]), processed=args.processed,
                            count=args.count, server=args.server, cookie=cookie,
                            timeout=args.timeout)


def _cmd_calibrations(args, cookie) -> int:
    if args.output:
        check_list_target(args.output)
    table = _calibrations(_names(args.files), args, cookie)
    width = max([len("science"), *(len(s) for s in table["science"])])
    print(f"{'science'.ljust(width)}  {'type'.ljust(16)}  rank  calibration")
    for row in table:
        print(f"{row['science'].ljust(width)}  {row['caltype'].ljust(16)}  {row['rank']:>4}  "
              f"{row['name']}")
    if args.output:
        write_list(args.output, dict.fromkeys(table["name"]))
    return 0


def _list_path(output: str, caltype: str) -> str:
    path = Path(output)
    return str(path.with_name(f"{path.stem}_{caltype}{path.suffix}"))


def _fetch(table, args, cookie, label: str) -> list:
    result = download_files(table, args.directory, server=args.server, cookie=cookie,
                            timeout=args.timeout, progress=None if sys.stderr.isatty() else False)
    print(f"{PROG}: {label}: {len(result.fetched)} downloaded, "
          f"{len(result.paths) - len(result.fetched)} already in {args.directory}, "
          f"{len(result.failed)} failed", file=sys.stderr)
    return result


def _cmd_get(args, cookie) -> int:
    from astropy.table import vstack
    if args.files and any(_criteria_of(args).values()):
        raise UsageError("give file names or search criteria, not both")
    if args.output:
        check_list_target(args.output)
    if args.files:
        tables = [search(file=name, server=args.server, cookie=cookie, timeout=args.timeout)
                  for name in _names(args.files)]
        missing = [name for name, t in zip(_names(args.files), tables) if len(t) == 0]
        for name in missing:
            print(f"{PROG}: {name}: not in the archive", file=sys.stderr)
        found = [t for t in tables if len(t)]
        table = vstack(found, metadata_conflicts="silent") if found else None
    else:
        table, missing = _search(args, cookie), []
    if table is None or len(table) == 0:
        print(f"{PROG}: nothing to download", file=sys.stderr)
        return 1
    result = _fetch(table, args, cookie, "files")
    failed = len(result.failed) + len(missing)
    if args.output:
        write_list(args.output, [str(p) for p in result.paths])
    if args.types:
        cals = _calibrations(list(table["name"]), args, cookie)
        for caltype in cals.meta["caltypes"]:
            subset = cals[cals["caltype"] == caltype] if len(cals) else cals
            fetched = _fetch(subset, args, cookie, caltype)
            failed += len(fetched.failed)
            if args.output:
                write_list(_list_path(args.output, caltype), [str(p) for p in fetched.paths])
    return 1 if failed else 0


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    cookie = _cookie(args)
    # the archive module's notes (truncated results, files that failed) as "gmos-archive: ..." lines
    logger, handler = get_logger("archive"), logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        return {"search": _cmd_search, "calibrations": _cmd_calibrations, "get": _cmd_get}[
            args.command](args, cookie)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def main(argv=None) -> int:
    """Console entry point: ``gmos-archive {search,calibrations,get} ...``."""
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
