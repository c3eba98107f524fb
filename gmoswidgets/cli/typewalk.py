"""``typewalk``: list the FITS files of a directory tree with their tags.

Output as DRAGONS prints it::

    directory:  /data/workspace/gmosimg_tutorial/playdata
     N20170613S0180.fits ............... (AT_ZENITH) (AZEL_TARGET) (BIAS) ...
    Done DataSpider.typewalk(..)

Files that are not usable GMOS FITS files get one line on stderr and are
skipped.
"""
from __future__ import annotations

import os
import sys

from ..errors import FileProblem
from ..fitsheader import header_values
from ..gmos.tags import format_tags, tags_of
from ..select import selection_tags
from .common import Parser, UsageError, fits_files, report_problem, run, split_list, write_list

__all__ = ["main", "typewalk", "format_line"]

PROG = "typewalk"
#: DRAGONS pads "     NAME " with dots to the next multiple of this column.
_PAD_COLUMN = 40
_DRAGONS_INDENT = 5


def format_line(name: str, tags) -> str:
    """One typewalk line: `` NAME ............... (TAG) (TAG) ...`` (DRAGONS' dot padding)."""
    ndots = _PAD_COLUMN - (_DRAGONS_INDENT + len(name) + 1) % _PAD_COLUMN
    return f" {name} {'.' * ndots} {format_tags(tags)}"


def typewalk(directory=".", tags=(), xtags=(), recursive=True, out=None, err_prog=PROG):
    """Walk ``directory`` and print each GMOS FITS file with its tags.

    Parameters
    ----------
    directory : str, optional
        Top of the tree (default: the current directory).
    tags : iterable of str, optional
        Only list files that have all of these tags.
    xtags : iterable of str, optional
        Do not list files that have any of these tags.
    recursive : bool, optional
        Descend into sub-directories (default True).
    out : file-like, optional
        Where the listing goes (default stdout).
    err_prog : str, optional
        Prefix of the problem lines printed on stderr.

    Returns
    -------
    list of str
        Paths of the files listed.
    """
    out = sys.stdout if out is None else out
    required, excluded = set(tags), set(xtags)
    listed = []
    for root, names in fits_files(directory, recursive):
        shown_root = False
        for name in names:
            path = os.path.join(root, name)
            try:
                headers = header_values(path)
                file_tags = selection_tags(headers) if required or excluded else tags_of(headers)
            except FileProblem as problem:
                report_problem(err_prog, problem)
                continue
            if not required <= file_tags or excluded & file_tags:
                continue
            if not shown_root:
                print(f"\ndirectory:  {os.path.abspath(root)}", file=out)
                shown_root = True
            print(format_line(name, file_tags), file=out)
            listed.append(path)
    return listed


def _parser() -> Parser:
    parser = Parser(prog=PROG, description="List the FITS files of a directory tree with "
                                           "their DRAGONS tags.")
    parser.add_argument("-d", "--dir", default=".", help="directory to walk (default: .)")
    parser.add_argument("-n", "--norecurse", action="store_true",
                        help="do not descend into sub-directories")
    parser.add_argument("--tags", nargs="+", default=[], metavar="TAG",
                        help="only list files with all these tags (space or comma separated)")
    parser.add_argument("--xtags", nargs="+", default=[], metavar="TAG",
                        help="do not list files with any of these tags")
    parser.add_argument("-o", "--out", metavar="LIST",
                        help="also write the listed paths to this file, one per line")
    return parser


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    if not os.path.isdir(args.dir):
        raise UsageError(f"{args.dir}: no such directory")
    tags = [t.upper() for t in split_list(args.tags)]
    xtags = [t.upper() for t in split_list(args.xtags)]
    listed = typewalk(args.dir, tags, xtags, not args.norecurse)
    if args.out:
        write_list(args.out, listed)
    print("Done DataSpider.typewalk(..)")
    return 0


def main(argv=None) -> int:
    """Console entry point: ``typewalk [-d DIR] [-n] [--tags T ..] [--xtags T ..] [-o LIST]``."""
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
