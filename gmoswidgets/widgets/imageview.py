"""ImageView: a bqplot image viewer for raw, intermediate, mosaic and stacked frames.

All pixel work happens in :mod:`gmoswidgets.widgets.preview`; this module only wires
its small results (PNG bytes, extents, readouts, histograms) to widgets.
"""
from __future__ import annotations

import html
import itertools
import threading
import time
from pathlib import Path

import bqplot as bq
import ipywidgets as W
import numpy as np

try:  # click and hover readout on top of PanZoom
    from bqplot_image_gl.interacts import MouseInteraction
except ImportError:  # without it: PanZoom only, readout through ImageView.click()
    MouseInteraction = None

from . import preview as display
from ..errors import GmosError
from ..frame import Frame

__all__ = ["ImageView", "LazyItem"]

_EMPTY_PNG = display.png_bytes(np.full((1, 1), np.nan, np.float32))
_VIEW_NUMBERS = itertools.count(1)
#: Width of the N/E arrows beside the picture, with the widgets' margins (px).
_COMPASS_WIDTH = 88


class LazyItem:
    """A picture made only when it is chosen in the frame selector (nothing held before).

    Parameters
    ----------
    label : str
        Its name in the selector.
    load : callable
        Returns a Frame, path or TiledFrame.
    """

    def __init__(self, label: str, load):
        self.label = label
        self.load = load


def _label_of(item, index) -> str:
    if isinstance(item, LazyItem):
        return f"{index + 1}: {item.label}"
    frame = item.frame if isinstance(item, display.TiledFrame) else item
    if isinstance(frame, Frame):
        return f"{index + 1}: {frame.filename}"
    return f"{index + 1}: {Path(str(frame)).name}"


class ImageView(W.VBox):
    """Show a frame: cuts, stretches, colour maps, zoom/pan, readout, DQ, sources, histogram.

    The browser only ever receives a PNG at most ``max_size`` pixels on its
    long side, re-rendered for the visible region after a zoom or pan.

    Parameters
    ----------
    frames : Frame, path, TiledFrame or list of them, optional
        What to show; a list adds a frame selector.
    max_size : int
        Longest side of the PNG sent to the browser.
    debounce : float
        Seconds to wait after the last zoom/pan before re-rendering; 0
        re-renders at once (used by tests).
    title : str
        Shown above the image.
    height : str
        CSS height of the image figure before there is data; with data, the
        picture fills the available width and its height follows from its
        aspect (CSS, at most 85 % of the window's height).
    sources : bool
        Mark the OBJCAT sources at first (the "Sources" toggle).
    """

    def __init__(self, frames=None, *, max_size: int = 1024, debounce: float = 0.3,
                 title: str = "", height: str = "420px", sources: bool = True):
        self.max_size = int(max_size)
        self.debounce = float(debounce)
        self.tiled: display.TiledFrame | None = None
        self.preview: display.Preview | None = None
        self.overlay: display.Preview | None = None
        self.last_readout: display.Readout | None = None
        self.render_seconds = 0.0
        self._items: list = []
        self._timer: threading.Timer | None = None
        self._quiet = False
        self._lock = threading.RLock()

        self._title = f"<b>{html.escape(title)}</b>" if title else ""
        self._stale = False
        self.title = W.HTML(self._title)
        self.frame_select = W.Dropdown(options=[], description="Frame", layout=W.Layout(width="auto"))
        self.frame_select.add_class("gmos-frame-select")
        self.cut = W.Dropdown(options=list(display.CUTS), value="zscale", description="Cut",
                              layout=W.Layout(width="170px"))
        self.cut.add_class("gmos-cut")
        self.percentile = W.BoundedFloatText(value=99.5, min=50, max=100, step=0.5,
                                             description="% kept",
                                             style={"description_width": "52px"},
                                             layout=W.Layout(width="140px"))
        self.stretch = W.Dropdown(options=list(display.STRETCHES), value="linear",
                                  description="Stretch", layout=W.Layout(width="170px"))
        self.stretch.add_class("gmos-stretch")
        self.cmap = W.Dropdown(options=list(display.COLORMAPS), value="gray", description="Colours",
                               layout=W.Layout(width="170px"))
        self.cmap.add_class("gmos-cmap")
        self.dq_toggle = W.ToggleButton(value=False, description="DQ", tooltip="Show the DQ bits",
                                        layout=W.Layout(width="60px"))
        self.dq_toggle.add_class("gmos-dq-toggle")
        self.sources_toggle = W.ToggleButton(value=bool(sources), description="Sources",
                                             tooltip="Mark the OBJCAT sources",
                                             layout=W.Layout(width="80px"))
        self.sources_toggle.add_class("gmos-sources-toggle")
        self.reset_button = W.Button(description="Reset zoom", layout=W.Layout(width="100px"))
        self.reset_button.add_class("gmos-reset-zoom")
        self._hint = ("Point at or click the image for x, y, value, VAR, DQ and RA/Dec; "
                      "drag to pan, scroll to zoom.")
        self.readout = W.HTML(self._hint)
        self.readout.add_class("gmos-readout")
        self.status = W.HTML("")
        self.status.add_class("gmos-view-status")

        self.sx, self.sy = bq.LinearScale(), bq.LinearScale()
        scales = {"x": self.sx, "y": self.sy}
        self.image_mark = bq.Image(image=W.Image(value=_EMPTY_PNG, format="png"), scales=scales)
        self.dq_mark = bq.Image(image=W.Image(value=_EMPTY_PNG, format="png"), scales=scales,
                                visible=False)
        self.source_mark = bq.Scatter(x=[], y=[], scales=scales, marker="circle", colors=["#40e0ff"],
                                      default_size=64, fill=False, stroke_width=1, opacity=[0.7])
        self.figure = bq.Figure(
            marks=[self.image_mark, self.dq_mark, self.source_mark],
            axes=[bq.Axis(scale=self.sx, label="x (pixels)", grid_lines="none"),
                  bq.Axis(scale=self.sy, orientation="vertical", label="y", grid_lines="none")],
            interaction=self._interaction(),
            fig_margin={"top": 10, "bottom": 40, "left": 55, "right": 10},
            padding_x=0, padding_y=0, animation_duration=0,
            layout=W.Layout(width="100%", height=height))
        self.figure.add_class("gmos-image-figure")
        self.compass = W.HTML("")
        self.compass.add_class("gmos-compass")
        self.colorbar = W.HTML("")
        self.colorbar.add_class("gmos-colorbar")

        self.hx, self.hy = bq.LinearScale(), bq.LinearScale(min=0.0, max=1.05)
        self.hist_mark = bq.Bars(x=[0.0, 1.0], y=[0.0, 0.0], scales={"x": self.hx, "y": self.hy},
                                 colors=["steelblue"], padding=0.0, stroke="steelblue")
        self.hist_xaxis = bq.Axis(scale=self.hx, num_ticks=5, tick_format=".4~g", label="value",
                                  label_offset="32px")
        self.hist_figure = bq.Figure(
            marks=[self.hist_mark],
            axes=[self.hist_xaxis,
                  bq.Axis(scale=self.hy, orientation="vertical", num_ticks=3, tick_format=".1f",
                          label="log N (scaled)", label_offset="40px")],
            fig_margin={"top": 8, "bottom": 45, "left": 60, "right": 30},
            layout=W.Layout(width="100%", height="150px"), animation_duration=0)
        self.hist_figure.add_class("gmos-histogram")

        controls = W.HBox([self.cut, self.percentile, self.stretch, self.cmap, self.dq_toggle,
                           self.sources_toggle, self.reset_button],
                          layout=W.Layout(flex_flow="row wrap"))
        self.empty_note = W.HTML("<i>Nothing to show yet.</i>")
        self.empty_note.add_class("gmos-empty-note")
        picture = W.HBox([self.figure, self.compass], layout=W.Layout(width="100%",
                                                                      align_items="flex-start"))
        picture.add_class("gmos-picture")
        self.figure.layout.flex = "1 1 auto"
        self.fit_style = W.HTML("", layout=W.Layout(display="none"))   # a <style>, see _fit
        self._data_widgets = (controls, picture, self.colorbar, self.readout, self.hist_figure)
        super().__init__([self.fit_style, self.title, self.frame_select, self.empty_note, controls,
                          picture, self.colorbar, self.readout, self.hist_figure, self.status])
        self.add_class("gmos-imageview")
        self._css_class = f"gmos-imageview-{next(_VIEW_NUMBERS)}"
        self.add_class(self._css_class)
        self._set_empty(True)
        self.frame_select.layout.display = "none"
        self.percentile.layout.display = "none"

        for widget in (self.cut, self.percentile, self.stretch, self.cmap):
            widget.observe(self._on_style, names="value")
        self.dq_toggle.observe(self._on_dq, names="value")
        self.sources_toggle.observe(self._on_sources, names="value")
        self.reset_button.on_click(lambda _: self.reset_zoom())
        self.frame_select.observe(self._on_select, names="value")
        for scale in (self.sx, self.sy):
            scale.observe(self._on_zoom, names=["min", "max"])

        if frames is not None:
            self.show(frames)

    # -- public API ------------------------------------------------------------
    def show(self, frames, title: str | None = None, keep_zoom: bool = False) -> None:
        """Show a frame (or a list of frames, with a selector) in place of the current one.

        Parameters
        ----------
        frames : Frame, path, TiledFrame or list of them
        title : str, optional
            New title.
        keep_zoom : bool
            Keep the current zoom if the new picture has the same shape
            (e.g. the same step re-run).
        """
        items = list(frames) if isinstance(frames, (list, tuple)) else [frames]
        if not items:
            raise GmosError("ImageView.show needs at least one frame")
        self._set_title(title)
        self._items = items
        self._quiet = True
        try:
            self.frame_select.options = [(_label_of(item, i), i) for i, item in enumerate(items)]
            self.frame_select.value = 0
        finally:
            self._quiet = False
        self.frame_select.layout.display = None if len(items) > 1 else "none"
        self._set_tiled(display.as_tiled(items[0]), keep_zoom)

    def clear(self, message: str = "", title: str | None = None) -> None:
        """Show nothing (an empty picture, an empty histogram) and an optional message."""
        self._set_title(title)
        self._set_empty(True)
        self.tiled = self.preview = self.overlay = None
        self._items = []
        self._replace_image(self.image_mark, _EMPTY_PNG)
        self.source_mark.x, self.source_mark.y = [], []
        with self.hist_mark.hold_sync():
            self.hist_mark.x, self.hist_mark.y = [0.0, 1.0], [0.0, 0.0]
        self.status.value = message

    def set_stale(self, reason: str) -> None:
        """Mark the picture shown as out of date (until the next :meth:`show` or :meth:`clear`).

        Called again, only the reason changes.
        """
        if self.tiled is None:
            return
        if not self._stale:
            self._stale = True
            self.add_class("gmos-stale")
        self.title.value = (f"{self._title} <span class='gmos-stale-note' style='color:#b06000'>"
                            f"(out of date: {html.escape(reason)})</span>")

    @property
    def region(self):
        """The visible region ``(x0, x1, y0, y1)`` in display coordinates, or None."""
        if None in (self.sx.min, self.sx.max, self.sy.min, self.sy.max):
            return None
        return (self.sx.min, self.sx.max, self.sy.min, self.sy.max)

    def zoom_to(self, x0: float, x1: float, y0: float, y1: float) -> None:
        """Show the region ``[x0, x1] x [y0, y1]`` (display coordinates), re-rendered sharply.

        The region is widened along one axis to the figure's aspect ratio, so
        pixels stay square.
        """
        ratio = self.figure.max_aspect_ratio
        width, height = abs(x1 - x0), abs(y1 - y0)
        if height > 0 and width / height < ratio:
            pad = (height * ratio - width) / 2
            x0, x1 = min(x0, x1) - pad, max(x0, x1) + pad
        elif width > 0:
            pad = (width / ratio - height) / 2
            y0, y1 = min(y0, y1) - pad, max(y0, y1) + pad
        self._quiet = True
        try:
            self.sx.min, self.sx.max, self.sy.min, self.sy.max = (float(v) for v in (x0, x1, y0, y1))
        finally:
            self._quiet = False
        self.refresh()

    def reset_zoom(self) -> None:
        """Show the whole picture."""
        if self.tiled is None:
            return
        ny, nx = self.tiled.shape
        self.zoom_to(-0.5, nx - 0.5, -0.5, ny - 0.5)

    def click(self, x: float, y: float) -> display.Readout | None:
        """Read the pixel at display position (x, y) and show it in the readout line."""
        if self.tiled is None:
            return None
        self.last_readout = self.tiled.readout(x, y)
        self.readout.value = self.last_readout.format(self.tiled.unit)
        return self.last_readout

    def refresh(self) -> None:
        """Re-render the visible region now (cuts, stretch, colours, DQ, histogram)."""
        with self._lock:
            if self.tiled is None:
                return
            start = time.perf_counter()
            region = self.region
            try:
                preview = self.tiled.render(region, self.max_size, cut=self.cut.value,
                                            stretch=self.stretch.value, cmap=self.cmap.value,
                                            percentile=self.percentile.value)
            except GmosError as exc:
                self.status.value = f"<span style='color:red'>{exc}</span>"
                return
            self.preview = preview
            self._place(self.image_mark, preview)
            if self.dq_toggle.value:
                self.overlay = self.tiled.dq_overlay(region, self.max_size)
                if self.overlay is not None:
                    self._place(self.dq_mark, self.overlay)
            counts, edges = self.tiled.histogram(region)
            with self.hx.hold_sync():          # the axis range first, in one message
                self.hx.min, self.hx.max = float(edges[0]), float(edges[-1])
            with self.hist_mark.hold_sync():
                self.hist_mark.x = (0.5 * (edges[:-1] + edges[1:])).astype(np.float64)
                # log counts scaled to 1: a fixed y range draws reliably and shows the tails
                logc = np.log1p(counts.astype(np.float64))
                self.hist_mark.y = logc / max(float(logc.max()), 1e-12)
            unit = self.tiled.unit
            self.hist_xaxis.label = f"value ({unit}), good pixels"
            self.render_seconds = time.perf_counter() - start
            low, high = preview.limits
            self.colorbar.value = (
                f"<div style='display:flex;align-items:center;gap:8px;font-size:12px'>"
                f"<span>{low:.5g}</span><div style='flex:1;height:12px;border:1px solid #888;"
                f"background:{display.colorbar_css(self.cmap.value)}'></div>"
                f"<span>{high:.5g} {html.escape(unit)} ({html.escape(self.stretch.value)})</span>"
                f"</div>")
            self.status.value = (f"{self.tiled.shape[1]} x {self.tiled.shape[0]} pixels, shown 1:"
                                 f"{preview.factor}; cuts {low:.5g} .. {high:.5g} {unit} "
                                 "(from pixels with DQ = 0)")

    # -- internals ---------------------------------------------------------------
    def _set_title(self, title: str | None) -> None:
        if title is not None:
            self._title = f"<b>{html.escape(title)}</b>"
        self.title.value = self._title
        if self._stale:
            self._stale = False
            self.remove_class("gmos-stale")

    def _set_empty(self, empty: bool) -> None:
        """No dark empty boxes before there is data: hide the picture, show a note."""
        for widget in self._data_widgets:
            widget.layout.display = "none" if empty else None
        self.empty_note.layout.display = None if empty else "none"

    def _draw_compass(self, tiled: display.TiledFrame) -> None:
        arrows = tiled.compass()
        if arrows is None:
            self.compass.value = ""
            return
        parts = []
        for (dx, dy), label, colour in ((arrows[0], "N", "#d04000"), (arrows[1], "E", "#0060c0")):
            x, y = 40 + 26 * dx, 40 - 26 * dy           # SVG y runs down, display y up
            tx, ty = 40 + 36 * dx, 44 - 36 * dy
            parts.append(f"<line x1='40' y1='40' x2='{x:.1f}' y2='{y:.1f}' stroke='{colour}' "
                         f"stroke-width='2' marker-end='url(#gmos-arrow-{label})'/>"
                         f"<text x='{tx:.1f}' y='{ty:.1f}' fill='{colour}' font-size='13' "
                         f"text-anchor='middle' font-weight='bold'>{label}</text>")
        markers = "".join(f"<marker id='gmos-arrow-{k}' markerWidth='6' markerHeight='6' refX='5' "
                          f"refY='3' orient='auto'><path d='M0,0 L6,3 L0,6 z' fill='{c}'/></marker>"
                          for k, c in (("N", "#d04000"), ("E", "#0060c0")))
        self.compass.value = (f"<svg width='80' height='80' aria-label='North and East'>"
                              f"<defs>{markers}</defs>{''.join(parts)}</svg>")

    def _set_tiled(self, tiled: display.TiledFrame, keep_zoom: bool) -> None:
        same_shape = self.tiled is not None and self.tiled.shape == tiled.shape
        self.tiled = tiled
        self.last_readout = None
        self._set_empty(False)
        self._draw_compass(tiled)
        self.readout.value = self._hint
        ny, nx = tiled.shape
        ratio = float(np.clip(nx / ny, 0.05, 20))
        self._fit(ratio, compass=bool(self.compass.value))
        self.figure.min_aspect_ratio = 0.01
        self.figure.max_aspect_ratio = ratio
        self.figure.min_aspect_ratio = ratio
        x, y, _, _ = tiled.sources()
        self.source_mark.x, self.source_mark.y = x, y
        self.source_mark.visible = self.sources_toggle.value and len(x) > 0
        if keep_zoom and same_shape:
            self.refresh()
        else:
            self.reset_zoom()

    def _fit(self, ratio: float, compass: bool) -> None:
        """Let the figure fill the width it is given, its height from the picture's aspect.

        The width is only known in the browser, so the height is a CSS
        expression of it (container query units), not a guessed number.
        """
        margins = self.figure.fig_margin
        beside = margins["left"] + margins["right"] + (_COMPASS_WIDTH if compass else 4)
        above = margins["top"] + margins["bottom"]
        box = f".{self._css_class}"
        self.fit_style.value = (
            f"<style>{box} .gmos-picture {{ container-type: inline-size; }} "
            f"{box} .gmos-image-figure {{ height: calc((100cqw - {beside}px) / {ratio:.6g} "
            f"+ {above}px) !important; min-height: 200px; max-height: 85vh; }}</style>")

    def _interaction(self):
        """PanZoom (drag, wheel) behind bqplot-image-gl's MouseInteraction (click, hover).

        bqplot's PanZoom layer covers the marks, so the image itself never
        sees a click; MouseInteraction reports clicks and moves in data
        coordinates and passes drags and wheel events on to PanZoom.
        """
        panzoom = bq.interacts.PanZoom(scales={"x": [self.sx], "y": [self.sy]})
        if MouseInteraction is None:
            return panzoom
        mouse = MouseInteraction(x_scale=self.sx, y_scale=self.sy, next=panzoom,
                                 events=["click", "mousemove"], move_throttle=100)
        mouse.on_msg(self._on_mouse)
        return mouse

    @staticmethod
    def _replace_image(mark, png: bytes) -> None:
        # bqplot's Image view only redraws on a new ipywidgets.Image (widget-stack.md §2)
        old = mark.image
        mark.image = W.Image(value=png, format="png")
        old.close()

    def _place(self, mark, preview: display.Preview) -> None:
        x0, x1, y0, y1 = preview.extent
        with mark.hold_sync():
            mark.x, mark.y = [x0, x1], [y0, y1]
            self._replace_image(mark, preview.png)

    def _on_style(self, _change) -> None:
        self.percentile.layout.display = None if self.cut.value == "percentile" else "none"
        self.refresh()

    def _on_dq(self, change) -> None:
        self.dq_mark.visible = bool(change["new"])
        if change["new"]:
            self.refresh()

    def _on_sources(self, change) -> None:
        self.source_mark.visible = bool(change["new"]) and len(self.source_mark.x) > 0

    def _on_select(self, change) -> None:
        if self._quiet or change["new"] is None or not self._items:
            return
        item = self._items[change["new"]]
        self._set_tiled(display.as_tiled(item.load() if isinstance(item, LazyItem) else item),
                        keep_zoom=True)

    def _on_zoom(self, _change) -> None:
        if self._quiet or self.tiled is None:
            return
        if self.debounce <= 0:
            self.refresh()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.debounce, self.refresh)
        self._timer.daemon = True
        self._timer.start()

    def _on_mouse(self, _interaction, content, _buffers=None) -> None:
        domain = content.get("domain") or {}
        if content.get("event") in ("click", "mousemove") and "x" in domain and "y" in domain:
            self.click(float(domain["x"]), float(domain["y"]))
