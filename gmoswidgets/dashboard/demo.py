"""``make demo``: the tutorial's dataset, file lists and the Voilà dashboard.

Creates the embedded (simulated) dataset if it is absent, runs the seed
tutorial's "Check files" and "Create File lists" sections in
``DATA/playground`` (typewalk, dataselect, showd), then serves
``notebooks/dashboard.ipynb`` with Voilà on 127.0.0.1 and prints its URL
until Ctrl-C.  ``--no-serve`` stops after the file lists.

The notebooks find their data with
:func:`gmoswidgets.data.tutorial.tutorial_dirs`.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shlex
import signal
import socket
import sys
import threading
from pathlib import Path

from ..data.tutorial import ensure_dataset
from .server import DashboardServer, find_dashboard

__all__ = ["DEFAULT_PORT", "main", "run_file_lists", "serve"]

#: Port of the dashboard when it is free (Voilà's usual port), else any free port.
DEFAULT_PORT = 8866


def _banner(text: str) -> None:
    print(f"\n$ {text}", flush=True)


def run_file_lists(playground: Path) -> None:
    """Run the seed's 'Check files' and 'Create File lists' sections in ``playground``."""
    from ..cli import dataselect, showd, typewalk
    from ..select import select_data
    with _chdir(playground):
        files = sorted(glob.glob("../playdata/*.fits"))
        _banner("typewalk -d ../playdata/")
        typewalk.main(["-d", "../playdata/"])
        for args, out in ((["--tags", "BIAS"], "list_of_bias.txt"),
                          (["--tags", "FLAT", "--expr", 'filter_name=="i"'], "list_of_flats.txt"),
                          (["--xtags", "CAL"], "list_of_science.txt")):
            _banner(shlex.join(["dataselect", *args]) + f" ../playdata/*.fits -o {out}")
            dataselect.main(args + files + ["-o", out])
            print(f"{out}: {len(Path(out).read_text().split())} files")
        _banner("dataselect --expr 'observation_class==\"science\"' ../playdata/*.fits "
                "| showd -d object,exposure_time")
        science = select_data(files, expression='observation_class=="science"')
        showd.main(["-d", "object,exposure_time"] + science)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def serve(data_dir: Path, port: int | None = None, *, server=None, what: str = "The dashboard") -> int:
    """Serve the dashboard with Voilà until Ctrl-C (or SIGTERM); return the exit status.

    Parameters
    ----------
    data_dir : pathlib.Path
        The directory holding ``playdata`` (passed to the notebook as ``$GMOSWIDGETS_DATA``).
    port : int, optional
        Default: :data:`DEFAULT_PORT` if it is free, else any free port.
    server : DashboardServer, optional
        The server to run instead (e.g. JupyterLab, see ``gmoswidgets.dashboard.lab``).
    what : str
        What is served, for the messages.
    """
    if server is None:
        if port is None and _port_is_free(DEFAULT_PORT):
            port = DEFAULT_PORT
        server = DashboardServer(find_dashboard(), data_dir, port=port)
    print(f"\nStarting {server.name} ...", flush=True)
    url = server.start()
    print(f"\n{what} is served at {url}\nOpen it in a browser; press Ctrl-C to stop.",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    died = False
    try:
        while not stop.wait(0.5):
            if server.process.poll() is not None:
                died = True
                break
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    if died:
        print(f"{server.name} stopped unexpectedly:\n" + "\n".join(server.log_lines[-20:]), file=sys.stderr)
        return 1
    print("Stopped.", flush=True)
    return 0


@contextlib.contextmanager
def _chdir(path):
    # contextlib.chdir exists from Python 3.11 only
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def main(argv=None) -> int:
    """Entry point of ``python -m gmoswidgets.dashboard``."""
    parser = argparse.ArgumentParser(
        prog="python -m gmoswidgets.dashboard",
        description="The tutorial's dataset, its file lists, and the Voilà dashboard (make demo).")
    parser.add_argument("--data", default="demo_data", help="where to put the demo dataset")
    parser.add_argument("--binning", type=int, default=2, choices=(1, 2, 4),
                        help="binning of the dataset when it has to be created (default 2)")
    parser.add_argument("--no-serve", action="store_true",
                        help="only create the dataset and print the file lists")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port of the dashboard (default {DEFAULT_PORT} if free, else any free one)")
    args = parser.parse_args(argv)
    data_dir = Path(args.data).resolve()
    ensure_dataset(data_dir, args.binning)
    playground = data_dir / "playground"
    playground.mkdir(parents=True, exist_ok=True)
    run_file_lists(playground)
    if args.no_serve:
        return 0
    return serve(data_dir, args.port)


if __name__ == "__main__":
    sys.exit(main())
