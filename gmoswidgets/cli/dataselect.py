"""``dataselect``: select files by tags and a descriptor expression.

As in the DRAGONS tutorial::

    dataselect --tags BIAS ../playdata/*.fits -o list_of_bias.txt
    dataselect --tags FLAT --expr 'filter_name=="i"' ../playdata/*.fits -o list_of_flats.txt
    dataselect --xtags CAL ../playdata/*.fits -o list_of_science.txt
    dataselect --expr 'observation_class=="science"' ../playdata/*.fits | showd -d object

The selected names are printed one per line (so they pipe into ``showd``),
or written to the ``-o`` list file for ``reduce @list``.  Inputs may be
``@list.txt`` files.  Unreadable files get one line on stderr and are
skipped.
"""
from __future__ import annotations

import sys

from ..select import expr_parser, select_data
from .common import (Parser, UsageError, check_list_target, expand_inputs, report_problem, run,
                     split_list, write_list)

__all__ = ["main"]

PROG = "dataselect"


def _parser() -> Parser:
    parser = Parser(prog=PROG, description="Select files by tags and by an expression on "
                                           "descriptors; print them or write a list file.")
    parser.add_argument("inputs", nargs="+", metavar="FILE",
                        help="FITS files, or @list.txt files of names")
    parser.add_argument("--tags", "-t", action="append", default=[], metavar="T1,T2",
                        help="comma-separated tags that must all be present, e.g. FLAT")
    parser.add_argument("--xtags", action="append", default=[], metavar="T1,T2",
                        help="comma-separated tags that exclude a file, e.g. CAL")
    parser.add_argument("--expr", default="True", metavar="EXPRESSION",
                        help="selection expression, e.g. 'filter_name==\"i\" and exposure_time==10.'")
    parser.add_argument("-o", "--output", metavar="LIST",
                        help="write the selected names to this file instead of printing them")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="with -o, also print the selected names")
    return parser


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    expression = expr_parser(args.expr)          # refuse a bad expression before reading files
    inputs = expand_inputs(args.inputs)
    if not inputs:
        raise UsageError("no input files")
    if args.output:
        check_list_target(args.output, inputs)
    problems = []
    selected = select_data(inputs, split_list(args.tags), split_list(args.xtags), expression,
                           problems=problems)
    for problem in problems:
        report_problem(PROG, problem)
    if args.output:
        write_list(args.output, selected, protect=inputs)
    if args.verbose or not args.output:
        for name in selected:
            print(name)
    return 0


def main(argv=None) -> int:
    """Console entry point: ``dataselect [--tags T,..] [--xtags T,..] [--expr E] FILE.. [-o LIST]``."""
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
