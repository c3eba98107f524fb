"""SkyView: the frames, their CCD footprints and their sources on the sky (ipyaladin)."""
from __future__ import annotations

import html
import socket
import threading
from pathlib import Path

import astropy.units as u
import ipywidgets as W
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from . import preview as display
from ._aladin_offline import aladin_class

__all__ = ["SkyView", "stcs_polygon", "format_target", "survey_reachable"]

FRAME_COLOR = "#40c0ff"
STACK_COLOR = "#ffd000"
SOURCE_COLOR = "#00ff60"
#: Where Aladin Lite's default survey (DSS) comes from; checked to warn when it is unreachable.
SURVEY_HOST = ("alasky.cds.unistra.fr", 443)


def format_target(coord: SkyCoord) -> str:
    """``hh:mm:ss.ss +dd:mm:ss.s`` (RA to 0.01 s, Dec to 0.1")."""
    ra = coord.ra.to_string(unit=u.hourangle, sep=":", precision=2, pad=True)
    dec = coord.dec.to_string(unit=u.deg, sep=":", precision=1, pad=True, alwayssign=True)
    return f"{ra} {dec}"


def survey_reachable(host=SURVEY_HOST, timeout: float = 2.0) -> bool:
    """True if a TCP connection to the survey server opens within ``timeout`` seconds."""
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def _name_of(item) -> str:
    if isinstance(item, display.TiledFrame):
        return item.frame.filename
    return getattr(item, "filename", None) or Path(str(item)).name


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
        Height of the view in pixels before there is a field to show; then
        the height follows the footprints' extent (between ``height_range``)
        and the field of view fits them both ways.
    height_range : tuple of int
        Smallest and largest height in pixels.
    survey : str, optional
        HiPS survey for the background (needs the network).
    aladin_source : str, optional
        Where Aladin Lite comes from (see ``aladin_class``).
    layer_size : int
        Longest side of the FITS layer sent to the browser.
    width : int
        Width of the view in pixels (fixed, so the field fits both ways).
    check_survey : bool
        Check in the background whether the survey server can be reached,
        and say so under the view when it cannot.
    """

    def __init__(self, frames=None, stack=None, *, height: int = 480, width: int = 760,
                 height_range: tuple = (300, 760), survey: str | None = None,
                 aladin_source=None, layer_size: int = 512, check_survey: bool = True):
        self.layer_size = int(layer_size)
        self.width = int(width)
        self.height_range = tuple(int(h) for h in height_range)
        options = {"height": height, "target": "0 0", "fov": 0.2, "show_fullscreen_control": True}
        if survey:
            options["survey"] = survey
        self.aladin = aladin_class(aladin_source)(**options)
        self.aladin.add_class("gmos-aladin")
        self.aladin.layout = W.Layout(width=f"{width}px", max_width="100%")
        self.aladin.observe(self._on_loaded, names="_is_loaded")
        self.aladin.observe(self._on_shown, names="_is_reduced")
        self.aladin.observe(self._on_resized, names="_wcs")
        self._view_size: tuple | None = None   # (width, height) of the view, as last reported
        self.footprints: list = []     # (label, STC-S) drawn
        self.field: tuple | None = None   # (ra, dec, fov) in degrees, once there are footprints
        self.sources: Table | None = None
        self.layers: list = []         # HDULists sent as FITS layers
        self._overlays: list = []
        self._count = 0
        self.info = W.HTML("")
        self.info.add_class("gmos-sky-info")
        self.survey_note = W.HTML("")
        self.survey_note.add_class("gmos-survey-note")
        super().__init__([self.aladin, self.info, self.survey_note])
        self.add_class("gmos-skyview")
        if check_survey:
            threading.Thread(target=self._check_survey, daemon=True,
                             name="gmoswidgets-survey-check").start()
        if frames is not None or stack is not None:
            self.show(frames or [], stack)

    def show(self, frames=(), stack=None, sources=None) -> None:
        """Go to the frames' target and draw their footprints, the stack and its sources.

        Parameters
        ----------
        frames : Frame, path, TiledFrame or list of them
            Frames drawn as one footprint per CCD (files: from their headers
            only).
        stack : Frame, path or TiledFrame, optional
            Drawn as its own footprint; its sources (OBJCAT) are marked and it
            is shown as a FITS layer (one image resampled on the sky, see
            ``TiledFrame.sky_image``) with the image view's default cut
            (zscale of the good pixels).  Without a stack, the first frame is.
        sources : Frame, path or TiledFrame, optional
            The frame whose OBJCAT sources are marked (default: the stack,
            else the first frame).
        """
        items = list(frames) if isinstance(frames, (list, tuple)) else [frames]
        stack_tiled = display.as_tiled(stack) if stack is not None else None
        self._clear()
        every = []
        for item in items:
            name = _name_of(item)
            feet = display.footprints_of(item)
            self._draw([(f"{name} {ccd}", stcs_polygon(ra, dec)) for ccd, ra, dec in feet],
                       FRAME_COLOR, name)
            every += feet
        if stack_tiled is not None:
            feet = stack_tiled.footprints()
            self._draw([(f"{stack_tiled.frame.filename} {ccd}", stcs_polygon(ra, dec))
                        for ccd, ra, dec in feet], STACK_COLOR, stack_tiled.frame.filename,
                       line_width=3)
            every += feet
        if not items and stack_tiled is None:
            self.info.value = "No frame to show."
            return
        main = stack_tiled if stack_tiled is not None else display.as_tiled(items[0])
        layer = main.sky_image(self.layer_size)
        if layer is not None:       # Aladin Lite centres on a new image: add it first
            # scaled here with the image view's default cut (Aladin Lite's own cut of the raw
            # values leaves the sky nearly white), NaN off the field
            limits = display.cut_limits(main.good_pixels(), "zscale")
            layer[0].data = display.scale_to_unit(layer[0].data, limits).astype(np.float32)
            self.aladin.add_fits(layer, name=main.frame.filename, opacity=0.9,
                                 minCut=0.0, maxCut=1.0, stretch="linear")
            self.layers.append(layer)
        self._goto(every)
        self._add_sources(display.as_tiled(sources) if sources is not None else main)
        n_src = 0 if self.sources is None else len(self.sources)
        self.info.value = (f"{len(items)} frame(s), {len(self.footprints)} CCD footprint(s), "
                           f"{n_src} source(s) of {html.escape(main.frame.filename)}; "
                           f"centre {format_target(self.aladin.target)}")

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

    def _check_survey(self) -> None:
        if not survey_reachable():
            self.survey_note.value = (
                "<small style='color:#b06000'>The survey background (DSS, from CDS at "
                f"{SURVEY_HOST[0]}) cannot be reached from here: the sky around the frames "
                "stays dark grey. Footprints, sources and the stack are drawn all the same."
                "</small>")

    def _goto(self, footprints) -> None:
        """Centre on the footprints; the view's height from their extent, the field to fit them."""
        extent = display.sky_extent(footprints)
        if extent is None:
            return
        _, _, width, height = extent
        low, high = self.height_range
        pixels = int(np.clip(round(self.width * height / max(width, 1e-9)), low, high))
        ra, dec, fov = display.sky_field(footprints, self.width / pixels)
        self.field = (ra, dec, fov)
        self.aladin.height = pixels
        self.aladin.target = SkyCoord(ra, dec, unit="deg", frame="icrs")
        self._set_fov()
        # Aladin Lite is drawn from its initial options, whatever was set before (ipyaladin 0.8)
        self.aladin._init_options = {**self.aladin._init_options, "target": f"{ra} {dec}"}

    def _on_loaded(self, change) -> None:
        """Once Aladin Lite is drawn, set the field again: it ignores the one set before."""
        if change["new"] and self.field is not None:
            self._set_fov()

    def _on_shown(self, change) -> None:
        """When a hidden view (a closed tab: Aladin Lite sees a 1 x 1 div) is shown, fit it again.

        Aladin Lite keeps its scale, not its field, when its div is resized.
        """
        if not change["new"] and self.field is not None:
            self._set_fov()

    def _on_resized(self, change) -> None:
        """When the view's size changes, fit the field again: Aladin Lite keeps its scale.

        Aladin Lite may be drawn as wide as the page, before the view's own
        width applies; the field set then shrank by that ratio (760 / 1366 px)
        when the view took its width.  The browser reports the view's size in
        its WCS (NAXIS1, NAXIS2) after every change of it; a zoom or a pan
        keeps the size, so the user's own zoom is left alone.
        """
        wcs = change["new"] or {}
        size = (wcs.get("NAXIS1"), wcs.get("NAXIS2"))
        if None in size or size == self._view_size:
            return
        self._view_size = size
        if self.field is not None:
            self._set_fov()

    def _set_fov(self) -> None:
        fov = self.field[2]
        self.aladin.fov = fov * 1.001           # a change the browser acts on, then the field
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
