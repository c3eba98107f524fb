"""typewalk / dataselect / showd: the seed's "Check files" and "Create File lists", and bad input."""
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

from gmoswidgets.cli import dataselect, showd, typewalk
from gmoswidgets.cli.common import UsageError, expand_inputs, read_stdin_names

# Lines copied from the seed (shared/seed/000_9b609ecc21f61965.txt).
SEED_TYPEWALK = {
    "N20170613S0180.fits": " N20170613S0180.fits ............... (AT_ZENITH) (AZEL_TARGET) (BIAS) (CAL) "
                           "(GEMINI) (GMOS) (NON_SIDEREAL) (NORTH) (RAW) (UNPREPARED)",
    "N20170614S0201.fits": " N20170614S0201.fits ............... (GEMINI) (GMOS) (IMAGE) (NORTH) (RAW) "
                           "(SIDEREAL) (UNPREPARED)",
    "N20170615S0534.fits": " N20170615S0534.fits ............... (AT_ZENITH) (AZEL_TARGET) (BIAS) (CAL) "
                           "(GEMINI) (GMOS) (NON_SIDEREAL) (NORTH) (RAW) (UNPREPARED)",
    "N20170702S0182.fits": " N20170702S0182.fits ............... (CAL) (FLAT) (GEMINI) (GMOS) (IMAGE) "
                           "(NORTH) (RAW) (SIDEREAL) (TWILIGHT) (UNPREPARED)",
}
SEED_SHOWD = """\
-----------------------------------------------------------
filename                             object   exposure_time
-----------------------------------------------------------
../playdata/N20170614S0201.fits   starfield            10.0
../playdata/N20170614S0202.fits   starfield            10.0
../playdata/N20170614S0203.fits   starfield            10.0
../playdata/N20170614S0204.fits   starfield            10.0
../playdata/N20170614S0205.fits   starfield            10.0
"""


# -- formatting and argument helpers --------------------------------------------

def test_typewalk_line_format_matches_seed():
    tags = ["AT_ZENITH", "AZEL_TARGET", "BIAS", "CAL", "GEMINI", "GMOS", "NON_SIDEREAL",
            "NORTH", "RAW", "UNPREPARED"]
    assert typewalk.format_line("N20170613S0180.fits", reversed(tags)) == SEED_TYPEWALK["N20170613S0180.fits"]
    # the dots end on a fixed column whatever the name length (for names under 34 characters)
    ends = {len(typewalk.format_line(name, ["RAW"])) for name in ("a.fits", "N20170613S0180.fits",
                                                                  "N20170613S0180_bias.fits")}
    assert len(ends) == 1


def test_showd_table_format_matches_seed():
    rows = [["filename", "object", "exposure_time"]]
    rows += [[f"../playdata/N20170614S020{i}.fits", "starfield", "10.0"] for i in range(1, 6)]
    assert showd.format_table(rows) + "\n" == SEED_SHOWD


def test_expand_inputs_at_lists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("inner.txt").write_text("c.fits\n")
    Path("list.txt").write_text("# written by dataselect\na.fits\n\n  b.fits  \n@inner.txt\n")
    assert expand_inputs(["x.fits", "@list.txt", "y.fits"]) == ["x.fits", "a.fits", "b.fits",
                                                               "c.fits", "y.fits"]
    Path("loop.txt").write_text("@loop.txt\n")
    with pytest.raises(UsageError, match="includes itself"):
        expand_inputs(["@loop.txt"])
    with pytest.raises(UsageError, match="cannot read the list file @nope.txt"):
        expand_inputs(["@nope.txt"])
    for name in ("N1.fits", "N2.fits"):
        Path(name).write_bytes(b"")
    assert expand_inputs(["N*.fits"]) == ["N1.fits", "N2.fits"]   # a quoted, unexpanded glob


def test_read_stdin_names():
    assert read_stdin_names(io.StringIO("a.fits\n\n b.fits \n")) == ["a.fits", "b.fits"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    assert read_stdin_names(Terminal("a.fits\n")) == []


def test_usage_errors_are_one_line(capsys):
    assert dataselect.main(["--bogus", "a.fits"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dataselect: error: unrecognized arguments")
    assert showd.main(["a.fits"]) == 1                       # -d is required
    assert capsys.readouterr().err.count("\n") == 1
    assert typewalk.main(["-d", "/no/such/dir"]) == 1
    assert capsys.readouterr().err == "typewalk: error: /no/such/dir: no such directory\n"


def test_help_exits_zero(capsys):
    assert dataselect.main(["--help"]) == 0
    assert "--xtags" in capsys.readouterr().out


def test_bad_expression_is_one_line_and_exit_1(capsys):
    assert dataselect.main(["--expr", "__import__('os')", "x.fits"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "not allowed" in captured.err


def test_unknown_descriptor_in_showd(capsys):
    assert showd.main(["-d", "object,exposuretime", "x.fits"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown descriptor(s) exposuretime; valid descriptors are:" in err and "exposure_time" in err


# -- the seed's commands on the simulated tutorial data set ----------------------

@pytest.fixture(scope="module")
def playground(tutorial4, tmp_path_factory):
    """The seed's layout: run from playground/ with the data in ../playdata/."""
    root = tmp_path_factory.mktemp("tutorial")
    (root / "playdata").symlink_to(tutorial4.directory, target_is_directory=True)
    (root / "playground").mkdir()
    return root / "playground"


@pytest.fixture
def in_playground(playground, monkeypatch):
    monkeypatch.chdir(playground)
    return sorted(f"../playdata/{name}" for name in os.listdir("../playdata") if name.endswith(".fits"))


def test_typewalk_on_the_tutorial_data(tutorial4, in_playground, capsys):
    assert typewalk.main(["-d", "../playdata/"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == ""
    assert lines[0] == "" and lines[1] == f"directory:  {os.path.abspath('../playdata')}"
    assert lines[-1] == "Done DataSpider.typewalk(..)"
    listed = {line.split()[0]: line for line in lines[2:-1]}
    assert sorted(listed) == sorted(p.name for p in tutorial4.files)
    for name, seed_line in SEED_TYPEWALK.items():
        assert listed[name] == seed_line
    for path in tutorial4.bias:
        assert listed[path.name] == SEED_TYPEWALK["N20170613S0180.fits"].replace("N20170613S0180.fits", path.name)
    for group, model in ((tutorial4.flat, "N20170702S0182.fits"), (tutorial4.science, "N20170614S0201.fits")):
        for path in group:
            assert listed[path.name] == SEED_TYPEWALK[model].replace(model, path.name)


def test_typewalk_tag_filter(tutorial4, in_playground, capsys, tmp_path):
    out_list = tmp_path / "twilights.txt"
    assert typewalk.main(["-d", "../playdata", "--tags", "TWILIGHT", "-o", str(out_list)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([ln for ln in lines if "(TWILIGHT)" in ln]) == len(lines) - 3 == 5
    assert len(out_list.read_text().splitlines()) == 5


@pytest.mark.parametrize("args, group", [
    (["--tags", "BIAS"], "bias"),
    (["--tags", "FLAT"], "flat"),
    (["--tags", "FLAT", "--expr", 'filter_name=="i"'], "flat"),
    (["--xtags", "CAL"], "science"),
    (["--expr", '(object=="starfield" and exposure_time==10.)'], "science"),
    (["--expr", 'observation_class=="science"'], "science"),
])
def test_dataselect_seed_commands(tutorial4, in_playground, args, group, capsys):
    list_file = "list.txt"
    assert dataselect.main([*args, *in_playground, "-o", list_file]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    selected = Path(list_file).read_text().splitlines()
    expected = sorted(f"../playdata/{p.name}" for p in getattr(tutorial4, group))
    assert selected == expected
    assert len(selected) == {"bias": 10, "flat": 5, "science": 5}[group]
    Path(list_file).unlink()


def test_dataselect_z_flats_select_nothing(in_playground, capsys):
    assert dataselect.main(["--tags", "FLAT", "--expr", 'filter_name=="z"', *in_playground]) == 0
    assert capsys.readouterr().out == ""


def test_dataselect_accepts_at_list(tutorial4, in_playground, capsys):
    Path("all.txt").write_text("\n".join(in_playground) + "\n")
    try:
        assert dataselect.main(["--tags", "BIAS", "@all.txt"]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 10
    finally:
        Path("all.txt").unlink()


def test_dataselect_refuses_to_write_over_an_input(in_playground, capsys):
    target = in_playground[0]
    before = hashlib.md5(Path(target).read_bytes()).hexdigest()
    assert dataselect.main(["--tags", "BIAS", *in_playground, "-o", target]) == 1
    assert "refusing to write" in capsys.readouterr().err
    assert hashlib.md5(Path(target).read_bytes()).hexdigest() == before


def test_dataselect_piped_into_showd_in_process(in_playground, capsys, monkeypatch):
    assert dataselect.main(["--expr", 'observation_class=="science"', *in_playground]) == 0
    piped = capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(piped))
    assert showd.main(["-d", "object,exposure_time"]) == 0
    assert capsys.readouterr().out == SEED_SHOWD


def _script(name):
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else f"{sys.executable} -m gmoswidgets.cli.{name}"


def test_real_shell_pipe(playground):
    command = (f"{_script('dataselect')} --expr 'observation_class==\"science\"' ../playdata/*.fits"
               f" | {_script('showd')} -d object,exposure_time")
    result = subprocess.run(command, shell=True, cwd=playground, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == SEED_SHOWD and result.stderr == ""


# -- bad input -----------------------------------------------------------------

@pytest.fixture
def messy_dir(tutorial4, tmp_path):
    """Two good files and one of each kind of bad file, with their checksums."""
    d = tmp_path / "messy"
    d.mkdir()
    good_bias = shutil.copy(tutorial4.bias[0], d / "good_bias.fits")
    good_sci = shutil.copy(tutorial4.science[0], d / "good_sci.fits")
    (d / "notfits.fits").write_text("SIMPLE? no, just a text file\n")
    raw = Path(tutorial4.science[1]).read_bytes()
    (d / "truncated.fits").write_bytes(raw[: len(raw) // 3])
    other = fits.PrimaryHDU()
    other.header["INSTRUME"] = "NIRI"
    fits.HDUList([other, fits.ImageHDU(None)]).writeto(d / "niri.fits")
    shutil.copy(tutorial4.science[2], d / "noclass.fits")
    with fits.open(d / "noclass.fits", mode="update") as hdul:
        del hdul[0].header["OBSCLASS"]
        del hdul[0].header["EXPTIME"]
    (d / "notes.txt").write_text("not looked at\n")
    sums = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in d.iterdir()}
    return d, Path(good_bias), Path(good_sci), sums


def _unchanged(sums):
    return all(hashlib.md5(p.read_bytes()).hexdigest() == s for p, s in sums.items())


BAD_FILE_MESSAGES = {
    "notfits.fits": "not a FITS file",
    "truncated.fits": "truncated",
    "niri.fits": "not a GMOS file (INSTRUME = 'NIRI')",
}


def test_typewalk_skips_bad_files_with_one_line_each(messy_dir, capsys):
    d, _, _, sums = messy_dir
    assert typewalk.main(["-d", str(d)]) == 0
    out, err = capsys.readouterr()
    names = [line.split()[0] for line in out.splitlines()[2:-1]]
    assert names == ["good_bias.fits", "good_sci.fits", "noclass.fits"]
    err_lines = err.splitlines()
    assert len(err_lines) == 3
    for line, (name, message) in zip(err_lines, sorted(BAD_FILE_MESSAGES.items())):
        assert line.startswith("typewalk: skipping ") and str(d / name) in line and message in line
    assert "Traceback" not in err and _unchanged(sums)


def test_dataselect_skips_bad_files_and_carries_on(messy_dir, capsys):
    d, _, good_sci, sums = messy_dir
    files = sorted(str(p) for p in d.glob("*.fits")) + [str(d / "missing.fits")]
    assert dataselect.main(["--expr", 'observation_class=="science"', *files]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(good_sci)]
    err_lines = err.splitlines()
    assert len(err_lines) == 5 and all(line.startswith("dataselect: skipping ") for line in err_lines)
    joined = "\n".join(err_lines)
    for name, message in BAD_FILE_MESSAGES.items():
        assert f"{d / name}: {message}" in joined
    assert f"{d / 'noclass.fits'}: missing keyword OBSCLASS in the primary header" in joined
    assert f"{d / 'missing.fits'}: no such file" in joined
    assert "Traceback" not in err and _unchanged(sums)


def test_showd_reports_bad_files_and_failing_descriptors(messy_dir, capsys):
    d, good_bias, _, sums = messy_dir
    files = [str(good_bias), str(d / "noclass.fits"), str(d / "truncated.fits")]
    assert showd.main(["-d", "observation_class,exposure_time", *files]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 5 and lines[0] == lines[2] == "-" * len(lines[1])
    assert lines[3].split() == [str(good_bias), "dayCal", "0.0"]
    assert "ERROR: missing keyword OBSCLASS in the primary header" in lines[4]
    assert err.splitlines() == [f"showd: skipping {d / 'truncated.fits'}: " + err.split(": ", 2)[2].strip()]
    assert "truncated" in err and _unchanged(sums)


def test_showd_with_only_bad_files_fails(messy_dir, capsys):
    d, _, _, _ = messy_dir
    assert showd.main(["-d", "object", str(d / "notfits.fits")]) == 1
    assert "not a FITS file" in capsys.readouterr().err


def test_typewalk_recurses_into_sub_directories(tutorial4, tmp_path, capsys):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(tutorial4.bias[0], tmp_path / "a.fits")
    shutil.copy(tutorial4.flat[0], tmp_path / "sub" / "deeper" / "b.fits")
    (tmp_path / "sub" / "empty.txt").write_text("")
    assert typewalk.main(["-d", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln for ln in lines if ln.startswith("directory:")] == [
        f"directory:  {tmp_path}", f"directory:  {tmp_path / 'sub' / 'deeper'}"]
    assert typewalk.main(["-d", str(tmp_path), "--norecurse"]) == 0
    assert capsys.readouterr().out.count("directory:") == 1
