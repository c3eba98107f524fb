"""ReductionApp: the panels joined in the order of the DRAGONS GMOS imaging tutorial."""
from __future__ import annotations

import html
import weakref
from pathlib import Path

import ipywidgets as W

from ..caldb import CalibrationService
from ..errors import GmosError
from ..frame import Frame, read_frame
from ..select import select_data
from . import preview as display
from .archivepanel import ArchivePanel
from .caldbpanel import CalDBPanel
from .downloadpanel import DownloadPanel
from .filepanel import FilePanel
from .imageview import ImageView
from .skyview import SkyView
from .steppanel import StepPanel

__all__ = ["ReductionApp", "STAGES"]

#: (key, tab title, explanation, dataselect tags, xtags, list file) of each reduction stage.
STAGES = (
    ("bias", "3. Master bias",
     "The biases are selected with <code>dataselect --tags BIAS</code> and reduced with "
     "<code>reduce @list_of_bias.txt</code>: each bias is prepared, its overscan level "
     "subtracted and trimmed, and the frames are stacked into one master bias, which is then "
     "added to the calibration database (<code>caldb add N20170613S0180_bias.fits</code>).",
     ("BIAS",), (), "list_of_bias.txt"),
    ("flat", "4. Master flat",
     "The twilight flats (<code>dataselect --tags FLAT</code>) are bias-subtracted with the "
     "master bias the calibration database returns, scaled to a common level, stacked and "
     "normalized into a master flat, which is added to the database too.",
     ("FLAT",), (), "list_of_flats.txt"),
    ("science", "5. Science",
     "Everything that is not a calibration (<code>dataselect --xtags CAL</code>) is science. "
     "Each frame is bias- and flat-corrected with the calibrations from the database, converted "
     "to electrons, its sources detected; the frames are aligned on their sources, resampled to "
     "a common grid and stacked (<code>_stack</code>, BUNIT=electrons).",
     (), ("CAL",), "list_of_science.txt"),
)

_INTRO = {
    "files": "Point the panel at the raw data (<code>../playdata</code>). The table shows every "
             "FITS file with its tags (what <code>typewalk</code> prints) and chosen descriptors "
             "(what <code>showd -d</code> prints). Filter with tags, excluded tags and a "
             "<code>dataselect --expr</code> expression; click a file name to look at it, and save "
             "the selection as a list file.",
    "caldb": "The local calibration manager (<code>caldb config</code>, <code>caldb list</code>): "
             "processed calibrations are added here and found automatically by the reductions. "
             "Ask which calibration a frame would get, and why the others would not.",
    "result": "The final stack (SCI in electrons, with VAR and DQ), its detected sources, and on "
              "the sky the footprint of every CCD of every frame and of the stack.",
}


#: Page styles: whole tab titles, disabled buttons that look disabled, stale pictures dimmed.
_STYLE = """<style>
.gmos-app .lm-TabBar-tab, .gmos-app .p-TabBar-tab { max-width: none !important;
  min-width: 0 !important; flex: 0 0 auto !important; }
.gmos-app button:disabled, .gmos-app .jupyter-button:disabled { opacity: 0.35 !important;
  cursor: not-allowed !important; filter: grayscale(80%); box-shadow: none !important; }
.gmos-app .gmos-step button, .gmos-app button.gmos-step { text-align: left; }
.gmos-stale .gmos-image-figure { opacity: 0.5; }
</style>"""


class ReductionApp(W.VBox):
    """Select files, make the bias and the flat, reduce the science, look at the stack.

    Parameters
    ----------
    directory : path-like, optional
        The raw data (the tutorial's ``playdata``).
    workdir : path-like, optional
        Where list files and outputs go (the tutorial's ``playground``);
        default: the current directory.
    service : CalibrationService, optional
        The calibration database; default from ``database_dir`` or the
        configuration file.
    database_dir : path-like, optional
        Use a database in this directory (created if needed).
    background : bool
        Run reductions in a background thread.
    add_to_caldb : bool
        Add each master calibration to the database when it is made.
    aladin_source : str, optional
        Where Aladin Lite is loaded from (see ``SkyView``).
    """

    def __init__(self, directory=None, *, workdir=None, service: CalibrationService | None = None,
                 database_dir=None, background: bool = True, add_to_caldb: bool = True,
                 aladin_source=None):
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        self.stage: str | None = None
        self.outputs: dict = {}
        self._stage_of = weakref.WeakKeyDictionary()     # Reduction -> the stage it reduces
        self.aladin_source = aladin_source
        if service is None and database_dir is not None:
            service = CalibrationService(database_dir=database_dir)
            service.init()
        self.file_panel = FilePanel(directory, workdir=self.workdir)
        self.download_panel = DownloadPanel(directory, background=background)
        self.download_panel.on_downloaded(lambda folder: self.file_panel.scan(folder))
        self.archive_panel = ArchivePanel(directory, background=background)
        self.archive_panel.on_downloaded(lambda folder: self.file_panel.scan(folder))
        downloads = W.Accordion(children=[self.archive_panel, self.download_panel],
                                titles=("Find data in the archive", "Get real GMOS data"))
        downloads.selected_index = None
        self.caldb_panel = CalDBPanel(service)
        self.step_panel = StepPanel(background=background, workdir=self.workdir,
                                    calservice=self.caldb_panel.service)
        self.step_panel.on_finished(self._on_finished)
        self.step_panel.on_busy(self._on_busy)
        self.file_panel.on_selection(lambda paths, _name: self.load(paths))
        self.file_panel.on_preview(lambda path: setattr(self.caldb_panel.explain_path, "value",
                                                        str(path)))
        self.result_view = ImageView(title="Stack", height="420px", sources=False)
        self.result_view.add_class("gmos-result")
        self.sky_view: SkyView | None = None
        self.sky_box = W.VBox([W.HTML("<i>The sky view appears when the stack is made.</i>")])
        self.add_to_caldb = W.Checkbox(value=add_to_caldb, description="caldb add the result",
                                       indent=False)
        self.status = W.HTML("")
        self.status.add_class("gmos-app-status")

        self.stage_buttons = {}
        stage_tabs = []
        for key, title, text, *_ in STAGES:
            button = W.Button(description={"bias": "Make the bias", "flat": "Make the flat",
                                           "science": "Reduce the science"}[key],
                              button_style="primary", icon="play", layout=W.Layout(width="200px"))
            button.add_class({"bias": "gmos-make-bias", "flat": "gmos-make-flat",
                              "science": "gmos-reduce-science"}[key])
            button.on_click(lambda _, k=key: self.start(k))
            self.stage_buttons[key] = button
            stage_tabs.append(W.VBox([W.HTML(f"<p>{text}</p>"), button]))
        self.tabs = W.Tab(children=[
            W.VBox([W.HTML(f"<p>{_INTRO['files']}</p>"), self.file_panel, downloads]),
            W.VBox([W.HTML(f"<p>{_INTRO['caldb']}</p>"), self.caldb_panel]),
            *stage_tabs,
            W.VBox([W.HTML(f"<p>{_INTRO['result']}</p>"), self.result_view, self.sky_box]),
        ], titles=("1. Files", "2. Calibration database", *(s[1] for s in STAGES),
                   "6. Stack and sky"))
        self.tabs.add_class("gmos-app-tabs")
        self._result_tab = len(self.tabs.children) - 1
        self._pending_result: tuple | None = None    # a stack to show when its tab is opened
        self.tabs.observe(self._on_tab, names="selected_index")
        steps = W.VBox([W.HTML("<b>Steps of the current reduction</b> - run them one by one or "
                               "all at once, change a parameter and re-run from any step."),
                        self.add_to_caldb, self.step_panel])
        super().__init__([W.HTML(_STYLE), W.HTML("<h3>GMOS imaging reduction</h3>"), self.tabs,
                          self.status, steps])
        self.add_class("gmos-app")

    # -- public API -----------------------------------------------------------------
    def files(self) -> list:
        """Every listed FITS file of the data directory."""
        if not self.file_panel.rows and self.file_panel.directory.value:
            self.file_panel.scan()
        return [row.path for row in self.file_panel.rows if not row.problem]

    def select(self, stage: str) -> list:
        """The files of a stage (``'bias'``, ``'flat'`` or ``'science'``), as ``dataselect`` gives them.

        The list is also written to the stage's list file in :attr:`workdir`.
        """
        _, _, _, tags, xtags, list_name = self._stage(stage)
        chosen = select_data(self.files(), tags, xtags)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / list_name).write_text("".join(f"{p}\n" for p in chosen))
        return chosen

    def start(self, stage: str) -> None:
        """Select the files of a stage, load them into the step panel and run every step.

        Refused (with a message) while another run is going: one run at a time.
        """
        try:
            self._refuse_while_busy()
            files = self.select(stage)
            if not files:
                raise GmosError(f"no {stage} files in {self.file_panel.directory.value or '?'}: "
                                "choose the data directory in tab 1")
            self._set_stage(self.step_panel.set_files(files), stage)
        except GmosError as exc:
            self._error(exc)
            return
        recipe = self.step_panel.reduction.recipe.name
        self.status.value = f"Reducing {len(files)} {stage} file(s) with {recipe} ..."
        self.step_panel.run_all()

    def load(self, files) -> None:
        """Load files chosen in the file panel into the step panel (not run yet).

        The stage (bias, flat or science) follows from the first file's tags,
        so a finished master calibration is still added to the database.
        """
        files = list(files)
        if not files:
            self.status.value = "No file selected."
            return
        try:
            self._refuse_while_busy()
            reduction = self.step_panel.set_files(files)
        except GmosError as exc:
            self._error(exc)
            return
        tags = reduction.tags
        self._set_stage(reduction, "bias" if "BIAS" in tags else "flat" if "FLAT" in tags
                        else "science")
        self.status.value = (f"Loaded {len(files)} {self.stage} file(s): run the steps below "
                             "one by one or all at once.")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running reduction (if any) to finish (scripts and tests)."""
        self.step_panel.join(timeout)

    def show_result(self, stack, frames=(), *, name: str | None = None) -> None:
        """Show the stack in the result ImageView and, with the frames' footprints, in the SkyView.

        Parameters
        ----------
        stack : Frame or path-like
            The stack (the engine's output frame, or its file).
        frames : sequence of path-like
            The input frames: their CCD footprints come from their headers.
        name : str, optional
            Title of the stack (default: its file name).
        """
        stack = stack if isinstance(stack, Frame) else read_frame(stack)
        tiled = display.tile_frame(stack)          # once, for both views
        self.result_view.show(tiled, title=name or stack.filename, keep_zoom=True)
        if self.sky_view is None:
            self.sky_view = SkyView(aladin_source=self.aladin_source)
            self.sky_box.children = [self.sky_view]
        self.sky_view.show(list(frames), stack=tiled)

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _stage(stage: str):
        for entry in STAGES:
            if entry[0] == stage:
                return entry
        raise GmosError(f"unknown stage {stage!r}; stages are {', '.join(s[0] for s in STAGES)}")

    def _refuse_while_busy(self) -> None:
        if self.step_panel.busy:
            running = self._stage_of.get(self.step_panel.reduction, "current")
            raise GmosError(f"the {running} reduction is running: wait for it to end or cancel "
                            "it first")

    def _set_stage(self, reduction, stage: str) -> None:
        self._stage_of[reduction] = stage
        self.stage = stage
        self.add_to_caldb.layout.display = None if stage in ("bias", "flat") else "none"

    def _on_tab(self, change) -> None:
        if change["new"] == self._result_tab:
            self._show_pending()

    def _show_pending(self) -> None:
        pending, self._pending_result = self._pending_result, None
        if pending is not None:
            stack, frames = pending
            self.show_result(stack, frames, name=Path(stack).name)

    def _error(self, exc: BaseException) -> None:
        self.status.value = f"<span style='color:#c00000'>{html.escape(str(exc))}</span>"

    def _on_busy(self, busy: bool) -> None:
        for button in self.stage_buttons.values():
            button.disabled = busy
        self.file_panel.use_button.disabled = busy
        if busy and self._stage_of.get(self.step_panel.reduction) == "science":
            self.result_view.set_stale("the science is being reduced again")

    def _on_finished(self, panel: StepPanel, red) -> None:
        stage = self._stage_of.get(red)
        if stage is None:
            return
        if panel.last_error is not None or not red.finished:
            self.status.value = (f"<span style='color:#c00000'>The {stage} reduction stopped "
                                 "before its end; see the step panel.</span>")
            return
        outputs = list(red.output_filenames)
        self.outputs[stage] = outputs
        notes = [f"{stage}: wrote {', '.join(Path(p).name for p in outputs)}"]
        if stage in ("bias", "flat") and self.add_to_caldb.value:
            for path in outputs:
                self.caldb_panel.add(path)
            notes.append("added to the calibration database")
        if stage == "science" and outputs:
            # drawn now if its tab is open, else when it is opened (nobody looks at it yet)
            self._pending_result = (outputs[-1], list(red.files))
            if self.tabs.selected_index == self._result_tab:
                self._show_pending()
            else:
                self.result_view.set_stale("a new stack is ready")
            notes.append("see tab 6")
        self.status.value = html.escape("; ".join(notes))
