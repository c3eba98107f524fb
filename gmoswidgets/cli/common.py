"""Helpers shared by the command-line tools.

* :func:`run` wraps a tool's body: user errors become one line on stderr and
  exit code 1, never a traceback; run from the shell, the process then
  ends without the garbage collector's last pass (:func:`quick_exit`), and
  :func:`start_up` starts it without collector passes over the imports.
* :class:`Parser` is an ``argparse`` parser whose usage errors follow the
  same rule.
* :func:`expand_inputs` expands ``@list.txt`` arguments (one file per line,
  ``#`` comments), :func:`read_stdin_names` reads file names piped in, and
  :func:`fits_files` walks a directory for FITS files.
* :func:`report_problem` prints one line per file that is skipped;
  :func:`readable_files` keeps the inputs whose headers can be read.
"""
from __future__ import annotations

import argparse
import gc
import glob
import os
import re
import sys
from contextlib import contextmanager

from ..errors import FileProblem, GmosError

__all__ = ["UsageError", "Parser", "run", "quick_exit", "start_up", "split_list", "expand_inputs",
           "read_stdin_names", "fits_files", "report_problem", "readable_files",
           "check_list_target", "write_list", "FITS_NAME"]

#: File names typewalk looks at.
FITS_NAME = re.compile(r".*\.(fits|FITS|fit)$")
_WILDCARDS = re.compile(r"[*?\[]")


class UsageError(GmosError):
    """A bad command line: unknown option, missing argument, unreadable @list."""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises :class:`UsageError` instead of exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def run(prog: str, body, argv) -> int:
    """Run ``body(argv)`` and turn user errors into one line on stderr.

    Parameters
    ----------
    prog : str
        The tool's name, used as the prefix of error lines.
    body : callable
        ``body(argv) -> int``; the tool itself.
    argv : list of str or None
        Command-line arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        The exit code: ``body``'s, 1 on a user error, 130 on Ctrl-C.
    """
    from_shell, argv = argv is None, (sys.argv[1:] if argv is None else list(argv))
    try:
        return _run(prog, body, argv)
    finally:
        if from_shell:
            quick_exit()


def quick_exit() -> None:
    """Let the process end without a garbage-collector pass over every object left.

    For a command run from the shell, once its work is done: the objects
    alive now are frozen (:func:`gc.freeze`), so the interpreter's shutdown
    does not traverse them (0.1-0.2 s after importing numpy, astropy and
    scipy).  Files, logs and ``atexit`` handlers are closed and run as usual.
    """
    gc.freeze()


@contextmanager
def start_up(from_shell: bool):
    """The start-up of a command run from the shell: no cyclic garbage collection, then frozen.

    Importing numpy, astropy (and for a science reduction scipy, numba, sep) and
    reading the inputs' headers make a few hundred thousand objects that live as
    long as the process: the collector's passes over them while they are made
    cost ~0.03 s, and every later full collection traverses them again (0.05-0.2 s
    in a science reduction).  From the shell, the collector is paused while
    starting and what was made is then frozen (:func:`gc.freeze`): later
    collections see only the objects the work makes.  Called from Python (a
    notebook, the tests: ``from_shell`` False) nothing changes.
    """
    if not from_shell:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _run(prog: str, body, argv: list) -> int:
    try:
        return body(argv)
    except GmosError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except SystemExit as done:  # --help / --version
        return done.code if isinstance(done.code, int) else 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `dataselect ... | head -1`
        _silence_stdout()
        return 0


def _silence_stdout():
    """After a broken pipe, point stdout at /dev/null so the exit flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def split_list(values) -> list:
    """Split comma- and space-separated option values: ``['BIAS,CAL', 'RAW']`` -> 3 items."""
    out = []
    for value in values or ():
        out.extend(part for part in re.split(r"[,\s]+", value) if part)
    return out


def _read_list_file(name: str, seen: set) -> list:
    path = os.path.abspath(name)
    if path in seen:
        raise UsageError(f"@{name} includes itself")
    try:
        with open(name, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as err:
        raise UsageError(f"cannot read the list file @{name}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"@{name} is not a text list of file names") from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.extend(_expand_one(line, seen | {path}))
    return out


def _expand_one(arg: str, seen: set) -> list:
    if arg.startswith("@"):
        return _read_list_file(arg[1:], seen)
    if _WILDCARDS.search(arg) and not os.path.exists(arg):
        matches = sorted(glob.glob(arg))
        if matches:
            return matches
    return [arg]


def expand_inputs(args) -> list:
    """Expand ``@list.txt`` arguments and unexpanded wildcards, keeping order.

    Parameters
    ----------
    args : iterable of str
        File names, ``@file`` lists (one name per line, blank lines and
        ``#`` comments ignored, nested ``@`` allowed) or glob patterns the
        shell did not expand (e.g. quoted ``'*.fits'``).

    Returns
    -------
    list of str

    Raises
    ------
    UsageError
        If a list file cannot be read.
    """
    out = []
    for arg in args:
        out.extend(_expand_one(arg, set()))
    return out


def read_stdin_names(stream=None) -> list:
    """File names piped on stdin (one per line, or whitespace separated); [] for a terminal.

    Parameters
    ----------
    stream : file-like, optional
        Defaults to ``sys.stdin``.
    """
    stream = sys.stdin if stream is None else stream
    if stream is None or stream.closed:
        return []
    try:
        if stream.isatty():
            return []
        text = stream.read()
    except (OSError, ValueError):
        return []
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def fits_files(directory: str, recursive: bool = True):
    """Walk ``directory`` and yield ``(root, [file names])`` with FITS names, sorted.

    Parameters
    ----------
    directory : str
        Where to start.
    recursive : bool, optional
        Descend into sub-directories (default True).

    Raises
    ------
    UsageError
        If ``directory`` is not a directory.
    """
    if not os.path.isdir(directory):
        raise UsageError(f"{directory}: no such directory")
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        names = sorted(name for name in files if FITS_NAME.match(name))
        if names:
            yield root, names
        if not recursive:
            break


def report_problem(prog: str, problem) -> None:
    """Print one line on stderr for a file that is skipped."""
    print(f"{prog}: skipping {problem}", file=sys.stderr)


def readable_files(prog: str, names) -> list:
    """The names whose headers can be read; one line on stderr for each other one.

    Raises
    ------
    UsageError
        If none is readable.
    """
    from ..frame import read_headers
    good = []
    for name in names:
        try:
            read_headers(name)
        except FileProblem as problem:
            report_problem(prog, problem)
            continue
        good.append(name)
    if not good:
        raise UsageError("no readable input files")
    return good


def check_list_target(path: str, protect=()) -> None:
    """Refuse a list-file name that is, or looks like, a FITS input.

    Raises
    ------
    UsageError
        If ``path`` is one of ``protect`` or has a FITS file name.
    """
    target = os.path.realpath(path)
    if FITS_NAME.match(path) or target in {os.path.realpath(p) for p in protect}:
        raise UsageError(f"refusing to write the list to {path}: it is (or looks like) a FITS "
                         "input file; give a .txt name")


def write_list(path: str, names, protect=()) -> None:
    """Write ``names`` to the text file ``path``, one per line (for ``reduce @path``).

    Raises
    ------
    UsageError
        If ``path`` is refused by :func:`check_list_target` (``names`` are
        protected too) or cannot be written.
    """
    names = list(names)
    check_list_target(path, [*names, *protect])
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(f"{name}\n" for name in names)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
