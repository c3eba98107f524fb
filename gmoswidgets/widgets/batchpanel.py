"""BatchPanel: the groups of a ``reduce-all`` batch and their progress.

The panel shows one row per group of a :class:`gmoswidgets.batch.Batch`
(kind, setup, files, what it waits for, status, products or reason) and
redraws it from the batch's events; :meth:`BatchPanel.run` runs the batch
in a background thread.
"""
from __future__ import annotations

import html
import threading

import ipywidgets as W

from ..batch import DONE, FAILED, PLANNED, RUNNING, SKIPPED, Batch

__all__ = ["BatchPanel"]

_STATUS_COLOUR = {PLANNED: "#888888", RUNNING: "#d08000", DONE: "#008000", SKIPPED: "#4060a0",
                  FAILED: "#c00000"}
_HEADER = ("group", "setup", "files", "needs", "status", "products / reason")


class BatchPanel(W.VBox):
    """A table of a batch's groups with their status, and a button to run it.

    Parameters
    ----------
    batch : Batch
        The planned batch (see :func:`gmoswidgets.batch.Batch`).
    """

    def __init__(self, batch: Batch):
        self.batch = batch
        self.table = None
        self.error: BaseException | None = None
        self.worker: threading.Thread | None = None
        self.summary = W.HTML()
        self.summary.add_class("gmos-batch-summary")
        self.grid = W.HTML()
        self.grid.add_class("gmos-batch-table")
        self.run_button = W.Button(description="Reduce all", icon="play",
                                   tooltip="Reduce every group: calibrations first")
        self.run_button.add_class("gmos-batch-run")
        self.run_button.on_click(lambda _: self.run())
        super().__init__([W.HBox([self.run_button, self.summary]), self.grid])
        self._unsubscribe = batch.subscribe(lambda event: self.refresh())
        self.refresh()

    def run(self, *, background: bool = True):
        """Run the batch (in a background thread unless ``background`` is False)."""
        if self.worker is not None and self.worker.is_alive():
            return self.worker
        self.run_button.disabled = True
        if not background:
            self._job()
            return None
        self.worker = threading.Thread(target=self._job, daemon=True, name="gmos-batch")
        self.worker.start()
        return self.worker

    def _job(self) -> None:
        try:
            self.table = self.batch.run()
        except Exception as exc:  # shown in the panel; the batch reports per group otherwise
            self.error = exc
        finally:
            self.run_button.disabled = False
            self.refresh()

    def refresh(self) -> None:
        """Redraw the table from the groups' current status."""
        groups = self.batch.groups
        counts = {s: sum(g.status == s for g in groups) for s in _STATUS_COLOUR}
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no groups"
        if self.error is not None:
            text += f" — error: {self.error}"
        self.summary.value = f"<b>{len(groups)} group(s)</b>: {html.escape(text)}"
        rows = ["<tr>" + "".join(f"<th style='text-align:left'>{h}</th>" for h in _HEADER)
                + "</tr>"]
        for g in groups:
            detail = ", ".join(o.rsplit("/", 1)[-1] for o in g.outputs) or g.reason
            cells = (g.name, g.describe(), f"{len(g.files)}: {g.files[0].name} ...",
                     ", ".join(g.depends), None, detail)
            rows.append("<tr>" + "".join(
                f"<td style='color:{_STATUS_COLOUR[g.status]}'><b>{g.status}</b></td>"
                if value is None else f"<td>{html.escape(str(value))}</td>"
                for value in cells) + "</tr>")
        self.grid.value = ("<table class='gmos-batch-groups' style='border-spacing:12px 2px'>"
                           + "".join(rows) + "</table>")

    def close(self) -> None:
        self._unsubscribe()
        super().close()
