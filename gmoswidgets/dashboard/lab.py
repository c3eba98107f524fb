"""``make lab``: the tutorial's dataset and the notebooks in JupyterLab, on 127.0.0.1.

JupyterLab runs in ``notebooks/`` with the same protections as the Voilà
dashboard where JupyterLab has them (loopback only, a random token, its own
Host check); the notebooks find the data through ``$GMOSWIDGETS_DATA``.
Needs the ``lab`` extra (``pip install -e '.[lab]'``, which ``make lab`` does).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..data.tutorial import ensure_dataset
from .demo import serve
from .server import DashboardServer, find_dashboard

__all__ = ["LabServer", "main"]


class LabServer(DashboardServer):
    """JupyterLab on 127.0.0.1 in the notebooks' folder, started and stopped like the dashboard."""

    name = "JupyterLab"

    def __init__(self, data_dir, port: int | None = None, **options):
        super().__init__(find_dashboard(), data_dir, port=port, **options)
        self.url = self.base_url + "lab" + (f"?token={self.token}" if self.token else "")

    def command(self) -> list:
        """The jupyter lab command line."""
        return [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.notebook.parent}",
                # containers and CI run as root; JupyterLab refuses that unless told
                *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else [])]


def main(argv=None) -> int:
    """Entry point of ``python -m gmoswidgets.dashboard.lab``."""
    parser = argparse.ArgumentParser(prog="python -m gmoswidgets.dashboard.lab",
                                     description="The notebooks in JupyterLab (make lab).")
    parser.add_argument("--data", default="demo_data", help="where the demo dataset is (made if absent)")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        print("JupyterLab is not installed: pip install -e '.[lab]' (make lab does)",
              file=sys.stderr)
        return 1
    data_dir = Path(args.data).resolve()
    ensure_dataset(data_dir)
    return serve(data_dir, server=LabServer(data_dir, port=args.port), what="JupyterLab")


if __name__ == "__main__":
    sys.exit(main())
