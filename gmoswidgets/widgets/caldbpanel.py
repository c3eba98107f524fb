"""CalDBPanel: the local calibration database, its content, and why a calibration is (not) used."""
from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import ipywidgets as W

from ..caldb import CALTYPES, CalibrationService, get_calservice
from ..errors import GmosError
from ..frame import read_headers
from ..gmos.descriptors import descriptor_value
from ..primitives.base import get_primitive
from ..primitives.fringe import needs_fringe_correction
from ..reduction import choose_recipe

__all__ = ["CalDBPanel", "calibrations_needed"]

_COLUMNS = ("type", "file", "binning", "read mode", "ROI", "filter", "date", "on disk", "")
#: How a configuration source reads in the panel (the CLI's wording is about its arguments).
_SOURCES = {"database_dir argument": "the database folder given to this panel (no rsys.cfg read)"}


def calibrations_needed(path) -> list:
    """Calibration types the default recipe of a file asks for (e.g. bias and flat for science).

    Taken from the ``calibrations`` declared by the recipe's primitives, so it
    follows the recipes; a fringe frame only where the detector and filter
    need one.  ``[]`` if no recipe applies.
    """
    headers = read_headers(path)
    try:
        recipe = choose_recipe([headers])
    except GmosError:
        return []
    needed = []
    for step in recipe.steps:
        for caltype in get_primitive(step.primitive).calibrations:
            if caltype not in needed:
                needed.append(caltype)
    described = SimpleNamespace(descriptor=lambda name: descriptor_value(headers, name))
    if "processed_fringe" in needed and not needs_fringe_correction(described)[0]:
        needed.remove("processed_fringe")
    return needed


def _esc(value) -> str:
    return html.escape(str(value))


class CalDBPanel(W.VBox):
    """The configured calibration database: status, table, add/remove, and ``explain``.

    Parameters
    ----------
    service : CalibrationService, optional
        Default: the service set with ``set_calservice``, else one built from
        ``config_file`` / ``database_dir``.
    config_file, database_dir : path-like, optional
        Passed to :class:`CalibrationService` when no service is given.
    """

    def __init__(self, service: CalibrationService | None = None, *, config_file=None,
                 database_dir=None):
        self.service = service
        self.entries: list = []
        self.reports: dict = {}
        self.matches: dict = {}
        self.config_text = W.HTML("")
        self.config_text.add_class("gmos-caldb-config")
        self.init_button = W.Button(description="caldb init", icon="database",
                                    tooltip="Create the database if it does not exist")
        self.init_button.add_class("gmos-caldb-init")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("gmos-caldb-refresh")
        self.table = W.GridBox([], layout=W.Layout(grid_gap="1px 12px", overflow="auto",
                                                   max_height="280px"))
        self.table.add_class("gmos-caldb-table")
        self.add_path = W.Text(placeholder="N20170613S0180_bias.fits", description="File",
                               layout=W.Layout(width="460px"))
        self.add_path.add_class("gmos-caldb-path")
        self.add_button = W.Button(description="caldb add", icon="plus", button_style="success")
        self.add_button.add_class("gmos-caldb-add")
        self.message = W.HTML("")
        self.message.add_class("gmos-caldb-message")
        self.explain_path = W.Text(placeholder="../playdata/N20170614S0201.fits",
                                   description="Frame", layout=W.Layout(width="460px"))
        self.explain_path.add_class("gmos-caldb-explain-path")
        self.caltype = W.Dropdown(options=["needed by the recipe", *CALTYPES],
                                  value="needed by the recipe", description="Type",
                                  layout=W.Layout(width="300px"))
        self.explain_button = W.Button(description="Which calibration?", icon="question")
        self.explain_button.add_class("gmos-caldb-explain")
        self.explanation = W.HTML("")
        self.explanation.add_class("gmos-caldb-explanation")
        super().__init__([
            W.HTML("<b>Calibration database</b>"), self.config_text,
            W.HBox([self.init_button, self.refresh_button]), self.table,
            W.HBox([self.add_path, self.add_button]), self.message,
            W.HTML("<b>Which calibration would be used, and why not the others</b>"),
            W.HBox([self.explain_path, self.caltype, self.explain_button]), self.explanation])
        self.add_class("gmos-caldbpanel")
        self.init_button.on_click(lambda _: self.init())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.add_button.on_click(lambda _: self.add(self.add_path.value))
        self.add_path.on_submit(lambda _: self.add(self.add_path.value))
        self.explain_button.on_click(lambda _: self.explain(self.explain_path.value))
        if self.service is None:
            try:
                self.service = get_calservice() or CalibrationService(config_file, database_dir)
            except GmosError as exc:
                self.config_text.value = f"<pre style='color:#c00000'>{_esc(exc)}</pre>"
                return
        self.refresh()

    # -- public API ---------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the configuration and the list of calibrations."""
        if self.service is None:
            return
        status = self.service.config(verbose=False)
        color = "#c00000" if status.problem else "inherit"
        text = str(status)
        source = status.config.source
        if status.config.config_file is None and source in _SOURCES:
            text = text.replace(f"Configuration:       {source}",
                                f"Configuration:       {_SOURCES[source]}", 1)
        self.config_text.value = f"<pre style='color:{color}'>{_esc(text)}</pre>"
        self.init_button.layout.display = None if not status.exists else "none"
        self.entries = self.service.list_files() if status.exists and not status.problem else []
        self._draw()
        if self.reports or self.matches:        # an explanation on screen: keep it true
            self.explain(self.explain_path.value)

    def init(self) -> str:
        """Create the database (``caldb init``)."""
        text = self.service.init()
        self.message.value = _esc(text)
        self.refresh()
        return text

    def add(self, path) -> None:
        """Add a processed calibration (``caldb add``); problems are shown, not raised."""
        try:
            result = self.service.add_cal(Path(str(path).strip()))
        except GmosError as exc:
            self.message.value = f"<span style='color:#c00000'>{_esc(exc)}</span>"
            return
        self.message.value = _esc(result)
        self.refresh()

    def remove(self, name) -> None:
        """Remove a calibration's entry (``caldb remove``); the file stays on disk."""
        try:
            entry = self.service.remove_cal(name)
        except GmosError as exc:
            self.message.value = f"<span style='color:#c00000'>{_esc(exc)}</span>"
            return
        self.message.value = f"removed {_esc(entry.filename)} from the database (file kept)"
        self.refresh()

    def explain(self, path, caltypes=None) -> dict:
        """Which calibration a frame would get, and why the others would not.

        Parameters
        ----------
        path : path-like
            A science or flat file (raw or processed).
        caltypes : list of str, optional
            Default: the type chosen in the panel, or every type the frame's
            recipe needs.

        Returns
        -------
        dict
            caltype -> list of CandidateReport (also kept in :attr:`reports`;
            the chosen :class:`CalMatch` per type is in :attr:`matches`).
        """
        self.reports, self.matches = {}, {}
        if not str(path).strip():
            self.explanation.value = ("<span style='color:#c00000'>Give a frame first: a FITS "
                                      "file, e.g. ../playdata/N20170614S0201.fits</span>")
            return self.reports
        path = Path(str(path).strip())
        self.explain_path.value = str(path)
        try:
            if caltypes is None:
                caltypes = (calibrations_needed(path) if self.caltype.value not in CALTYPES
                            else [self.caltype.value])
            for caltype in caltypes:
                self.matches[caltype] = self.service.get_calibration(path, caltype)
                self.reports[caltype] = self.service.explain(path, caltype)
        except GmosError as exc:
            self.explanation.value = f"<span style='color:#c00000'>{_esc(exc)}</span>"
            return self.reports
        if not caltypes:
            self.explanation.value = f"{_esc(path.name)} needs no calibration."
            return self.reports
        self.explanation.value = "".join(self._explain_html(path, c) for c in caltypes)
        return self.reports

    # -- internals --------------------------------------------------------------------
    def _explain_html(self, path: Path, caltype: str) -> str:
        match = self.matches[caltype]
        color = "#008000" if match.found else "#c00000"
        head = (f"<p><b>{_esc(caltype)}</b> for {_esc(path.name)}: "
                f"<span style='color:{color}'>{_esc(match.reason)}</span></p>")
        rows = []
        for report in self.reports[caltype]:
            verdict = "chosen" if report.chosen else ("matches" if report.matches else "rejected")
            color = {"chosen": "#008000", "matches": "#806000"}.get(verdict, "#c00000")
            checks = "".join(
                f"<li>{'&#10003;' if ok else '&#10007;'} {_esc(name)}: {_esc(detail)}</li>"
                for name, ok, detail in report.checks)
            why = "; ".join(report.reasons)
            rows.append(f"<li><b>{_esc(report.filename)}</b> - <span style='color:{color}'>"
                        f"{verdict}</span>{': ' + _esc(why) if why else ''}"
                        f"<details><summary>checks</summary><ul>{checks}</ul></details></li>")
        body = f"<ul>{''.join(rows)}</ul>" if rows else f"<p>No {_esc(caltype)} in the database.</p>"
        return head + body

    def _draw(self) -> None:
        cells = [W.HTML(f"<b>{name}</b>") for name in _COLUMNS]
        for entry in self.entries:
            p = entry.props
            present = ("<span style='color:#c00000'>missing</span>" if entry.missing
                       else "<span style='color:#008000'>present</span>")
            remove = W.Button(description="remove", icon="trash", tooltip=f"caldb remove "
                              f"{entry.filename}", layout=W.Layout(width="auto"))
            remove.add_class("gmos-caldb-remove")
            remove.on_click(lambda _, name=entry.filename: self.remove(name))
            cells += [W.Label(entry.caltype), W.Label(entry.filename),
                      W.Label(f"{p.xbin}x{p.ybin}"), W.Label(f"{p.read_speed}/{p.gain_setting}"),
                      W.Label(p.roi), W.Label(p.filter_name or "-"),
                      W.Label(p.ut_datetime.strftime("%Y-%m-%d %H:%M")), W.HTML(present), remove]
        self.table.children = cells
        self.table.layout.grid_template_columns = " ".join(["auto"] * len(_COLUMNS))
