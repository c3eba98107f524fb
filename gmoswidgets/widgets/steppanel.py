"""StepPanel: run a recipe step by step, change parameters, re-run, inspect each step's output.

The panel drives a :class:`gmoswidgets.reduction.Reduction` (the same engine
as ``reduce``) in a background thread and follows its events.  One run at a
time: while a run goes, the run buttons are disabled, a new reduction is
refused and Cancel acts on that run.  Step outputs are drawn only for the
selected step, in a thread of their own (never in the reduction's), and kept
in a small cache until the step is re-run.  During a run nothing is drawn
that nobody asked for: the selection follows the steps as they finish and
the picture is drawn when the run ends, unless a step is chosen by hand
(drawn at once, and again when the run recomputes it).
"""
from __future__ import annotations

import html
import itertools
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import ipywidgets as W

from . import preview as display
from ..caldb.lookup import default_service
from ..errors import GmosError
from ..executor import get_executor
from ..logutils import show_info
from ..recipes import recipes_for
from ..reduction import DONE, FAILED, PENDING, RUNNING, SKIPPED, Reduction
from .imageview import ImageView, LazyItem

__all__ = ["StepPanel", "param_widget"]

_STATUS_STYLE = {PENDING: ("#888888", "pending"), RUNNING: ("#d08000", "running"),
                 DONE: ("#008000", "done"), SKIPPED: ("#4060a0", "skipped"),
                 FAILED: ("#c00000", "failed")}
_VIEWS = ("after", "before", "difference")
_LOG_LINES = 400
_CACHED_VIEWS = 3     # step pictures kept ready (each one tiled frame)


def param_widget(state) -> W.Widget:
    """An input widget for one parameter (a ``ParamState``), its doc as tooltip.

    Booleans get a checkbox, choices a drop-down, bounded numbers a bounded
    box, optional values and lists a text box (``None``, ``1,2,3``).
    """
    p = state.param
    label = f"{state.name}" + ("" if state.source == "default" else f" ({state.source})")
    common = {"description": label, "tooltip": p.doc, "style": {"description_width": "160px"},
              "layout": W.Layout(width="380px")}
    value = state.value
    if p.type is bool and not p.optional:
        widget = W.Checkbox(value=bool(value), indent=True, **common)
    elif p.choices is not None and not p.optional:
        widget = W.Dropdown(options=list(p.choices), value=value, **common)
    elif p.type is int and not p.optional:
        lo = -2**31 if p.min is None else int(p.min)
        hi = 2**31 - 1 if p.max is None else int(p.max)
        widget = W.BoundedIntText(value=int(value), min=lo, max=hi, step=1, **common)
    elif p.type is float and not p.optional:
        lo = -1e300 if p.min is None else float(p.min)
        hi = 1e300 if p.max is None else float(p.max)
        widget = W.BoundedFloatText(value=float(value), min=lo, max=hi, step=0.1, **common)
    else:
        text = "None" if value is None else (",".join(f"{v:g}" for v in value)
                                             if isinstance(value, list) else str(value))
        widget = W.Text(value=text, **common)
    widget.add_class("gmos-param")
    widget.add_class(f"gmos-param-{state.name}")
    return widget


class StepPanel(W.VBox):
    """The steps of a recipe with status and time, a parameter form, run buttons, log and output.

    Parameters
    ----------
    reduction : Reduction, optional
        The reduction to drive; or give ``files`` (and ``recipe``).
    files : list of path-like, optional
        Input files; a :class:`Reduction` is made (``keep='spill'`` unless
        given: every step's outputs kept, in memory within the process's
        budget, :func:`gmoswidgets.membudget.spill_budget`, the least recently
        used on disk beyond it).
    recipe : str, optional
        Recipe name (default: the inputs' default recipe).
    background : bool
        Run in a background thread (the notebook stays responsive); False
        runs in the caller's thread (tests, scripts).
    image_view : ImageView, optional
        Where step outputs are shown (default: a new one).
    follow : bool
        Select each step as it finishes, and show the last one when the run
        ends (a step chosen by hand during the run stays chosen).
    **reduction_options
        Passed to :class:`Reduction` (``workdir``, ``uparms``, ``calservice`` ...).
    """

    def __init__(self, reduction: Reduction | None = None, *, files=None, recipe: str | None = None,
                 background: bool = True, image_view: ImageView | None = None,
                 follow: bool = True, **reduction_options):
        show_info()  # the log box shows INFO messages
        self.reduction: Reduction | None = None
        self.background = background
        self.follow = follow
        self._following = False      # this run's selection follows its steps (none chosen by hand)
        self.selected: int | None = None
        self.worker: threading.Thread | None = None
        self.last_error: BaseException | None = None
        self._options = {"keep": "spill", **reduction_options}
        self._owned = False          # the panel made the reduction (and closes it when replaced)
        self._cancel_requested = False
        self._unsubscribe = None
        self._log_lines: list = []
        self._rows: list = []
        self._form_widgets: dict = {}
        self._on_done = []
        self._on_busy = []
        self._quiet_recipe = False
        self._views: OrderedDict = OrderedDict()     # (step, which, generation) -> items
        self._generation: dict = {}                  # step index -> times it was (re)started
        self._tickets = itertools.count(1)
        self._draw_lock = threading.RLock()
        self._ticket = 0
        self._renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gmoswidgets-view")

        self.title = W.HTML("<i>No reduction yet: choose files first.</i>")
        self.recipe = W.Dropdown(options=[], description="Recipe", layout=W.Layout(width="340px"))
        self.recipe.add_class("gmos-recipe")
        self.step_list = W.VBox([])
        self.step_list.add_class("gmos-step-list")
        self.form = W.VBox([])
        self.form.add_class("gmos-param-form")
        self.form_title = W.HTML("")
        self.run_next_button = W.Button(description="Run next", icon="step-forward")
        self.run_next_button.add_class("gmos-run-next")
        self.run_to_button = W.Button(description="Run to here", icon="forward")
        self.run_to_button.add_class("gmos-run-to")
        self.run_all_button = W.Button(description="Run all", icon="fast-forward",
                                       button_style="primary")
        self.run_all_button.add_class("gmos-run-all")
        self.rerun_button = W.Button(description="Re-run from here", icon="redo",
                                     tooltip="Apply the form's values to the selected step and "
                                             "recompute it and the steps after it")
        self.rerun_button.add_class("gmos-rerun")
        self.cancel_button = W.Button(description="Cancel", icon="stop", button_style="danger",
                                      disabled=True)
        self.cancel_button.add_class("gmos-cancel")
        self.progress = W.FloatProgress(value=0, min=0, max=1, description="Progress",
                                        layout=W.Layout(width="300px"))
        self.progress.add_class("gmos-progress")
        self.progress_text = W.Label("")
        self.progress_text.add_class("gmos-progress-text")
        self.error = W.HTML("")
        self.error.add_class("gmos-step-error")
        self.log_box = W.Textarea(value="", disabled=True,
                              layout=W.Layout(width="100%", height="140px"))
        self.log_box.add_class("gmos-log")
        self.view_mode = W.ToggleButtons(options=list(_VIEWS), value="after",
                                         tooltips=["Output of the step", "Input of the step",
                                                   "Output minus input"])
        self.view_mode.add_class("gmos-before-after")
        self.image_view = image_view or ImageView(title="Step output", height="360px")
        self.image_view.add_class("gmos-step-output")

        buttons = W.HBox([self.run_next_button, self.run_to_button, self.run_all_button,
                          self.rerun_button, self.cancel_button], layout=W.Layout(flex_flow="row wrap"))
        # steps and parameters beside the picture (an ipywidgets layout template)
        left = W.VBox([self.title, self.recipe, buttons,
                       W.HBox([self.progress, self.progress_text]), self.error, self.step_list,
                       self.form_title, self.form, W.Accordion([self.log_box], titles=("Log",))],
                      layout=W.Layout(width="100%", overflow="hidden"))
        right = W.VBox([self.view_mode, self.image_view], layout=W.Layout(width="100%"))
        self.layout_template = W.AppLayout(left_sidebar=left, center=right,
                                           pane_widths=["440px", 1, 0], grid_gap="16px",
                                           height="auto")
        super().__init__([self.layout_template])
        self.add_class("gmos-steppanel")

        self.run_next_button.on_click(lambda _: self.run_next())
        self.run_to_button.on_click(lambda _: self.run_to(self.selected))
        self.run_all_button.on_click(lambda _: self.run_all())
        self.rerun_button.on_click(lambda _: self.rerun_from(self.selected))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.view_mode.observe(lambda _: self.show_output(), names="value")
        self._busy = False
        self.recipe.observe(self._on_recipe, names="value")

        if reduction is not None:
            self.set_reduction(reduction)
        elif files:
            self.set_files(files, recipe)
        else:
            self._set_busy(False)

    # -- choosing what to reduce -----------------------------------------------------
    def set_files(self, files, recipe: str | None = None, **reduction_options) -> Reduction:
        """Make a new :class:`Reduction` of ``files`` and show its steps.

        Unless ``calservice`` is given, calibrations come from the default
        service (:func:`gmoswidgets.caldb.lookup.default_service`); unless
        ``executor`` is given, per-frame work runs where ``reduce`` runs it
        (:func:`gmoswidgets.executor.get_executor`: local threads by default).

        Raises
        ------
        GmosError
            While a run is going (see :meth:`set_reduction`), or for bad inputs.
        """
        self._refuse_while_busy()
        options = {**self._options, **reduction_options}
        if options.get("calservice") is None and "calibration_lookup" not in options:
            options["calservice"] = default_service()
        if options.get("executor") is None:
            options["executor"] = get_executor()
        reduction = Reduction(files, recipe, **options)
        self._options = options
        self.set_reduction(reduction)
        self._owned = True
        return reduction

    def set_reduction(self, reduction: Reduction) -> None:
        """Drive ``reduction``: list its steps and follow its events.

        Raises
        ------
        GmosError
            While a run is going: one run at a time (wait, or :meth:`cancel` it).
        """
        self._refuse_while_busy()
        if self._unsubscribe is not None:
            self._unsubscribe()
        previous, owned = self.reduction, self._owned
        if owned and previous is not None and previous is not reduction:
            previous.close()          # free its kept outputs and spill files
        self._owned = False
        self._views.clear()
        self._generation = {}
        self.reduction = reduction
        self._unsubscribe = reduction.subscribe(self._on_event)
        names = [r.name for r in recipes_for(reduction.tags)] or [reduction.recipe.name]
        if reduction.recipe.name not in names:
            names.insert(0, reduction.recipe.name)
        self._quiet_recipe = True
        try:
            self.recipe.options = names
            self.recipe.value = reduction.recipe.name
        finally:
            self._quiet_recipe = False
        files = ", ".join(p.name for p in reduction.files[:3]) + (
            f" ... ({len(reduction.files)} files)" if len(reduction.files) > 3 else "")
        self.title.value = (f"<b>{html.escape(reduction.recipe.name)}</b> on {html.escape(files)}"
                            + (f"<br><small>{html.escape(reduction.recipe.doc)}</small>"
                               if reduction.recipe.doc else ""))
        self._log_lines = []
        self.log_box.value = ""
        self.error.value = ""
        self.last_error = None
        self._build_rows()
        self.selected = None
        self.view_mode.value = "after"     # a new reduction starts on its outputs
        self.select(0)
        self._update_progress()
        self._set_busy(False)

    # -- running ------------------------------------------------------------------------
    def run_next(self):
        """Run the next pending step."""
        return self._start(lambda red: red.run_next())

    def run_to(self, index: int | None = None):
        """Run every pending step up to ``index`` (default: the selected step)."""
        index = self.selected if index is None else index
        return self._start(lambda red: red.run_to(index))

    def run_all(self):
        """Run every remaining step."""
        return self._start(lambda red: red.run_all())

    def rerun_from(self, index: int | None = None, **params):
        """Re-run from ``index`` (default: selected) with the form's changed values and ``params``.

        Only this step and the steps after it are recomputed.
        """
        if self.reduction is None:
            return None
        index = self.selected if index is None else index
        try:
            values = {**self.form_changes(index), **params}
        except GmosError as exc:
            self._show_error(exc)
            return None
        return self._start(lambda red: red.rerun_from(index, **values))

    def cancel(self) -> None:
        """Stop the running run (at its next step boundary or progress report).

        Acts on the run in progress only (the reduction shown); does nothing
        when no run is going.
        """
        if not self.busy or self.reduction is None:
            return
        self._cancel_requested = True
        self.reduction.cancel()
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling ..."
        self._append_log("Cancel requested.")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background run to finish (for scripts and tests, not widget callbacks)."""
        worker = self.worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

    def wait_drawn(self, timeout: float | None = None) -> None:
        """Wait until the pictures handed to the view thread are drawn (scripts and tests)."""
        self._renderer.submit(lambda: None).result(timeout)

    @property
    def busy(self) -> bool:
        """True while a run is in progress (from the click until its results are handed over)."""
        return self._busy

    def on_finished(self, callback) -> None:
        """Call ``callback(panel, reduction)`` after every run (successful or not).

        ``reduction`` is the one that ran, whatever the panel shows by then.
        """
        self._on_done.append(callback)

    def on_busy(self, callback) -> None:
        """Call ``callback(busy)`` when a run starts (True) and when it has ended (False)."""
        self._on_busy.append(callback)

    # -- selecting and viewing --------------------------------------------------------------
    def select(self, index: int, wait: bool = True, *, draw: bool = True) -> None:
        """Select a step: show its parameter form and its output.

        Parameters
        ----------
        index : int
            The step.
        wait : bool
            Draw the output now; False hands it to the panel's view thread.
        draw : bool
            False leaves the picture as it is (see :meth:`show_output`).
        """
        if self.reduction is None or not self.reduction.steps:
            return
        index = max(0, min(int(index), len(self.reduction.steps) - 1))
        self.selected = index
        for i, row in enumerate(self._rows):
            row["button"].button_style = "info" if i == index else ""
        self._build_form(index)
        if draw:
            self.show_output(wait=wait)

    def _choose(self, index: int) -> None:
        """A step clicked: it stays selected (the run stops following) and is drawn now."""
        self._following = False
        self.select(index)

    def _follow_to(self, index: int) -> None:
        """Select a step that has just finished without drawing it (drawn when the run ends)."""
        self.select(index, draw=False)
        note = (f"the run is at step {index + 1}; its picture is drawn when the run ends, "
                "or click a step to see it now")
        if self.image_view.tiled is None:           # no picture yet: say so under the title
            self.image_view.status.value = html.escape(note[0].upper() + note[1:] + ".")
        self.image_view.set_stale(note)

    def form_changes(self, index: int | None = None) -> dict:
        """Values in the form that differ from the step's effective values (validated)."""
        index = self.selected if index is None else index
        if self.reduction is None or index != self.selected:
            return {}
        step = self.reduction.steps[index]
        current = step.values
        changes = {}
        for name, widget in self._form_widgets.items():
            param = step.declarations[name]
            value = param.validate(widget.value, f"{step.primitive}:{name}")
            if value != current[name]:
                changes[name] = value
        return changes

    def frames_for(self, index: int, which: str = "after") -> list:
        """What is shown for a step: its outputs, its inputs or their differences.

        The first is tiled for display; the others are :class:`LazyItem`
        (read again when chosen), so no step's frames are held here.  Cached
        until the step runs again.
        """
        red = self.reduction
        key = (id(red), index, which, self._generation.get(index, 0),
               self._generation.get(index - 1, 0))
        if key in self._views:
            self._views.move_to_end(key)
            return self._views[key]
        items = self._items_for(red, index, which)
        if items:
            self._views[key] = items
            while len(self._views) > _CACHED_VIEWS:
                self._views.popitem(last=False)
        return items

    @staticmethod
    def _items_for(red, index: int, which: str) -> list:
        def outputs(i):
            if i < 0:
                return red.inputs()
            return red.outputs(i) if red.has_outputs(i) else []

        after = outputs(index) if which != "before" else []
        before = outputs(index - 1) if which != "after" else []
        if which == "difference" and (not after or len(after) != len(before)):
            raise GmosError(f"no difference to show: step {index + 1} turned {len(before)} "
                            f"frame(s) into {len(after)}")
        frames = after if which == "after" else before
        names = [f.filename for f in frames]

        def item(k):
            if which != "difference":
                return display.as_tiled(outputs(index if which == "after" else index - 1)[k])
            return display.difference(display.tile_frame(outputs(index)[k]),
                                      display.tile_frame(outputs(index - 1)[k]))
        if not frames:
            return []
        first = (display.as_tiled(frames[0]) if which != "difference" else
                 display.difference(display.tile_frame(after[0]), display.tile_frame(before[0])))
        return [first, *(LazyItem(name, lambda k=k: item(k)) for k, name in
                         enumerate(names) if k > 0)]

    def show_output(self, wait: bool = True) -> None:
        """Show the selected step's output (or input, or difference) in the ImageView.

        Parameters
        ----------
        wait : bool
            Draw now; False hands the drawing to the panel's view thread
            (only the newest request is drawn).
        """
        if self.reduction is None or self.selected is None:
            return
        ticket = self._ticket = next(self._tickets)
        if wait or not self.background:
            self._draw(ticket)
        else:
            self._renderer.submit(self._draw, ticket)

    def _draw(self, ticket: int) -> None:
        with self._draw_lock:          # drawn now or in the view thread: never both at once
            self._draw_locked(ticket)

    def _draw_locked(self, ticket: int) -> None:
        red, index, which = self.reduction, self.selected, self.view_mode.value
        if ticket != self._ticket or red is None or index is None:
            return                     # a newer request came: draw that one instead
        step = red.steps[index]
        title = f"{which}: step {index + 1} {step.label}"
        try:
            frames = self.frames_for(index, which)
        except GmosError as exc:
            self.image_view.clear(html.escape(str(exc)), title=title)
            return
        except Exception as exc:  # noqa: BLE001 - a view problem must not break the panel
            self.image_view.clear(html.escape(f"cannot show step {index + 1}: {exc}"), title=title)
            return
        if ticket != self._ticket:
            return
        if not frames:
            self.image_view.clear(f"Step {index + 1} ({step.label}) has not run yet.", title=title)
            return
        self.image_view.show(frames, title=title, keep_zoom=True)

    # -- internals ------------------------------------------------------------------------
    def _refuse_while_busy(self) -> None:
        if self.busy:
            raise GmosError(f"{self.reduction.recipe.name} is running: wait for it to end or "
                            "cancel it first")

    def _start(self, action):
        if self.reduction is None:
            return None
        if self.busy:
            self._append_log("Already running; wait or cancel.")
            return None
        self.error.value = ""
        self.last_error = None
        self._cancel_requested = False
        self._following = self.follow
        self._set_busy(True)
        reduction = self.reduction
        if not self.background:
            self._job(action, reduction)
            return None
        self.worker = threading.Thread(target=self._job, args=(action, reduction), daemon=True,
                                       name="gmoswidgets-steppanel")
        self.worker.start()
        return self.worker

    def _job(self, action, reduction) -> None:
        try:
            action(reduction)
        except Exception as exc:  # shown on its step; earlier results are kept
            self._show_error(exc)
        finally:
            self._refresh_rows()
            self._update_progress()
            if self._following and reduction is self.reduction:
                self.show_output(wait=False)      # the step the selection followed to
            self._following = False
            try:
                for callback in self._on_done:
                    callback(self, reduction)
            finally:
                self._set_busy(False)

    def _show_error(self, exc: BaseException) -> None:
        self.last_error = exc
        name = "" if isinstance(exc, GmosError) else f"{type(exc).__name__}: "
        where = ""
        if self.reduction is not None:
            failed = [s for s in self.reduction.steps if s.status == FAILED]
            if failed:
                where = f"Step {failed[0].index + 1} ({failed[0].label}) failed: "
        self.error.value = (f"<span style='color:#c00000'><b>{html.escape(where)}</b>"
                            f"{html.escape(name + str(exc))}</span>")

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        idle = self.reduction is None or busy
        for button in (self.run_next_button, self.run_to_button, self.run_all_button,
                       self.rerun_button):
            button.disabled = idle
        self.recipe.disabled = idle
        for callback in self._on_busy:
            callback(busy)
        self.cancel_button.description = "Cancel"
        self.cancel_button.disabled = not busy      # last: Cancel's state says all is set

    def _on_recipe(self, change) -> None:
        if self._quiet_recipe or self.reduction is None or change["new"] is None:
            return
        if change["new"] != self.reduction.recipe.name:
            try:
                self.set_files(self.reduction.files, change["new"])
            except GmosError as exc:
                self._show_error(exc)

    def _build_rows(self) -> None:
        self._rows = []
        for step in self.reduction.steps:
            button = W.Button(description=f"{step.index + 1}. {step.label}",
                              tooltip=step.definition.doc if hasattr(step.definition, "doc") else "",
                              layout=W.Layout(width="280px"))
            button.add_class("gmos-step")
            button.on_click(lambda _, i=step.index: self._choose(i))
            status = W.HTML("")
            status.add_class("gmos-step-status")
            elapsed = W.Label("", layout=W.Layout(width="64px"))
            self._rows.append({"button": button, "status": status, "elapsed": elapsed,
                               "box": W.HBox([button, status, elapsed])})
        self.step_list.children = [row["box"] for row in self._rows]
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        if self.reduction is None:
            return
        for step, row in zip(self.reduction.steps, self._rows):
            color, text = _STATUS_STYLE.get(step.status, ("#000000", step.status))
            tip = f" title='{html.escape(str(step.error), quote=True)}'" if step.error else ""
            row["status"].value = f"<span style='color:{color}'{tip}>{text}</span>"
            row["elapsed"].value = "" if step.elapsed is None else f"{step.elapsed:.2f} s"

    def _build_form(self, index: int) -> None:
        step = self.reduction.steps[index]
        own = set(step.definition.params)
        self._form_widgets = {}
        own_widgets, generic = [], []
        for state in step.parameter_states():
            widget = param_widget(state)
            self._form_widgets[state.name] = widget
            (own_widgets if state.name in own else generic).append(widget)
        doc = getattr(step.definition, "doc", "") or ""
        self.form_title.value = (f"<b>{html.escape(step.label)}</b> parameters"
                                 + (f"<br><small>{html.escape(doc)}</small>" if doc else ""))
        self.form.children = own_widgets + [W.HTML("<small>generic</small>")] + generic

    def _update_progress(self, fraction: float = 0.0, message: str = "") -> None:
        if self.reduction is None:
            return
        steps = self.reduction.steps
        done = sum(s.status in (DONE, SKIPPED) for s in steps)
        self.progress.value = min(1.0, (done + fraction) / max(1, len(steps)))
        self.progress_text.value = f"{done}/{len(steps)} steps" + (f" - {message}" if message else "")

    def _append_log(self, line: str) -> None:
        self._log_lines.append(line)
        del self._log_lines[:-_LOG_LINES]
        self.log_box.value = "\n".join(self._log_lines)

    def _on_event(self, event) -> None:
        kind = event.kind
        if kind == "log" and event.record is not None:
            self._append_log(f"{event.record.levelname:<7} {event.record.getMessage()}")
        elif kind == "progress":
            self._update_progress(event.fraction or 0.0, event.message)
        elif kind in ("step_started", "step_finished", "step_failed", "invalidated", "cancelled"):
            if kind in ("step_started", "invalidated"):
                self._generation[event.step_index] = self._generation.get(event.step_index, 0) + 1
                if self._cancel_requested and kind == "step_started":
                    self.reduction.cancel()        # a cancel clicked before the run took hold
                if self.selected is not None and event.step_index <= self.selected:
                    self.image_view.set_stale(f"step {event.step_index + 1} is being re-run")
            self._refresh_rows()
            self._update_progress()
            if kind == "step_finished" and self._following:
                self._follow_to(event.step_index)
            elif kind == "step_finished" and event.step_index == self.selected:
                self.show_output(wait=False)      # the step chosen by hand, recomputed
            elif kind == "step_failed":
                self.select(event.step_index, wait=False)
                self._show_error(event.error or GmosError(event.message))
            elif kind == "cancelled":
                self._append_log(f"Cancelled during step {event.step_index + 1}; "
                                 "earlier results are kept.")
