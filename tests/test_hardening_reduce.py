"""Issue 12: hostile requests to reduce / Reduce never write outside their place or lose data."""
import hashlib
from pathlib import Path

import pytest

from gmoswidgets.cli import reduce as reduce_cli
from gmoswidgets.errors import ParameterError
from gmoswidgets.outputs import normalize_suffix
from gmoswidgets.reduce import Reduce
from gmoswidgets.reduction import Reduction
from test_engine_fakes import fake_env  # noqa: F401  (fixture)


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _list(env, name="list_of_bias.txt"):
    (env.workdir / name).write_text("\n".join(str(p) for p in env.biases) + "\n")
    return "@" + name


# -- item 2: a suffix is a suffix ----------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["/../../raw/N20170613S0181", "../x", "a/b", "a\\b", "..",
                                    "_..", "x\x00y", "/abs"])
def test_normalize_suffix_refuses_paths(suffix):
    with pytest.raises(ParameterError, match="suffix"):
        normalize_suffix(suffix)


def test_normalize_suffix_keeps_ordinary_suffixes():
    assert normalize_suffix("newsuffix") == "_newsuffix"
    assert normalize_suffix("_stack.v2") == "_stack.v2"


def test_reduce_suffix_with_separators_writes_nothing(fake_env, capsys):
    victim = fake_env.flat          # a raw file that is not an input of this reduction
    before = _md5(victim)
    rc = reduce_cli.main([_list(fake_env), "-r", "fakeBias", "--no-progress",
                          "--suffix", "/../../raw/N20170702S0178"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "suffix" in err and "Traceback" not in err
    assert _md5(victim) == before
    assert not list(fake_env.workdir.rglob("*.fits"))


def test_reduce_class_and_engine_refuse_a_path_suffix(fake_env):
    with pytest.raises(ParameterError, match="suffix"):
        Reduction(fake_env.biases, recipe="fakeBias", suffix="../escape")
    red = Reduce(fake_env.biases, recipename="fakeBias", suffix="sub/dir")
    with pytest.raises(ParameterError, match="suffix"):
        red.runr()


# -- item 10: file and folder names beyond ASCII ---------------------------------------------------
def test_reduce_non_ascii_file_and_folder_names(fake_env, capsys):
    from astropy.io import fits
    from astropy.table import Table
    from test_engine_fakes import write_fake
    folder = fake_env.raw / "données"
    folder.mkdir()
    names = [write_fake(folder / f"bïas{i}.fits", base=100.0 + i) for i in range(2)]
    rc = reduce_cli.main([str(n) for n in names] + ["-r", "fakeBias", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = fake_env.workdir / "bïas0_fakebias.fits"          # the name survives, unmangled
    assert out.exists()
    phu = fits.getheader(out)
    assert phu["ORIGNAME"] == "b%C3%AFas0.fits"              # FITS headers are ASCII
    prov = Table.read(out, hdu="PROVENANCE")
    assert sorted(prov["filename"]) == ["b%C3%AFas0.fits", "b%C3%AFas1.fits"]


def test_header_text_round_trip():
    from gmoswidgets.fitstext import from_header_text, to_header_text
    for name in ("N20170613S0180.fits", "bïas0.fits", "50%_off.fits", "日本.fits", "a\tb.fits"):
        text = to_header_text(name)
        assert text.isascii() and text.isprintable()
        assert from_header_text(text) == name
    assert to_header_text("N20170613S0180.fits") == "N20170613S0180.fits"
