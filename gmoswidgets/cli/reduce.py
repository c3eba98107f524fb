"""``reduce``: run a recipe on a list of files, as DRAGONS' ``reduce`` does.

::

    reduce @list_of_bias.txt
    reduce @list_of_science.txt -r makeProcessedFringe
    reduce @sci.lis -p stackFrames:scale=True --suffix newsuffix
    reduce @sci.lis --user_cal processed_bias:N20170613S0180_bias.fits

Progress is shown with a tqdm bar; every message also goes to a log file
(``reduce.log`` in the current directory unless ``--logfile`` is given).
"""
from __future__ import annotations

import os
import sys
from functools import partial
from typing import TYPE_CHECKING

from ..checksums import start_md5sums
from ..errors import CalibrationNotFoundError, FileProblem, GmosError
from ..executor import SCHEDULER_ENV, get_executor
from ..heaptrim import keep_freed_memory
from ..logutils import config as configure_logging
from ..logutils import get_logger
from ..preload import start_imports
from ..storage import KEEP_MODES
from ..validate import check_writable_file
from .common import Parser, UsageError, expand_inputs, readable_files, run, start_up

if TYPE_CHECKING:  # imported once the inputs' checksums are started (they overlap the import)
    from ..reduction import Reduction

__all__ = ["main", "build_parser"]

PROG = "reduce"
#: How to make each kind of processed calibration, added to a missing-calibration error.
CALIBRATION_HINTS = {
    "processed_bias": "make one with `reduce @list_of_bias.txt` then `caldb add N..._bias.fits`",
    "processed_flat": "make one with `reduce @list_of_flats.txt` then `caldb add N..._flat.fits`",
    "processed_fringe": ("make one with `reduce @list_of_science.txt -r makeProcessedFringe` "
                         "then `caldb add N..._fringe.fits`"),
}


def calibration_hint(error: CalibrationNotFoundError) -> str:
    """The error's message with how to make or give the missing calibration."""
    if not error.caltype:
        return str(error)
    hint = CALIBRATION_HINTS.get(error.caltype, "make one")
    return f"{error}. To fix: {hint}, or give one with --user_cal {error.caltype}:FILE"


def build_parser() -> Parser:
    """The ``reduce`` argument parser."""
    parser = Parser(prog=PROG, description="Reduce GMOS imaging data with a recipe of primitives.")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="input files, or @list files (one name per line)")
    parser.add_argument("-r", "--recipe", help="recipe name (default: chosen from the tags of "
                                               "the first input; see showrecipes)")
    parser.add_argument("-p", "--param", nargs="+", action="extend", default=[],
                        metavar="PRIMITIVE:PARAM=VALUE",
                        help="set a primitive parameter (see showpars), "
                             "e.g. stackFrames:scale=True")
    parser.add_argument("--user_cal", nargs="+", action="extend", default=[],
                        metavar="TYPE:FILE",
                        help="use this processed calibration, e.g. processed_bias:FILE")
    parser.add_argument("--suffix", help="suffix of the final output instead of the recipe's")
    parser.add_argument("--logfile", default="reduce.log",
                        help="log file (default: reduce.log in the current directory)")
    parser.add_argument("--keep", choices=KEEP_MODES, default="last",
                        help="intermediate results kept: only the last (default), all in memory, "
                             "spilled to a temporary directory, or streamed (frames on disk, "
                             "per-frame steps two frames at a time: for many frames)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run the per-frame work on this Dask scheduler (tcp://HOST:PORT), "
                             f"or sync, threads, processes (default: ${SCHEDULER_ENV}, else "
                             "threads)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return parser


def _split_stray_files(args) -> None:
    """Move words that are input files, not options, out of -p / --user_cal lists.

    ``-p`` and ``--user_cal`` take several values, so ``reduce -p a:b=1 @list``
    would otherwise read ``@list`` as a parameter.
    """
    params, cals = [], []
    for word in args.param:
        (params if "=" in word else args.files).append(word)
    for word in args.user_cal:
        stray = word.startswith("@") or (":" not in word and os.path.isfile(word))
        (args.files if stray else cals).append(word)
    args.param, args.user_cal = params, cals


class _ProgressBar:
    """A tqdm bar over the steps of a reduction, fed by its events."""

    def __init__(self, reduction: Reduction, enabled: bool = True):
        from tqdm import tqdm
        self.bar = tqdm(total=len(reduction.steps), unit="step", disable=not enabled,
                        bar_format="{desc:<30.30}{percentage:3.0f}%|{bar}| "
                                   "{n:.1f}/{total} [{elapsed}<{remaining}]")
        self.labels = [step.label for step in reduction.steps]

    def __call__(self, event) -> None:
        if event.step_index is None:
            return
        if event.kind == "step_started":
            self.bar.set_description_str(self.labels[event.step_index], refresh=False)
            self._move(event.step_index)
        elif event.kind == "progress" and event.fraction is not None:
            self._move(event.step_index + event.fraction)
        elif event.kind == "step_finished":
            self._move(event.step_index + 1)

    def _move(self, position: float) -> None:
        """Move forward to ``position`` steps (per-frame steps streamed together report in
        turn: the bar follows the furthest); tqdm limits how often it redraws."""
        if position > self.bar.n:
            self.bar.update(position - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _reduction(files, args) -> Reduction:
    """The reduction of ``files`` as the command line asks."""
    from ..caldb.lookup import default_service
    from ..reduction import Reduction
    return Reduction(files, recipe=args.recipe, uparms=args.param,
                     user_cals=args.user_cal or None, calservice=default_service(),
                     suffix=args.suffix, keep=args.keep)


def _start(argv):
    """Parse ``argv``, set up the log and read the inputs: ``(args, log, reduction)``."""
    args = build_parser().parse_args(argv)
    _split_stray_files(args)
    files = expand_inputs(args.files)
    if not files:
        raise UsageError("no input files (give FILE ... or @list.txt)")
    check_writable_file(args.logfile)
    start_md5sums(files)    # for PROVENANCE, on another thread while the imports run
    log = configure_logging(file_name=args.logfile)
    get_logger("reduce").info("reduce " + " ".join(argv))
    try:     # the usual case, every input readable: their headers are read once, here
        reduction = _reduction(files, args)
    except FileProblem:
        readable = readable_files(PROG, files)      # one line for each file skipped
        if len(readable) == len(files):
            raise
        reduction = _reduction(readable, args)
    reduction.executor = get_executor(args.scheduler)  # once the inputs are fine
    from ..primitives import deferred_imports
    start_imports(deferred_imports(step.primitive for step in reduction.steps))  # while steps run
    log.info("Recipe %s on %d file(s), per-frame work on %r", reduction.recipe.name,
             len(reduction.files), reduction.executor)
    return args, log, reduction


def _reduce(argv, *, from_shell: bool = False) -> int:
    if from_shell:          # the process ends with the reduction: it keeps what it frees
        keep_freed_memory()
    with start_up(from_shell):     # imports and set-up without garbage-collector passes
        args, log, reduction = _start(argv)
        executor = reduction.executor
        bar = _ProgressBar(reduction, enabled=not args.no_progress)
        reduction.subscribe(bar)
    try:
        outputs = reduction.run_all()
    except CalibrationNotFoundError as exc:
        raise GmosError(calibration_hint(exc)) from exc
    except GmosError:
        raise
    except Exception as exc:
        from ..reduction import FAILED
        failed = next((s.label for s in reduction.steps if s.status == FAILED), "the reduction")
        raise GmosError(f"{failed} failed: {type(exc).__name__}: {exc} "
                        f"(traceback in {args.logfile})") from exc
    finally:
        bar.close()
        executor.close()
        log.debug(reduction.summary())
    for name in outputs:
        log.info("Output: %s", name)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``reduce`` command."""
    return run(PROG, partial(_reduce, from_shell=argv is None), argv)


if __name__ == "__main__":
    sys.exit(main())
