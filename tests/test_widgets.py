"""Widget panels driven without a browser: set values, click, assert kernel calls and state."""
import io
import logging
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from gmoswidgets import CalDBPanel, FilePanel, ImageView, ReductionApp, SkyView, StepPanel
from gmoswidgets.caldb import CalibrationService
from gmoswidgets.caldb.testing import write_calibration
from gmoswidgets.errors import ExpressionError, GmosError
from gmoswidgets.frame import read_frame
from gmoswidgets.membudget import spill_budget
from gmoswidgets.select import expr_parser, select_data
from gmoswidgets.widgets import _aladin_offline
from gmoswidgets.widgets import preview as display
from gmoswidgets.widgets.imageview import LazyItem

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _png_size(widget_image):
    return Image.open(io.BytesIO(widget_image.value)).size


# -- package ---------------------------------------------------------------------------

def test_import_gmoswidgets_loads_no_widget_library():
    code = ("import sys, gmoswidgets; "
            "bad = [m for m in ('ipywidgets', 'bqplot', 'ipyaladin') if m in sys.modules]; "
            "assert not bad, bad; "
            "assert gmoswidgets.ImageView.__name__ == 'ImageView'; "
            "assert 'ipywidgets' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- ImageView -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def science4(tutorial4):
    return read_frame(tutorial4.science[0])


@pytest.mark.slow          # the 2x2 dataset (4 s): made for the slow science accuracy tests
def test_preview_of_full_2x2_frame_is_bounded(tutorial2):
    frame = read_frame(tutorial2.science[0])
    view = ImageView(frame, debounce=0)
    assert view.tiled.shape == (2112, 3072)              # 3 CCDs of 2048x4224 binned 2x2
    nbytes = len(view.image_mark.image.value)
    width, height = _png_size(view.image_mark.image)
    assert max(width, height) <= 1024 and view.preview.factor == 3
    assert nbytes < 800_000, nbytes                        # vs 26 MB of float32 pixels
    assert view.image_mark.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_style_controls_send_a_new_image(science4):
    view = ImageView(science4, debounce=0)
    seen = [view.image_mark.image]
    for widget, value in ((view.stretch, "asinh"), (view.cmap, "viridis"), (view.cut, "minmax"),
                          (view.cut, "percentile"), (view.percentile, 90.0)):
        widget.value = value
        assert view.image_mark.image is not seen[-1]        # bqplot only redraws a new Image
        seen.append(view.image_mark.image)
    assert len({img.value for img in seen}) == len(seen)
    assert view.percentile.layout.display is None           # shown for the percentile cut
    low, high = view.preview.limits
    finite = view.tiled.data[np.isfinite(view.tiled.data)]
    assert low == pytest.approx(np.percentile(finite, 5), rel=0.05)
    assert high == pytest.approx(np.percentile(finite, 95), rel=0.05)


def test_zoom_rerenders_visible_region_sharper(science4):
    view = ImageView(science4, debounce=0, max_size=256)
    whole = view.preview
    view.sx.min, view.sx.max = 600.0, 700.0                  # what PanZoom does in the browser
    view.sy.min, view.sy.max = 500.0, 560.0
    assert view.preview.factor == 1 < whole.factor
    x0, x1, y0, y1 = view.image_mark.x.tolist() + view.image_mark.y.tolist()
    assert (x0, x1, y0, y1) == (599.5, 700.5, 499.5, 560.5)
    view.reset_button.click()
    assert view.preview.factor == whole.factor


def test_debounced_zoom_renders_once_after_the_last_change(science4):
    view = ImageView(science4, debounce=0.05, max_size=256)
    renders = []
    view.status.observe(lambda ch: renders.append(ch["new"]), names="value")
    view.sx.min, view.sx.max = 100.0, 200.0
    view.sy.min, view.sy.max = 100.0, 150.0
    view._timer.join(2)
    assert len(renders) == 1 and view.preview.factor == 1


def test_click_readout_shows_value_var_dq_and_sky(science4):
    view = ImageView(science4, debounce=0)
    mouse = view.figure.interaction                   # clicks and moves pass PanZoom's layer
    assert type(mouse).__name__ == "MouseInteraction"
    assert type(mouse.next).__name__ == "PanZoom" and mouse.events == ["click", "mousemove"]
    view._on_mouse(mouse, {"event": "click", "pixel": {"x": 1, "y": 2},
                           "domain": {"x": 700.2, "y": 400.6}})
    out = view.last_readout
    hit = view.tiled.piece_at(700.2, 400.6)
    piece, row, col = hit
    assert out.value == float(science4[piece.ext].data[row, col])
    assert out.ra is not None and abs(out.ra - science4.descriptor("ra")) < 0.1
    assert "value=" in view.readout.value and " ADU" in view.readout.value   # raw: ADU
    assert "RA 19:21:" in view.readout.value and "Dec +13:" in view.readout.value


def test_compass_arrows_follow_the_wcs(science4):
    view = ImageView(science4, debounce=0)
    (nx, ny), (ex, ey) = view.tiled.compass()
    a, b, c = (view.tiled.readout(*p) for p in ((700, 400), (700, 450), (750, 400)))
    # moving along the North arrow raises Dec, along the East arrow raises RA
    assert np.sign(ny) == np.sign(b.dec - a.dec) and np.sign(ex) == np.sign(c.ra - a.ra)
    assert abs(nx * ex + ny * ey) < 0.05                     # perpendicular
    assert "N</text>" in view.compass.value and "E</text>" in view.compass.value
    assert "ADU" in view.colorbar.value and "ADU" in view.hist_xaxis.label


def test_picture_height_follows_its_width_and_aspect(science4):
    view = ImageView(science4, debounce=0)
    ny, nx = view.tiled.shape
    css = view.fit_style.value
    # the height is a CSS expression of the width given (no width assumed in the kernel),
    # scoped to this view only
    assert f"height: calc((100cqw - " in css and f"/ {nx / ny:.6g} +" in css
    assert css.count(f".{view._css_class} ") == 2 and view._css_class in view._dom_classes
    other = ImageView(science4, debounce=0)
    assert other._css_class != view._css_class


def test_no_empty_picture_before_data():
    view = ImageView()
    assert view.figure.layout.display is None or view.figure.layout.display == ""  # inside picture
    assert view._data_widgets[1].layout.display == "none"          # the picture box is hidden
    assert view.empty_note.layout.display is None


def test_dq_overlay_and_source_markers():
    from test_preview import _raw_like_frame
    from gmoswidgets.dq import COSMIC_RAY
    frame = _raw_like_frame()
    frame.exts[3].mask[5:8, 6:9] = COSMIC_RAY
    frame.exts[4].objcat = Table({"X_IMAGE": [7.0, 9.0], "Y_IMAGE": [11.0, 3.0]})
    view = ImageView(frame, debounce=0)
    assert not view.dq_mark.visible
    view.dq_toggle.value = True
    assert view.dq_mark.visible and view.overlay is not None
    rgba = np.asarray(Image.open(io.BytesIO(view.dq_mark.image.value)))
    assert (rgba[..., 3] > 0).sum() == 9
    assert list(view.source_mark.x) == [66.0, 68.0] and view.source_mark.visible
    view.sources_toggle.value = False
    assert not view.source_mark.visible


def test_show_new_frame_updates_in_place_and_lists_frames(tutorial4):
    frames = [read_frame(p) for p in tutorial4.science[:2]]
    view = ImageView(frames[0], debounce=0)
    first = view.image_mark.image.value
    view.show(frames, keep_zoom=True)
    assert view.frame_select.options[1][0].endswith(frames[1].filename)
    view.frame_select.value = 1
    assert view.tiled.frame is frames[1] and view.image_mark.image.value != first
    counts = view.hist_mark.y  # log counts scaled to a peak of 1
    assert len(counts) == 64 == len(view.hist_mark.x) and max(counts) == 1.0 and min(counts) >= 0


# -- SkyView ---------------------------------------------------------------------------------

def test_skyview_is_offline_and_draws_footprints(science4):
    sky = SkyView([science4], layer_size=128)
    assert type(sky.aladin).__name__ == "OfflineAladin"         # vendored Aladin Lite by default
    esm = sky.aladin.get_state()["_esm"]                          # what the browser receives
    assert "esm.sh" not in esm and "createObjectURL" in esm
    assert len(sky.footprints) == 3                              # one per CCD
    assert all(p.startswith("POLYGON ICRS ") for _, p in sky.footprints)
    target = sky.aladin.target
    assert abs(target.ra.deg - science4.descriptor("ra")) < 0.05
    assert abs(target.dec.deg - science4.descriptor("dec")) < 0.05
    assert 0.1 < sky.aladin.fov.deg < 0.5                         # 8' x 5.7' CCDs, with margin
    assert len(sky.layers) == 1 and max(sky.layers[0][0].data.shape) <= 128
    layer = sky.layers[0][0].data
    good = layer[np.isfinite(layer)]          # scaled with the image view's cut, not Aladin's
    assert good.min() >= 0 and good.max() <= 1 and 0.05 < np.median(good) < 0.9
    assert (good >= 1).mean() < 0.2                     # not burnt white
    import re
    from gmoswidgets.widgets.skyview import format_target
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d \+\d\d:\d\d:\d\d\.\d", format_target(target))
    assert "centre " + format_target(target) in sky.info.value


def test_skyview_field_fits_every_footprint_both_ways(science4):
    sky = SkyView([science4], layer_size=64, check_survey=False)
    _, _, width, height = display.sky_extent(display.footprints_of(science4))
    shown_x = sky.aladin.fov.deg                                 # across the view's width
    shown_y = shown_x * sky.aladin.height / sky.width
    assert width < shown_x < 1.3 * width or height < shown_y < 1.3 * height   # no wasted sky
    assert shown_x > width and shown_y > height                               # nothing cut
    assert 300 <= sky.aladin.height <= 760
    assert abs(sky.aladin.height / sky.width - height / width) < 0.02         # the field's shape
    # Aladin Lite starts from its initial options and ignores a field set before it is drawn:
    # the target is among them; the field is set again once it is drawn (browser test)
    options = sky.aladin._init_options
    assert options["target"] == f"{sky.aladin.target.ra.deg} {sky.aladin.target.dec.deg}"
    fov = sky.aladin.fov.deg
    sky.aladin.fov = fov / 2                      # as the browser reports its own field
    sky.aladin._is_loaded = True
    assert sky.aladin.fov.deg == fov
    # drawn as wide as the page, then given its width: Aladin Lite keeps its scale, so the
    # browser reports a smaller field and the view's new size; the field is set again
    wcs = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "NAXIS2": sky.aladin.height}
    sky.aladin._wcs = {**wcs, "NAXIS1": 1366}
    sky.aladin.fov = fov * sky.width / 1366
    sky.aladin._wcs = {**wcs, "NAXIS1": sky.width}
    assert sky.aladin.fov.deg == fov
    sky.aladin.fov = fov / 2                      # the user zooms in: the size is the same
    sky.aladin._wcs = {**wcs, "NAXIS1": sky.width, "CDELT1": -1e-4}
    assert sky.aladin.fov.deg == fov / 2


def test_skyview_says_when_the_survey_cannot_be_reached(science4, monkeypatch):
    from gmoswidgets.widgets import skyview
    monkeypatch.setattr(skyview, "SURVEY_HOST", ("127.0.0.1", 9))      # nothing listens there
    sky = SkyView([science4], layer_size=64)
    for _ in range(50):
        if sky.survey_note.value:
            break
        import time
        time.sleep(0.1)
    assert "cannot be reached" in sky.survey_note.value


def test_skyview_stack_sources_and_redraw():
    from test_preview import _raw_like_frame
    frames = [_raw_like_frame(), _raw_like_frame()]
    stack = _raw_like_frame()
    stack.exts[4].objcat = Table({"X_IMAGE": [7.0, 9.0], "Y_IMAGE": [11.0, 3.0]})
    sky = SkyView(frames, stack=stack)
    assert len(sky.footprints) == 9 and len(sky.sources) == 2
    assert len(sky.aladin.overlays) == 4                 # 2 frames, stack, sources
    sky.show(frames[:1])
    assert len(sky.footprints) == 3 and sky.sources is None
    assert len(sky.aladin.overlays) == 1                 # old overlays removed


def test_aladin_class_choices(tmp_path, monkeypatch):
    import ipyaladin
    assert _aladin_offline.aladin_class("cdn") is ipyaladin.Aladin
    url_cls = _aladin_offline.aladin_class("voila/files/vendor/aladin.js")
    assert 'new URL("voila/files/vendor/aladin.js",document.baseURI)' in url_cls()._esm
    local = tmp_path / "aladin.js"
    local.write_text("export default {};")
    monkeypatch.setenv(_aladin_offline.ENV_VAR, str(local))
    cls = _aladin_offline.aladin_class()
    # a target given as coordinates never needs the network
    widget = cls(target="10.6847 41.2687", fov=0.5)
    assert issubclass(cls, ipyaladin.Aladin) and '"export default {};"' in widget._esm
    assert widget.target.ra.deg == pytest.approx(10.6847)


# -- FilePanel ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def file_panel(tutorial4):
    return FilePanel(tutorial4.directory)


def test_save_as_refuses_fits_outside_and_non_list_files(tutorial4, tmp_path):
    """Issue 12 item 1: the Save-as box cannot replace a raw FITS or write outside the workdir."""
    playdata, work = tmp_path / "playdata", tmp_path / "playground"
    playdata.mkdir()
    work.mkdir()
    raw = playdata / tutorial4.files[0].name
    raw.write_bytes(tutorial4.files[0].read_bytes())
    notes = work / "notes.txt"
    notes.write_text("my observing notes\n")
    panel = FilePanel(playdata, workdir=work, preview=False)
    panel.apply_button.click()
    before = raw.read_bytes()
    for name in (f"../playdata/{raw.name}", str(raw), str(tmp_path / "abs.txt"), "../outside.txt",
                 "sub/../../outside.txt", "~/list.txt", "x.fits", "notes.txt", "", "."):
        panel.list_name.value = name
        panel.save_button.click()                        # refused: a message, no exception
        assert "refusing" in panel.message.value or "give a list file name" in panel.message.value
        with pytest.raises(GmosError):
            panel.save(name)
    assert raw.read_bytes() == before and notes.read_text() == "my observing notes\n"
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "abs.txt").exists()
    assert panel.save("list_of_all.txt") == work / "list_of_all.txt"
    assert panel.save("list_of_all.txt") == work / "list_of_all.txt"   # a list may be replaced
    (work / "lists").mkdir()
    assert panel.save("lists/bias.txt").read_text().count(".fits") == 1


@pytest.mark.parametrize("tags, xtags, expr", [
    (["BIAS"], [], "True"),
    (["FLAT"], [], 'filter_name=="i"'),
    ([], ["CAL"], "True"),
    ([], [], '(object=="starfield" and exposure_time==10.)'),
    ([], [], 'observation_class=="science" or exposure_time>20'),
    ([], [], 'ut_date<"2017-06-14"'),
])
def test_file_filters_match_dataselect(file_panel, tutorial4, tags, xtags, expr):
    file_panel.tags.value, file_panel.xtags.value, file_panel.expression.value = tags, xtags, expr
    file_panel.apply_button.click()
    expected = select_data(sorted(tutorial4.directory.glob("*.fits")), tags, xtags, expr)
    assert file_panel.selected == expected and expected
    names = [c.description for c in file_panel.table.children if "gmos-file-row" in c._dom_classes]
    assert sorted(names) == sorted(p.name for p in expected)


def test_file_expression_error_is_the_parser_message(file_panel):
    file_panel.tags.value, file_panel.xtags.value = [], []
    file_panel.expression.value = 'filter_name="i"'
    file_panel.apply_button.click()
    with pytest.raises(ExpressionError) as info:
        expr_parser('filter_name="i"')
    assert file_panel.selected == []
    assert "single &#x27;=&#x27;" in file_panel.message.value or "single '='" in file_panel.message.value
    from html import escape
    assert escape(str(info.value), quote=False) in file_panel.message.value


def test_file_table_sorts_saves_and_previews(file_panel, tutorial4, tmp_path):
    file_panel.tags.value, file_panel.xtags.value, file_panel.expression.value = ["FLAT"], [], "True"
    file_panel.apply_button.click()
    assert file_panel.list_name.value == "list_of_flats.txt"        # the tutorial's name
    header = next(c for c in file_panel.table.children if getattr(c, "description", "")
                  .startswith("exposure_time"))
    header.click()
    rows = [r for r in file_panel._sorted_rows()]
    times = [r.values["exposure_time"] for r in rows]
    assert times == sorted(times) and len(set(times)) > 1    # flats: 40 to 16 s
    header = next(c for c in file_panel.table.children if getattr(c, "description", "")
                  .startswith("exposure_time"))
    header.click()
    assert [r.values["exposure_time"] for r in file_panel._sorted_rows()] == sorted(times)[::-1]
    # untick one, save the rest as a list file
    checks = [c for c in file_panel.table.children if c.__class__.__name__ == "Checkbox"]
    checks[0].value = False
    file_panel.workdir = tmp_path
    target = file_panel.save("list_of_flats.txt")
    assert target == tmp_path / "list_of_flats.txt"
    lines = target.read_text().split()
    assert len(lines) == len(rows) - 1 and all(line.endswith(".fits") for line in lines)
    handed = []
    file_panel.on_selection(lambda paths, name: handed.append((paths, name)))
    file_panel.use_button.click()
    assert [str(p) for p in handed[0][0]] == lines
    # click a file name: preview
    button = next(c for c in file_panel.table.children if "gmos-file-row" in c._dom_classes)
    button.click()
    assert file_panel.image_view.tiled.frame.filename == button.description


# -- StepPanel ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bias_panel(tutorial4, tmp_path_factory):
    """A StepPanel on one night's biases (N20170613S0180-184), not run yet."""
    work = tmp_path_factory.mktemp("bias_panel")
    files = select_data(tutorial4.files, ["BIAS"], [], 'ut_date=="2017-06-13"')
    assert len(files) == 5
    return StepPanel(files=files, background=False, workdir=work, keep="all")


@pytest.fixture(scope="module")
def master_bias(bias_panel):
    """The master bias made by the bias panel (run to its end if a test has not)."""
    if not bias_panel.reduction.finished:
        bias_panel.run_all()
    return bias_panel.reduction.output_filenames[0]


def test_steppanel_runs_bias_recipe_step_by_step(bias_panel):
    panel = bias_panel
    red = panel.reduction
    assert red.recipe.name == "makeProcessedBias"
    labels = [row["button"].description for row in panel._rows]
    assert labels[0] == "1. prepare" and labels[-1].endswith("storeProcessedBias")
    pngs = [panel.image_view.image_mark.image.value]
    for i in range(len(red.steps)):
        panel.run_next_button.click()
        assert red.steps[i].status == "done"
        assert "done" in panel._rows[i]["status"].value and panel._rows[i]["elapsed"].value
        assert panel.selected == i
        pngs.append(panel.image_view.image_mark.image.value)
    # the preview changed after every step that changes pixels (prepare, overscan, stack)
    assert pngs[1] != pngs[0] and pngs[4] != pngs[3] and pngs[5] != pngs[4]
    assert panel.progress.value == 1.0
    assert "makeProcessedBias" in panel.title.value and "wrote" in panel.log_box.value
    assert red.output_filenames and red.output_filenames[0].endswith("_bias.fits")


def test_steppanel_form_tooltips_come_from_declarations(bias_panel):
    panel = bias_panel
    index = panel.reduction.step("overscanCorrect").index
    panel._rows[index]["button"].click()
    step = panel.reduction.steps[index]
    for name, widget in panel._form_widgets.items():
        assert widget.tooltip == step.declarations[name].doc
    assert set(step.definition.params) <= set(panel._form_widgets)


def test_steppanel_form_reads_none_as_none(tutorial4, tmp_path):
    """An optional string parameter (biasCorrect:bias) shows None; read back it is None, so
    the untouched form changes nothing (it was the string 'None', a file name)."""
    files = select_data(tutorial4.files, ["FLAT"])[:2]
    panel = StepPanel(files=files, background=False, workdir=tmp_path)
    panel.select(panel.reduction.step("biasCorrect").index, draw=False)
    assert panel._form_widgets["bias"].value == "None"
    assert panel.form_changes() == {}
    panel._form_widgets["bias"].value = "None "
    assert panel.form_changes() == {}


def test_steppanel_rerun_with_changed_parameter_updates_only_later_steps(bias_panel):
    panel = bias_panel
    red = panel.reduction
    index = red.step("overscanCorrect").index
    earlier = [red.outputs(i)[0] for i in range(index)]
    earlier_elapsed = [s.elapsed for s in red.steps[:index]]
    before = red.outputs(index)[0][0].data.copy()
    panel.select(index)
    panel._form_widgets["nbiascontam"].value = "12"        # optional int: a text box
    assert panel.form_changes() == {"nbiascontam": 12}
    panel.rerun_button.click()
    assert [red.outputs(i)[0] for i in range(index)] == earlier          # same objects
    assert all(a is b for a, b in zip([red.outputs(i)[0] for i in range(index)], earlier))
    assert [s.elapsed for s in red.steps[:index]] == earlier_elapsed
    assert red.steps[index].source("nbiascontam") == "user"
    assert panel.selected == len(red.steps) - 1                 # follows the run to its end
    panel.select(index)
    assert "nbiascontam (user)" in panel._form_widgets["nbiascontam"].description
    assert all(s.status == "done" for s in red.steps)
    assert not np.array_equal(red.outputs(index)[0][0].data, before)


def test_steppanel_before_after_difference(bias_panel):
    panel = bias_panel
    red = panel.reduction
    index = red.step("overscanCorrect").index
    panel.select(index)
    panel.view_mode.value = "before"
    before = panel.image_view.tiled.data.copy()
    panel.view_mode.value = "after"
    after = panel.image_view.tiled.data.copy()
    panel.view_mode.value = "difference"
    diff = panel.image_view.tiled.data
    np.testing.assert_allclose(diff, after - before, equal_nan=True)
    assert np.nanmedian(diff) < -100               # the overscan (bias) level was removed
    panel.view_mode.value = "after"


@pytest.mark.slow
def test_steppanel_shows_steps_spilled_beyond_the_budget(tutorial4, tmp_path, monkeypatch):
    """The panel's reductions keep every step ('spill'); with no in-memory budget left, earlier
    steps are written and read back from disk, for the engine and for the view."""
    monkeypatch.setattr(spill_budget(), "limit", 0)
    files = select_data(tutorial4.files, ["BIAS"])[:2]
    panel = StepPanel(files=files, background=False, workdir=tmp_path)
    red = panel.reduction
    assert red.keep == "spill"
    panel.run_to(3)
    assert red.outputs(0)[0] is not red.outputs(0)[0]       # read back from the spill files
    panel.select(1)
    panel.view_mode.value = "difference"            # read back from disk for the view
    np.testing.assert_allclose(panel.image_view.tiled.data[10:20, 10:20], 0, atol=1e-6)
    assert red.steps[3].status == "done"


def test_steppanel_background_run_and_cancel(tutorial4, tmp_path):
    files = select_data(tutorial4.files, ["BIAS"])[:3]
    panel = StepPanel(files=files, background=True, workdir=tmp_path, follow=False)
    worker = panel.run_to(2)
    assert worker is not None
    panel.join(60)
    assert [s.status for s in panel.reduction.steps[:3]] == ["done"] * 3
    assert not panel.busy and not panel.run_all_button.disabled
    # cancel: requested before the next step starts, the run stops; results are kept
    panel.reduction.subscribe(lambda ev: panel.cancel() if ev.kind == "step_started" else None)
    panel.run_all()
    panel.join(60)
    assert panel.reduction.steps[2].status == "done"
    assert panel.reduction.steps[-1].status == "pending"
    assert "cancel" in panel.error.value.lower()


def test_steppanel_draws_nothing_during_a_run_but_what_is_asked(tutorial4, tmp_path):
    files = select_data(tutorial4.files, ["BIAS"])[:2]
    panel = StepPanel(files=files, background=False, workdir=tmp_path)
    shown = []
    show = panel.image_view.show
    panel.image_view.show = lambda frames, **kw: (shown.append(kw.get("title")), show(frames, **kw))
    red = panel.reduction
    notes = []
    red.subscribe(lambda ev: notes.append(panel.image_view.status.value)
                  if ev.kind == "step_started" and ev.step_index == 1 else None)
    panel.run_all()
    assert notes == ["The run is at step 1; its picture is drawn when the run ends, or click a "
                     "step to see it now."]
    last = len(red.steps) - 1
    assert panel.selected == last                          # the selection followed the run
    assert shown == [f"after: step {last + 1} {red.steps[last].label}"]   # drawn once, at the end
    assert panel.image_view.tiled is not None and not panel.image_view._stale
    # a step chosen by hand during a re-run stays chosen: drawn when it has been recomputed
    # (at the click it has no output yet), nothing else is drawn
    shown.clear()
    red.subscribe(lambda ev: panel._rows[1]["button"].click()
                  if ev.kind == "step_started" and ev.step_index == 1 else None)
    panel.rerun_from(0)
    assert panel.selected == 1
    assert shown == [f"after: step 2 {red.steps[1].label}"]


def _log_each(frame):
    """Per-frame work that logs (run by the executor, in its worker threads)."""
    logging.getLogger("gmoswidgets.test").info("worker on %s in %s", frame.filename,
                                               threading.current_thread().name)
    return frame.copy()


def test_steppanel_log_shows_its_own_runs_worker_threads(fake_env):
    from gmoswidgets.executor import ThreadExecutor
    from gmoswidgets.primitives.base import Primitive, PrimitiveTable
    from gmoswidgets.recipes import Recipe, RecipeStep
    from gmoswidgets.reduction import Reduction

    table = PrimitiveTable([Primitive("fakeLogEach", lambda frames, ctx: ctx.map(_log_each, frames),
                                      {}, "_logged", "Log in a worker thread for each frame.")])
    recipe = Recipe("fakeLogging", (RecipeStep("fakeLogEach"),), frozenset({"GMOS", "BIAS"}),
                    frozenset({"PROCESSED"}))
    book = fake_env.recipes.with_recipes(recipe)
    panels = [StepPanel(Reduction(files, recipe, primitives=table, recipes=book, keep="all",
                                  executor=ThreadExecutor(2)), background=True)
              for files in (fake_env.biases[:2], fake_env.biases[2:])]
    for panel in panels:                                   # two runs at the same time
        panel.run_all()
    for panel in panels:
        panel.join(60)
    for panel in panels:
        lines = [line for line in panel.log_box.value.splitlines() if "worker on" in line]
        names = sorted(line.split()[3] for line in lines)
        assert names == sorted(p.name for p in panel.reduction.files), panel.log_box.value
        assert all("ThreadPoolExecutor" in line for line in lines)     # not the run's thread


def test_steppanel_error_is_shown_on_its_step(tutorial4, tmp_path):
    empty = CalibrationService(database_dir=tmp_path / "emptydb")
    empty.init()
    files = select_data(tutorial4.files, ["FLAT"])[:2]
    panel = StepPanel(files=files, background=False, workdir=tmp_path, calservice=empty)
    panel.run_all_button.click()
    red = panel.reduction
    failed = [s for s in red.steps if s.status == "failed"]
    assert len(failed) == 1 and failed[0].primitive == "biasCorrect"
    assert "failed" in panel._rows[failed[0].index]["status"].value
    assert "biasCorrect" in panel.error.value and "processed_bias" in panel.error.value
    assert all(s.status == "done" for s in red.steps[:failed[0].index])
    assert red.has_outputs(failed[0].index - 1)            # earlier results kept


# -- CalDBPanel ------------------------------------------------------------------------------

def test_caldb_panel_add_list_remove_explain(master_bias, bias_panel, tmp_path):
    service = CalibrationService(database_dir=tmp_path / "db")
    panel = CalDBPanel(service)
    assert "caldb init" in panel.config_text.value
    panel.init_button.click()
    assert "0 processed_bias" in panel.config_text.value
    bias = master_bias
    panel.add_path.value = bias
    panel.add_button.click()
    assert [e.filename for e in service.list_files()] == [bias.split("/")[-1]]
    labels = [c.value for c in panel.table.children if hasattr(c, "value")]
    assert "processed_bias" in labels and "4x4" in labels and "slow/low" in labels
    # a raw file is refused with the service's message
    panel.add_path.value = str(bias_panel.reduction.files[0])
    panel.add_button.click()
    assert "not a processed calibration" in panel.message.value
    # explain: the 4x4 bias cannot calibrate a 2x2 science frame (headers as the tutorial's)
    science2 = write_calibration(tmp_path / "N20170614S0201.fits", "science", binning=(2, 2),
                                 date="2017-06-14T05:00:00")
    panel.explain_path.value = str(science2)
    panel.explain_button.click()
    assert set(panel.reports) == {"processed_bias", "processed_flat"}
    report = panel.reports["processed_bias"][0]
    assert not report.chosen and report.reasons
    failed = [name for name, ok, _ in report.checks if not ok]
    assert any("bin" in name.lower() for name in failed)
    assert "rejected" in panel.explanation.value and not panel.matches["processed_bias"].found
    # ... and is chosen for a 4x4 science frame of its epoch
    panel.explain(bias_panel.reduction.files[0].parent / "N20170614S0201.fits",
                  ["processed_bias"])
    assert panel.reports["processed_bias"][0].chosen and panel.matches["processed_bias"].found
    # remove
    remove = next(c for c in panel.table.children if "gmos-caldb-remove" in c._dom_classes)
    remove.click()
    assert service.list_files() == [] and "file kept" in panel.message.value


def test_caldb_panel_shows_missing_files(master_bias, tmp_path):
    import shutil
    copy = tmp_path / "N20170613S0180_bias.fits"
    shutil.copy(master_bias, copy)
    service = CalibrationService(database_dir=tmp_path / "db2")
    service.init()
    panel = CalDBPanel(service)
    panel.add(copy)
    copy.unlink()
    panel.refresh_button.click()
    assert "missing" in "".join(c.value for c in panel.table.children if hasattr(c, "value"))


# -- ReductionApp ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tutorial4, tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    return ReductionApp(tutorial4.directory, workdir=work, database_dir=work / "db",
                        background=False)


def test_app_layout_follows_the_tutorial(app):
    assert "gmos-app" in app._dom_classes
    titles = [app.tabs.get_title(i) for i in range(len(app.tabs.children))]
    assert titles == ["1. Files", "2. Calibration database", "3. Master bias", "4. Master flat",
                      "5. Science", "6. Stack and sky"]
    for key, css in (("bias", "gmos-make-bias"), ("flat", "gmos-make-flat"),
                     ("science", "gmos-reduce-science")):
        assert css in app.stage_buttons[key]._dom_classes
    assert all("<p>" in tab.children[0].value for tab in app.tabs.children)   # explanations


def test_app_hands_file_selection_to_the_step_panel(app):
    panel = app.file_panel
    panel.tags.value, panel.xtags.value, panel.expression.value = ["FLAT"], [], "True"
    panel.apply_button.click()
    panel.use_button.click()
    assert app.stage == "flat" and app.step_panel.reduction.recipe.name == "makeProcessedFlat"
    assert [p.name for p in app.step_panel.reduction.files] == [p.name for p in panel.checked]
    button = next(c for c in panel.table.children if "gmos-file-row" in c._dom_classes)
    button.click()                                   # the clicked file is the one to explain
    assert app.caldb_panel.explain_path.value.endswith(button.description)


@pytest.mark.slow
def test_app_makes_bias_and_flat_into_caldb(app):
    app.stage_buttons["bias"].click()
    assert (app.workdir / "list_of_bias.txt").read_text().count(".fits") == 10
    assert [e.caltype for e in app.caldb_panel.service.list_files()] == ["processed_bias"]
    assert "added to the calibration database" in app.status.value
    app.stage_buttons["flat"].click()
    assert sorted(e.caltype for e in app.caldb_panel.service.list_files()) == [
        "processed_bias", "processed_flat"]
    assert app.outputs["flat"][0].endswith("_flat.fits")
    assert app.step_panel.reduction.recipe.name == "makeProcessedFlat"


@pytest.fixture(scope="module")
def calibrated_app(app):
    """The app after its bias and flat stages (run here unless an earlier test ran them)."""
    for stage in ("bias", "flat"):
        if stage not in app.outputs:
            app.stage_buttons[stage].click()
    assert "flat" in app.outputs, app.status.value
    return app


@pytest.mark.slow
def test_app_reduces_science_and_shows_stack_on_sky(calibrated_app):
    app = calibrated_app
    app.stage_buttons["science"].click()
    assert app.outputs["science"][0].endswith("_stack.fits"), app.status.value
    assert app.result_view.tiled is None and app.sky_view is None   # tab 6 closed: not drawn
    app.tabs.selected_index = len(app.tabs.children) - 1            # opened: drawn
    assert app.result_view.tiled.frame.filename.endswith("_stack.fits")
    assert app.result_view.preview is not None
    sky = app.sky_view
    assert len(sky.footprints) == 5 * 3 + 1 and len(sky.layers) == 1
    assert sky.sources is not None and len(sky.sources) > 20
    stack = read_frame(app.outputs["science"][0])
    assert len(sky.sources) == sum(len(e.objcat) for e in stack.exts if e.objcat is not None)
    assert f"source(s) of {stack.filename}" in sky.info.value          # the stack's own sources
    assert not app.result_view.sources_toggle.value                   # markers off on the stack
    assert app.add_to_caldb.layout.display == "none"                  # no caldb add for science
    assert "gmos-skyview" in app.sky_box.children[0]._dom_classes


@pytest.mark.slow
def test_app_runs_one_reduction_at_a_time(tutorial4, tmp_path):
    """While the flat runs: every stage button is disabled and refused, Cancel stops the flat."""
    app = ReductionApp(tutorial4.directory, workdir=tmp_path, database_dir=tmp_path / "db",
                       background=True)
    app.start("bias")
    app.join(120)
    assert Path(app.outputs["bias"][0]).name.endswith("_bias.fits")
    flats = select_data(app.files(), ["FLAT"])
    app.load(flats)
    red = app.step_panel.reduction
    held, release = threading.Event(), threading.Event()

    def hold(event):
        if event.kind == "step_started" and event.step_index == 1:
            held.set()
            release.wait(60)
    red.subscribe(hold)
    app.step_panel.run_all_button.click()
    try:
        assert held.wait(60)
        assert all(b.disabled for b in app.stage_buttons.values())
        assert app.file_panel.use_button.disabled and app.step_panel.run_all_button.disabled
        assert not app.step_panel.cancel_button.disabled
        for stage in ("bias", "science"):
            app.start(stage)                                  # refused, not queued or joined
            assert "flat reduction is running" in app.status.value
            assert app.step_panel.reduction is red
        app.step_panel.cancel_button.click()
        assert app.step_panel.cancel_button.description.startswith("Cancelling")
    finally:
        release.set()
    app.join(120)
    assert not red.finished and "flat" not in app.outputs
    assert "flat reduction stopped" in app.status.value
    assert [e.caltype for e in app.caldb_panel.service.list_files()] == ["processed_bias"]
    assert not any(b.disabled for b in app.stage_buttons.values())
    app.start("flat")                                         # now it runs, and is a flat
    app.join(120)
    assert Path(app.outputs["flat"][0]).name.endswith("_flat.fits")
    assert "flat: wrote" in app.status.value and "_flat.fits" in app.status.value
    assert sorted(e.caltype for e in app.caldb_panel.service.list_files()) == [
        "processed_bias", "processed_flat"]


@pytest.mark.slow
def test_steppanel_holds_no_frames_beyond_the_one_shown(tutorial4, tmp_path):
    """Science outputs of earlier steps are read back when chosen, not kept in the panel."""
    files = select_data(tutorial4.files, ["BIAS"])[:3]
    panel = StepPanel(files=files, background=False, workdir=tmp_path)
    panel.run_to(3)
    panel.select(1)
    items = panel.frames_for(1)
    assert len(items) == 3 and isinstance(items[0], display.TiledFrame)
    assert all(isinstance(i, LazyItem) for i in items[1:])
    assert items[1].label == panel.reduction.outputs(1)[1].filename
    panel.image_view.frame_select.value = 2                  # chosen: read back and shown
    assert panel.image_view.tiled.frame.filename == items[2].label
    assert panel.frames_for(1) is items                      # cached until the step re-runs
    panel.rerun_from(1)
    assert panel.frames_for(1) is not items
