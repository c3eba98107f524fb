"""``showd``: show descriptor values of files as a table.

As in the DRAGONS tutorial::

    $ dataselect --expr 'observation_class=="science"' ../playdata/*.fits | showd -d object,exposure_time
    -----------------------------------------------------------
    filename                             object   exposure_time
    -----------------------------------------------------------
    ../playdata/N20170614S0201.fits   starfield            10.0

Columns are as wide as their widest entry and separated by three spaces;
the file name is left-justified, values right-justified.  File names are
read from stdin when it is piped and no files are given.  A file that cannot
be read gets one line on stderr; a descriptor that fails on a file shows
``ERROR: <reason>`` in its cell.
"""
from __future__ import annotations

import csv
import sys

from ..errors import FileProblem
from ..fitsheader import header_values
from ..gmos.descriptors import DESCRIPTORS, descriptor_names, descriptor_value
from ..sections import Section
from .common import Parser, UsageError, expand_inputs, read_stdin_names, report_problem, run, split_list

__all__ = ["main", "descriptor_table", "format_table", "format_value"]

PROG = "showd"
_GAP = "   "


def format_value(value) -> str:
    """Text of a descriptor value in a table cell (sections in FITS form, lists comma-joined)."""
    if isinstance(value, Section):
        return value.to_string()
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def descriptor_table(inputs, descriptors, problems=None) -> list:
    """Rows ``[filename, value, ...]`` (header row first) for the readable inputs.

    Parameters
    ----------
    inputs : iterable of str
        File names, shown as given.
    descriptors : list of str
        Descriptor names (validated by the caller).
    problems : list, optional
        Receives a :class:`~gmoswidgets.errors.FileProblem` per unreadable file.

    Returns
    -------
    list of list of str
    """
    rows = [["filename", *descriptors]]
    for name in inputs:
        try:
            headers = header_values(name)
        except FileProblem as problem:
            if problems is not None:
                problems.append(problem)
            continue
        row = [str(name)]
        for desc in descriptors:
            try:
                row.append(format_value(descriptor_value(headers, desc)))
            except FileProblem as problem:
                row.append(f"ERROR: {problem.problem}")
            except (ValueError, TypeError) as exc:   # a malformed keyword value
                row.append(f"ERROR: {exc}")
        rows.append(row)
    return rows


def format_table(rows) -> str:
    """Format rows as DRAGONS' showd does: dashed header, 3-space gaps, first column left."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    dash = "-" * (sum(widths) + len(_GAP) * (len(widths) - 1))

    def line(row):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return _GAP.join(cells)

    return "\n".join([dash, line(rows[0]), dash, *(line(row) for row in rows[1:])])


def _parser() -> Parser:
    parser = Parser(prog=PROG, description="Show descriptor values of FITS files as a table; "
                                           "file names may be piped on stdin.")
    parser.add_argument("inputs", nargs="*", metavar="FILE",
                        help="FITS files or @list.txt files (default: names read from stdin)")
    parser.add_argument("-d", "--descriptors", required=True, action="append", metavar="D1,D2",
                        help="comma-separated descriptor names, e.g. object,exposure_time")
    parser.add_argument("--csv", action="store_true", help="print comma-separated values (CSV, quoted where needed) instead")
    return parser


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    descriptors = split_list(args.descriptors)
    unknown = [d for d in descriptors if d not in DESCRIPTORS]
    if unknown:
        raise UsageError(f"unknown descriptor(s) {', '.join(unknown)}; valid descriptors are: "
                         + ", ".join(descriptor_names()))
    inputs = expand_inputs(args.inputs) if args.inputs else read_stdin_names()
    if not inputs:
        raise UsageError("no input files (give file names or pipe them in, e.g. "
                         "dataselect ... | showd -d object)")
    problems = []
    rows = descriptor_table(inputs, descriptors, problems)
    for problem in problems:
        report_problem(PROG, problem)
    if args.csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
    else:
        print(format_table(rows))
    return 1 if len(rows) == 1 else 0


def main(argv=None) -> int:
    """Console entry point: ``showd -d desc1,desc2 [FILE ...]`` (or names on stdin)."""
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
