"""The illumination masks are decompressed once and kept in the user's cache, byte for byte."""
import bz2
from pathlib import Path

import pytest

from conftest import SHARED
from gmoswidgets.gmos import lookups

REFDIR = Path(SHARED) / "reference" / "dragons-lookups" / "illum"
NAME = "gmos-n_illum_HAM_44_12amp_v1.fits.bz2"


def test_mask_is_decompressed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = bz2.decompress((REFDIR / NAME).read_bytes())      # DRAGONS' file
    assert lookups.illum_mask_fits(NAME) == expected
    (cached,) = (tmp_path / "gmoswidgets").iterdir()
    assert cached.name.startswith(NAME.removesuffix(".bz2")) and cached.read_bytes() == expected

    def no_decompression(_data):
        raise AssertionError("decompressed again")
    monkeypatch.setattr(bz2, "decompress", no_decompression)
    assert lookups.illum_mask_fits(NAME) == expected


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert lookups.illum_mask_fits(NAME) == bz2.decompress((REFDIR / NAME).read_bytes())
    assert blocker.read_text() == ""


def test_a_changed_mask_is_not_read_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lookups.illum_mask_fits(NAME)
    other = tmp_path / "other.fits.bz2"
    other.write_bytes(bz2.compress(b"another mask"))
    monkeypatch.setattr(lookups, "illum_mask_path", lambda name: other)
    assert lookups.illum_mask_fits(NAME) == b"another mask"
    assert len(list((tmp_path / "gmoswidgets").iterdir())) == 2


@pytest.mark.parametrize("name", sorted(p.name for p in REFDIR.glob("*.fits.bz2")))
def test_vendored_masks_are_dragons_files(name):
    assert lookups.illum_mask_path(name).read_bytes() == (REFDIR / name).read_bytes()
