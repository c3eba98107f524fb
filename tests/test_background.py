"""gmoswidgets.numerics.background reproduces sep.Background to the bit.

Small synthetic images (a sloped sky with noise, stars, masks, sizes that
are not multiples of the mesh) compared with sep on its own terms: the
filtered mesh grids, the background and rms maps, and the global values.
"""
import numpy as np
import pytest
import sep

from gmoswidgets import executor
from gmoswidgets.numerics.background import sky_background


def sky(shape, seed=1, stars=30):
    """A sloped, noisy sky with Gaussian stars (float32)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:shape[0], :shape[1]]
    image = 100.0 + 0.05 * x - 0.03 * y + 5e-5 * (x - shape[1] / 2) ** 2
    image = image + rng.normal(0.0, 4.0, shape)
    for _ in range(stars):
        cx, cy = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
        image += rng.uniform(50, 2000) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 4.5)
    return image.astype(np.float32)


def assert_same_as_sep(image, bad=None, *, mesh, filtersize):
    ours = sky_background(image, bad, mesh_size=mesh, filter_size=filtersize)
    theirs = sep.Background(image, mask=bad, bw=mesh, bh=mesh, fw=filtersize, fh=filtersize)
    assert np.float32(ours.globalback) == np.float32(theirs.globalback)
    assert np.float32(ours.globalrms) == np.float32(theirs.globalrms)
    np.testing.assert_array_equal(ours.back(), theirs.back())
    np.testing.assert_array_equal(ours.rms(), theirs.rms())
    return ours


@pytest.mark.parametrize("shape,mesh,filtersize", [
    ((200, 300), 32, 3),     # edge meshes in both directions
    ((257, 129), 16, 8),     # an even filter (half-width 4), meshes of one pixel row/column left
    ((150, 170), 25, 1),     # odd mesh (the spline's node change and first offset differ)
    ((20, 300), 32, 3),      # a single mesh row: the map is linear in x
    ((300, 20), 32, 3),      # a single mesh column
    ((20, 20), 32, 3),       # one mesh
])
def test_maps_and_globals_equal_sep(shape, mesh, filtersize):
    assert_same_as_sep(sky(shape), mesh=mesh, filtersize=filtersize)


def test_masks_partly_and_fully_masked_meshes_equal_sep():
    image = sky((300, 400), seed=2)
    rng = np.random.default_rng(3)
    bad = rng.random(image.shape) < 0.05          # scattered bad pixels
    bad[40:100, 60:200] = True                     # fully masked meshes, filled from neighbours
    bad[200:232, 300:318] = True                   # a mesh just over half masked: bad
    bad[:, 380:] = True                            # the last, narrow mesh column
    image[bad & (rng.random(image.shape) < 0.3)] = np.nan  # masked pixels may hold anything
    ours = assert_same_as_sep(image, bad, mesh=32, filtersize=3)
    assert np.isfinite(ours.back()).all()


def test_masked_corner_far_from_good_meshes_and_ties_equal_sep():
    """Bad meshes whose nearest good meshes are far away and several at the same distance."""
    image = sky((512, 512), seed=4, stars=5)
    bad = np.zeros(image.shape, bool)
    bad[:300, :300] = True
    bad[400:, 100:164] = True
    assert_same_as_sep(image, bad, mesh=16, filtersize=3)


def test_without_a_mask_extreme_values_are_ignored_as_sep_ignores_them():
    image = sky((128, 160), seed=5)
    image[10:20, 10:20] = -1e30       # SExtractor's "no data" value
    image[70:75, 90:95] = 1e6
    assert_same_as_sep(image, mesh=32, filtersize=3)


def test_flat_image_rms_falls_back_as_sep():
    """A constant sky has zero rms in most meshes: the global rms is the median of the rest."""
    image = np.full((256, 256), 10.0, np.float32)
    image[:96, :96] += np.random.default_rng(6).normal(0, 3, (96, 96)).astype(np.float32)
    ours = assert_same_as_sep(image, mesh=32, filtersize=1)
    assert ours.globalrms > 0


def test_everything_masked_gives_zero_background_and_unit_rms_as_sep():
    image = sky((100, 100))
    assert_same_as_sep(image, np.ones(image.shape, bool), mesh=32, filtersize=3)


def test_background_at_points_is_the_map_there():
    model = sky_background(sky((200, 300)), mesh_size=32, filter_size=3)
    rows, cols = np.array([0, 5, 199, 100, 37]), np.array([0, 299, 150, 16, 47])
    np.testing.assert_array_equal(model.back_at(rows, cols), model.back()[rows, cols])


def test_bands_give_the_same_model(monkeypatch):
    image = sky((400, 300), seed=7)
    banded = sky_background(image, mesh_size=16, filter_size=3)
    monkeypatch.setattr(executor, "map_bands", lambda func, nrows, **kwargs: func(0, nrows))
    whole = sky_background(image, mesh_size=16, filter_size=3)
    np.testing.assert_array_equal(banded.grid, whole.grid)
    np.testing.assert_array_equal(banded.sigma_grid, whole.sigma_grid)
