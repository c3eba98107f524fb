"""Kernel-side previews (gmoswidgets.widgets.preview): tiling, downsampling, cuts, PNGs, readout."""
import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from PIL import Image

from gmoswidgets.widgets import preview as display
from gmoswidgets.dq import BAD_PIXEL, COSMIC_RAY, SATURATED
from gmoswidgets.errors import GmosError
from gmoswidgets.frame import Extension, Frame

AMP_NX, AMP_NY, OVERSCAN, BIN = 16, 40, 4, 2   # binned amplifier data size, overscan columns


def _amp_header(ccd, amp, ra0=150.0, dec0=2.0, scale=0.1 / 3600):
    """A raw-like header of amplifier ``amp`` (0-3) on CCD ``ccd`` (0-2); overscan on the left."""
    det_x1 = (ccd * 4 + amp) * AMP_NX * BIN + 1
    hdr = fits.Header()
    hdr["CCDSUM"] = f"{BIN} {BIN}"
    hdr["DATASEC"] = f"[{OVERSCAN + 1}:{OVERSCAN + AMP_NX},1:{AMP_NY}]"
    hdr["BIASSEC"] = f"[1:{OVERSCAN},1:{AMP_NY}]"
    hdr["DETSEC"] = f"[{det_x1}:{det_x1 + AMP_NX * BIN - 1},1:{AMP_NY * BIN}]"
    hdr["CCDNAME"] = f"CCD{ccd + 1}"
    # a simple TAN WCS: tiled column t = extension column - OVERSCAN + (ccd*4+amp)*AMP_NX
    offset = (ccd * 4 + amp) * AMP_NX - OVERSCAN
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["CRVAL1"], hdr["CRVAL2"] = ra0, dec0
    hdr["CRPIX1"], hdr["CRPIX2"] = 1 - offset, 1.0
    hdr["CD1_1"], hdr["CD1_2"], hdr["CD2_1"], hdr["CD2_2"] = -scale, 0.0, 0.0, scale
    return hdr


def _raw_like_frame(with_planes=True):
    """12 amplifiers whose data-section pixel value encodes its tiled position: 1000*y + x."""
    exts = []
    for ccd in range(3):
        for amp in range(4):
            offset = (ccd * 4 + amp) * AMP_NX
            yy, xx = np.mgrid[0:AMP_NY, 0:AMP_NX + OVERSCAN].astype(np.float32)
            data = 1000 * yy + (xx - OVERSCAN + offset)
            data[:, :OVERSCAN] = -1.0                      # overscan must not be shown
            ext = Extension(data, _amp_header(ccd, amp))
            if with_planes:
                ext.variance = np.full_like(data, 4.0)
                ext.mask = np.zeros(data.shape, np.uint16)
            exts.append(ext)
    return Frame(fits.Header({"INSTRUME": "GMOS-N"}), exts)


@pytest.fixture(scope="module")
def raw_like():
    return _raw_like_frame()


def test_tiling_places_data_sections_at_detector_positions(raw_like):
    tiled = display.tile_frame(raw_like)
    assert tiled.shape == (AMP_NY, 12 * AMP_NX)
    yy, xx = np.mgrid[0:AMP_NY, 0:12 * AMP_NX]
    np.testing.assert_array_equal(tiled.data, 1000 * yy + xx)
    assert not np.any(tiled.data < 0)      # no overscan pixel leaked in


def test_tiling_reverses_amplifier_order_by_detsec():
    frame = _raw_like_frame()
    frame.exts.reverse()                    # file order must not matter, DETSEC does
    tiled = display.tile_frame(frame)
    yy, xx = np.mgrid[0:AMP_NY, 0:12 * AMP_NX]
    np.testing.assert_array_equal(tiled.data, 1000 * yy + xx)


def test_single_extension_frame_is_shown_as_is():
    data = np.arange(30, dtype=np.float32).reshape(5, 6)
    tiled = display.tile_frame(Frame(fits.Header(), [Extension(data, fits.Header())]))
    np.testing.assert_array_equal(tiled.data, data)
    assert tiled.mask is None and tiled.variance is None


def test_block_reduce_mean_ignores_nan_and_or_combines_bits():
    arr = np.array([[1, 3, np.nan, np.nan], [5, 7, np.nan, np.nan]], np.float32)
    np.testing.assert_array_equal(display.block_reduce(arr, 2), [[4, np.nan]])
    bits = np.array([[1, 0, 0, 0], [8, 0, 0, 4]], np.uint16)
    np.testing.assert_array_equal(display.block_reduce(bits, 2, "or"), [[9, 4]])
    np.testing.assert_array_equal(display.block_reduce(arr, 2, "stride"), [[1, np.nan]])


def test_cut_limits():
    values = np.arange(1001, dtype=np.float32)
    assert display.cut_limits(values, "minmax") == (0.0, 1000.0)
    low, high = display.cut_limits(values, "percentile", 90)
    assert low == pytest.approx(50) and high == pytest.approx(950)
    values = np.random.default_rng(1).normal(100, 5, 10000)
    low, high = display.cut_limits(values, "zscale")
    assert 70 < low < 100 < high < 130
    with pytest.raises(GmosError, match="unknown cut"):
        display.cut_limits(values, "bogus")


@pytest.mark.parametrize("stretch", sorted(display.STRETCHES))
def test_stretches_are_monotonic_and_span_unit_interval(stretch):
    out = display.scale_to_unit(np.array([-5, 0, 2.5, 5, 10, 99, np.nan]), (0, 10), stretch)
    assert out[0] == 0 and out[1] == 0
    assert out[4] == pytest.approx(1, abs=1e-6) and out[5] == pytest.approx(1, abs=1e-6)
    assert 0 < out[2] < out[3] < 1 and np.isnan(out[6])
    if stretch in ("sqrt", "log", "asinh"):
        assert out[3] > 0.5              # non-linear stretches lift the faint half


def test_render_is_bounded_and_maps_levels_to_palette(raw_like):
    tiled = display.tile_frame(raw_like)
    preview = tiled.render(max_size=48, cut="minmax", cmap="viridis")
    assert preview.factor == 4 and max(preview.shape) <= 48
    img = Image.open(io.BytesIO(preview.png))
    assert img.mode == "P" and img.size == (preview.shape[1], preview.shape[0])
    # PNG row 0 is the top of the picture: larger y (brighter in this ramp)
    index = np.asarray(img)
    assert index[0].mean() > index[-1].mean()
    assert preview.extent == (-0.5, 12 * AMP_NX - 0.5, -0.5, AMP_NY - 0.5)


def test_render_region_refines_resolution(raw_like):
    tiled = display.tile_frame(raw_like)
    whole = tiled.render(max_size=32)
    zoomed = tiled.render(region=(10, 30, 5, 20), max_size=32)
    assert zoomed.factor == 1 < whole.factor
    assert zoomed.extent == (9.5, 30.5, 4.5, 20.5)


def test_readout_reports_value_var_dq_and_sky():
    frame = _raw_like_frame()
    frame.exts[5].mask[7, OVERSCAN + 3] = BAD_PIXEL | COSMIC_RAY
    tiled = display.tile_frame(frame)
    x, y = 5 * AMP_NX + 3, 7
    out = tiled.readout(x + 0.2, y - 0.3)
    assert out.inside and out.ext == 5
    assert out.value == 1000 * y + x and out.variance == 4.0
    assert out.dq == 9 and out.dq_bits == ["bad_pixel", "cosmic_ray"]
    # tiled x -> RA decreases east to west with CD1_1 < 0, 0.1"/pix
    assert out.ra == pytest.approx(150.0 - x * 0.1 / 3600 / np.cos(np.radians(2.0)), abs=1e-7)
    assert out.dec == pytest.approx(2.0 + y * 0.1 / 3600, abs=1e-7)
    assert "cosmic_ray" in out.format()
    assert not tiled.readout(-3, 2).inside


def test_dq_overlay_colours_flagged_pixels():
    frame = _raw_like_frame()
    frame.exts[0].mask[2, OVERSCAN + 1] = SATURATED
    preview = display.tile_frame(frame).dq_overlay()
    rgba = np.asarray(Image.open(io.BytesIO(preview.png)))[::-1]
    assert tuple(rgba[2, 1]) == display.DQ_COLORS[SATURATED]
    assert (rgba[..., 3] > 0).sum() == 1
    assert display.tile_frame(_raw_like_frame(with_planes=False)).dq_overlay() is None


def test_sources_map_objcat_to_display_positions():
    frame = _raw_like_frame()
    frame.exts[4].objcat = Table({"X_IMAGE": [OVERSCAN + 3.0], "Y_IMAGE": [11.0]})
    x, y, ra, dec = display.tile_frame(frame).sources()
    assert x.tolist() == [4 * AMP_NX + 2] and y.tolist() == [10]
    assert np.isfinite(ra).all() and np.isfinite(dec).all()


def test_footprints_one_per_ccd(raw_like):
    feet = display.tile_frame(raw_like).footprints()
    assert [name for name, _, _ in feet] == ["CCD1", "CCD2", "CCD3"]
    ras = [min(r) for _, r, _ in feet]
    assert ras[0] > ras[1] > ras[2]        # east to the left


def test_histogram_counts_shown_pixels(raw_like):
    tiled = display.tile_frame(raw_like)
    counts, edges = tiled.histogram(limits=(0, 40000), bins=4)
    assert counts.sum() == tiled.data.size and len(edges) == 5


def test_difference_and_geometry_check(raw_like):
    tiled = display.tile_frame(raw_like)
    diff = display.difference(tiled, tiled)
    assert np.nanmax(np.abs(diff.data)) == 0 and diff.readout(3, 3).value == 0
    other = display.tile_frame(Frame(fits.Header(), [Extension(np.zeros((3, 3), np.float32),
                                                                fits.Header())]))
    with pytest.raises(GmosError, match="different shapes"):
        display.difference(tiled, other)


def test_preview_rendering_works_without_the_widget_libraries():
    """The rendering runs with ipywidgets, bqplot and ipyaladin unimportable."""
    code = textwrap.dedent("""
        import pathlib, sys, types
        for name in ("ipywidgets", "bqplot", "ipyaladin"):
            sys.modules[name] = None  # importing them raises ImportError from now on
        import gmoswidgets
        panels = types.ModuleType("gmoswidgets.widgets")  # the package, without its panels
        panels.__path__ = [str(pathlib.Path(gmoswidgets.__file__).parent / "widgets")]
        sys.modules["gmoswidgets.widgets"] = panels
        import numpy as np
        from astropy.io import fits
        from gmoswidgets.frame import Extension, Frame
        from gmoswidgets.widgets import preview
        data = np.arange(64, dtype=np.float32).reshape(8, 8)
        shown = preview.tile_frame(Frame(fits.Header(), [Extension(data, fits.Header())]))
        assert shown.render(max_size=8, cut="minmax").png.startswith(b"\\x89PNG")
        assert shown.readout(2, 3).value == 26
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sky_image_puts_each_ccd_at_its_sky_position():
    frame = _raw_like_frame()
    # move CCD3 by 10 pixels on the sky (a chip gap): the sky image must show the gap
    for ext in frame.exts[8:]:
        ext.header["CRPIX1"] -= 10
    tiled = display.tile_frame(frame)
    hdul = tiled.sky_image(max_size=1000)
    from astropy.wcs import WCS
    wcs, data = WCS(hdul[0].header), hdul[0].data
    for x, y in ((5, 7), (100, 30), (150, 12)):          # display pixels on CCD1, CCD2, CCD3
        hit = tiled.readout(x, y)
        col = x + OVERSCAN - (hit.ext * AMP_NX)
        ra, dec = tiled.sky(hit.ext, col, y)
        px, py = wcs.all_world2pix(ra, dec, 0)
        assert data[int(round(float(py))), int(round(float(px)))] == hit.value
    assert np.isnan(data).any()                            # the gap
    assert abs(data.shape[1] - (12 * AMP_NX + 10)) <= 3
    small = tiled.sky_image(max_size=50)[0]
    assert max(small.data.shape) <= 50


def test_sky_field_covers_every_footprint(raw_like):
    tiled = display.tile_frame(raw_like)
    ra, dec, fov = display.sky_field(tiled.footprints(), aspect=1.0, margin=1.0, min_fov=0)
    width = 12 * AMP_NX * 0.1 / 3600               # degrees across the 12 amplifiers
    assert fov == pytest.approx(width - 0.1 / 3600, rel=0.01)   # corner pixel centres
    assert dec == pytest.approx(2.0 + (AMP_NY - 1) / 2 * 0.1 / 3600, abs=1e-7)
    _, _, tall = display.sky_field(tiled.footprints(), aspect=20.0, margin=1.0, min_fov=0)
    assert tall == pytest.approx(20 * (AMP_NY - 1) * 0.1 / 3600, rel=0.01)
    bare = display.tile_frame(Frame(fits.Header(), [Extension(np.zeros((3, 3), np.float32),
                                                              fits.Header())]))
    assert display.sky_field(bare.footprints()) is None


def test_footprints_from_headers_match_the_tiled_frame(raw_like, tutorial4):
    """The sky view reads only headers for the input frames: same corners as tiling the pixels."""
    from gmoswidgets.frame import read_frame
    for frame in (raw_like, read_frame(tutorial4.science[0])):
        expected = display.tile_frame(frame).footprints()
        got = display.footprints_of(frame)
        assert [n for n, _, _ in got] == [n for n, _, _ in expected]
        for (_, ra, dec), (_, ra0, dec0) in zip(got, expected):
            np.testing.assert_allclose(ra, ra0, atol=1e-9)
            np.testing.assert_allclose(dec, dec0, atol=1e-9)
    got = display.footprints_of(tutorial4.science[0])                 # a file: headers only
    assert len(got) == 3


def test_footprints_of_a_file_are_read_again_when_it_changes(tutorial4, tmp_path):
    import shutil
    from astropy.io import fits
    path = tmp_path / "frame.fits"
    shutil.copy(tutorial4.science[0], path)
    first = display.footprints_of(path)
    assert display.footprints_of(path)[0][1] is first[0][1]         # remembered: not read again
    with fits.open(path, mode="update") as hdus:                     # the frame moved 0.01 deg
        for hdu in hdus[1:]:
            hdu.header["CRVAL2"] += 0.01
    moved = display.footprints_of(path)
    np.testing.assert_allclose(moved[0][2], np.asarray(first[0][2]) + 0.01, atol=1e-6)


def test_cuts_ignore_flagged_and_no_data_pixels():
    """The stack's default cut comes from good pixels: the no-data border must not widen it."""
    rng = np.random.default_rng(1)
    data = rng.normal(280.0, 10.0, (200, 300)).astype(np.float32)
    mask = np.zeros(data.shape, np.uint16)
    data[:, :60] = -33.0                     # outside the field: no data
    mask[:, :60] = 64
    data[100, 100:110] = 60000.0             # saturated, flagged
    mask[100, 100:110] = 4
    frame = Frame(fits.Header(), [Extension(data, fits.Header(), variance=data.copy(), mask=mask)])
    tiled = display.tile_frame(frame)
    low, high = tiled.render().limits
    assert 230 < low < 280 < high < 330, (low, high)
    counts, edges = tiled.histogram()
    assert edges[0] > 0 and counts.sum() == (mask == 0).sum()
