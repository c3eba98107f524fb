"""SkyView: the frames, their CCD footprints and their sources on the sky (ipyaladin)."""
from __future__ import annotations

import ipywidgets as W
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from . import preview as display
from ._aladin_offline import aladin_class

__all__ = ["SkyView", "stcs_polygon"]

FRAME_COLOR = "#40c0ff"
STACK_COLOR = "#ffd000"
SOURCE_COLOR = "#00ff60"


def stcs_polygon(ra, dec) -> str:
    """An STC-S ICRS polygon string from corner coordinates in degrees."""
    return "POLYGON ICRS " + " ".join(f"{r:.7f} {d:.7f}" for r, d in zip(ra, dec))


class SkyView(W.VBox):
    """Aladin Lite view centred on the frames, with CCD footprints, sources and FITS layers.

    Works without a network: the target is always given as coordinates (no
    name resolution), Aladin Lite is loaded from a local copy (see
    :func:`gmoswidgets.widgets._aladin_offline.aladin_class`) and the frames
    themselves are sent as small FITS layers; only the survey background
    needs the network.

    Parameters
    ----------
    frames : Frame, path, TiledFrame or list of them, optional
        The frames whose footprints to draw.
    stack : Frame, path or TiledFrame, optional
        The stacked image: its footprint, sources and FITS layer are drawn.
    height : int
        Height of the view in pixels.
    survey : str, optional
        HiPS survey for the background (needs the network).
    aladin_source : str, optional
        Where Aladin Lite comes from (see ``aladin_class``).
    layer_size : int
        Longest side of the FITS layer sent to the browser.
    aspect : float
        Expected width / height of the view, to fit the field vertically too.
    """

    def __init__(self, frames=None, stack=None, *, height: int = 400, survey: str | None = None,
                 aladin_source=None, layer_size: int = 512, aspect: float = 2.5):
        self.layer_size = int(layer_size)
        self.aspect = float(aspect)
        options = {"height": height, "target": "0 0", "fov": 0.2, "show_fullscreen_control": True}
        if survey:
            options["survey"] = survey
        self.aladin = aladin_class(aladin_source)(**options)
        self.aladin.add_class("gmos-aladin")
        self.footprints: list = []     # (label, STC-S) drawn
        self.sources: Table | None = None
        self.layers: list = []         # HDULists sent as FITS layers
        self._overlays: list = []
        self._count = 0
        self.info = W.HTML("")
        self.info.add_class("gmos-sky-info")
        super().__init__([self.aladin, self.info])
        self.add_class("gmos-skyview")
        if frames is not None or stack is not None:
            self.show(frames or [], stack)

    def show(self, frames=(), stack=None, sources=None) -> None:
        """Go to the frames' target and draw their footprints, the stack and its sources.

        Parameters
        ----------
        frames : Frame, path, TiledFrame or list of them
            Frames drawn as one footprint per CCD.
        stack : Frame, path or TiledFrame, optional
            Drawn as its own footprint; its sources (OBJCAT) are marked and it
            is shown as a FITS layer (one image resampled on the sky, see
            ``TiledFrame.sky_image``).  Without a stack, the first frame is.
        sources : Frame, path or TiledFrame, optional
            The frame whose OBJCAT sources are marked (default: the stack,
            else the first frame), e.g. a ``detectSources`` output.
        """
        items = list(frames) if isinstance(frames, (list, tuple)) else [frames]
        tiled = [display.as_tiled(item) for item in items]
        stack_tiled = display.as_tiled(stack) if stack is not None else None
        self._clear()
        drawn = []
        for t in tiled:
            polygons = [(f"{t.frame.filename} {name}", stcs_polygon(ra, dec))
                        for name, ra, dec in t.footprints()]
            self._draw(polygons, FRAME_COLOR, t.frame.filename)
            drawn.append(t)
        if stack_tiled is not None:
            polygons = [(f"{stack_tiled.frame.filename} {name}", stcs_polygon(ra, dec))
                        for name, ra, dec in stack_tiled.footprints()]
            self._draw(polygons, STACK_COLOR, stack_tiled.frame.filename, line_width=3)
            drawn.append(stack_tiled)
        if not drawn:
            self.info.value = "No frame to show."
            return
        main = stack_tiled if stack_tiled is not None else drawn[0]
        layer = main.sky_image(self.layer_size)
        if layer is not None:       # Aladin Lite centres on a new image: add it first
            self.aladin.add_fits(layer, name=main.frame.filename, opacity=0.9)
            self.layers.append(layer)
        self._goto(drawn)
        self._add_sources(display.as_tiled(sources) if sources is not None else main)
        n_src = 0 if self.sources is None else len(self.sources)
        self.info.value = (f"{len(tiled)} frame(s), {len(self.footprints)} CCD footprint(s), "
                           f"{n_src} source(s); target {self.aladin.target.to_string('hmsdms')}")

    # -- internals --------------------------------------------------------------
    def _clear(self) -> None:
        for overlay in self._overlays:
            try:
                self.aladin.remove_overlay(overlay)
            except ValueError:      # already removed from the view
                pass
        self._overlays, self.footprints, self.layers, self.sources = [], [], [], None

    def _name(self, label: str) -> str:
        self._count += 1
        return f"{label} #{self._count}"

    def _draw(self, polygons, color: str, name: str, line_width: int = 2) -> None:
        if not polygons:
            return
        self._overlays.append(self.aladin.add_graphic_overlay_from_stcs(
            [p for _, p in polygons], color=color, line_width=line_width, name=self._name(name)))
        self.footprints.extend(polygons)

    def _goto(self, tiled) -> None:
        field = display.sky_field(tiled, self.aspect)
        if field is not None:
            ra, dec, fov = field
            self.aladin.target = SkyCoord(ra, dec, unit="deg", frame="icrs")
            self.aladin.fov = fov

    def _add_sources(self, tiled: display.TiledFrame) -> None:
        _, _, ra, dec = tiled.sources()
        good = np.isfinite(ra) & np.isfinite(dec)
        if not good.any():
            return
        self.sources = Table({"ra": ra[good], "dec": dec[good]})
        self.sources["ra"].unit = self.sources["dec"].unit = "deg"
        self._overlays.append(self.aladin.add_table(
            self.sources, shape="circle", color=SOURCE_COLOR, source_size=10,
            name=self._name(f"{tiled.frame.filename} sources")))
