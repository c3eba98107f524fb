"""Issue 12: hostile requests to reduce / Reduce never write outside their place or lose data."""
import hashlib
from pathlib import Path

import pytest

from gmoswidgets.cli import reduce as reduce_cli
from gmoswidgets.errors import ParameterError
from gmoswidgets.outputs import normalize_suffix
from gmoswidgets.reduce import Reduce
from gmoswidgets.reduction import Reduction
from fakes import write_fake


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


def test_reduce_suffix_with_separators_writes_nothing(fake_defaults, capsys):
    victim = fake_defaults.flat          # a raw file that is not an input of this reduction
    before = _md5(victim)
    rc = reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "--no-progress",
                          "--suffix", "/../../raw/N20170702S0178"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "suffix" in err and "Traceback" not in err
    assert _md5(victim) == before
    assert not list(fake_defaults.workdir.rglob("*.fits"))


def test_reduce_class_and_engine_refuse_a_path_suffix(fake_defaults):
    with pytest.raises(ParameterError, match="suffix"):
        Reduction(fake_defaults.biases, recipe="fakeBias", suffix="../escape")
    red = Reduce(fake_defaults.biases, recipename="fakeBias", suffix="sub/dir")
    with pytest.raises(ParameterError, match="suffix"):
        red.runr()


# -- item 10: file and folder names beyond ASCII ---------------------------------------------------
def test_reduce_non_ascii_file_and_folder_names(fake_defaults, capsys):
    from astropy.io import fits
    from astropy.table import Table
    folder = fake_defaults.raw / "données"
    folder.mkdir()
    names = [write_fake(folder / f"bïas{i}.fits", base=100.0 + i) for i in range(2)]
    rc = reduce_cli.main([str(n) for n in names] + ["-r", "fakeBias", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = fake_defaults.workdir / "bïas0_fakebias.fits"          # the name survives, unmangled
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


# -- items 13-14: bad or mixed inputs fail when the reduction is made, naming the file -------------
@pytest.fixture
def raw_copies(tutorial4, tmp_path):
    """Copies of the simulated flats, science frames and a bias, to be damaged by each test."""
    import shutil
    out = {}
    for group in ("flat", "science", "bias"):
        d = tmp_path / group
        d.mkdir()
        out[group] = [Path(shutil.copy(p, d)) for p in getattr(tutorial4, group)[:3]]
    return out


def _edit(path, ext=0, **cards):
    from astropy.io import fits
    with fits.open(path, mode="update") as hdul:
        for key, value in cards.items():
            hdul[ext].header[key] = value


@pytest.mark.parametrize("ext, cards, message", [
    (0, {"EXPTIME": 0.0}, "exposure time 0.0 s: it must be more than 0"),
    (0, {"EXPTIME": -5.0}, "exposure time -5.0 s: it must be more than 0"),
    (0, {"EXPTIME": "NaN"}, "exposure time nan s: it must be a finite number"),
    (1, {"CCDSUM": "0 0"}, "extension 1: CCDSUM '0 0' is not a GMOS binning"),
    (2, {"CCDSUM": "3"}, "extension 2: CCDSUM '3' is not a GMOS binning"),
])
def test_bad_exposure_time_or_binning_fails_before_any_step(raw_copies, ext, cards, message):
    from gmoswidgets.errors import FileProblem
    bad = raw_copies["science"][1]
    _edit(bad, ext, **cards)
    with pytest.raises(FileProblem) as info:
        Reduction(raw_copies["science"])
    assert info.value.path == str(bad) and message in info.value.problem


def test_bias_exposure_time_zero_is_fine(raw_copies):
    Reduction(raw_copies["bias"])


def test_flat_of_another_filter_is_refused(raw_copies):
    from gmoswidgets.errors import FileProblem
    odd = raw_copies["flat"][2]
    _edit(odd, FILTER2="g_G0301")
    with pytest.raises(FileProblem) as info:
        Reduction(raw_copies["flat"])
    assert info.value.path == str(odd)
    assert f"filter g, but i in {raw_copies['flat'][0].name}" in info.value.problem


def test_raw_bias_as_user_calibration_is_refused(raw_copies, capsys, monkeypatch):
    from gmoswidgets.errors import FileProblem
    raw_bias = raw_copies["bias"][0]
    with pytest.raises(FileProblem) as info:
        Reduction(raw_copies["flat"], user_cals=[f"processed_bias:{raw_bias}"])
    assert info.value.path == str(raw_bias)
    assert "given as the user processed_bias, but it is a raw bias" in info.value.problem
    monkeypatch.chdir(raw_copies["flat"][0].parent)
    rc = reduce_cli.main([*map(str, raw_copies["flat"]), "--no-progress",
                          "--user_cal", f"processed_bias:{raw_bias}"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and str(raw_bias) in err and "raw bias" in err
    assert not list(raw_copies["flat"][0].parent.glob("*_*.fits"))


# -- item 15: a read-only working directory or log file is one line, before any step -----------------
def _as_other_user():
    """argv prefix and env that run a command as an unprivileged user, or None."""
    import os
    import shutil as sh
    if os.geteuid() != 0:
        return [], {}
    setpriv = sh.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"], {}


@pytest.fixture
def shared_area(tutorial4):
    """A world-readable directory with three raw biases and a read-only working directory."""
    import os
    import shutil as sh
    import tempfile
    root = Path(tempfile.mkdtemp(prefix="harden-ro-"))
    root.chmod(0o755)
    for p in tutorial4.bias[:3]:
        os.chmod(sh.copy(p, root), 0o644)
    home = root / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    writable = root / "writable"
    writable.mkdir()
    writable.chmod(0o777)
    yield root
    sh.rmtree(root, ignore_errors=True)


def _reduce_as_user(root, cwd, *args):
    import os
    import subprocess
    import sys
    prefix = _as_other_user()
    if prefix is None:
        pytest.skip("no way to run as an unprivileged user here")
    env = dict(os.environ, HOME=str(root / "home"), XDG_CONFIG_HOME=str(root / "home"))
    files = sorted(str(p) for p in root.glob("*.fits"))
    return subprocess.run([*prefix[0], sys.executable, "-m", "gmoswidgets.cli.reduce", *files,
                           "--no-progress", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_read_only_working_directory(shared_area):
    result = _reduce_as_user(shared_area, shared_area / "readonly")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "reduce.log" in result.stderr and "Permission denied" in result.stderr
    log = shared_area / "writable" / "elsewhere.log"
    result = _reduce_as_user(shared_area, shared_area / "readonly", "--logfile", str(log))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{shared_area / 'readonly'}: cannot write outputs in this directory" in result.stderr
    assert "Step 1" not in result.stdout + log.read_text()


def test_all_zero_processed_flat_is_named(tmp_path):
    """flatCorrect with a flat of zeros: the error names the flat, not the science frame."""
    from gmoswidgets.caldb.testing import write_calibration
    from gmoswidgets.errors import FileProblem
    from gmoswidgets.frame import read_frame
    from gmoswidgets.primitives.base import StepContext, get_primitive
    flat_path = write_calibration(tmp_path / "N20170702S0178_flat.fits", "flat")   # SCI all 0
    sci = read_frame(write_calibration(tmp_path / "N20170614S0201.fits", "science"))
    sci.exts[0].data[:] = 100.0
    flat = read_frame(flat_path)
    for frame in (sci, flat):
        for ext in frame.exts:
            ext.header["DATASEC"] = "[1:2,1:2]"
    assert not flat.exts[0].data.any()
    ctx = StepContext(calibration_lookup=lambda frame, caltype: (flat, flat_path, "test"))
    with pytest.raises(FileProblem) as info:
        get_primitive("flatCorrect")([sci], ctx)
    assert info.value.path == str(flat_path)
    assert "no usable pixels in extension 1" in info.value.problem


# -- item 4: replacing an output is said, and never leaves the calibration database stale -------------
def _caplog_text(caplog):
    return "\n".join(r.getMessage() for r in caplog.records)


def test_replacing_an_output_is_logged(fake_defaults):
    assert reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "--no-progress"]) == 0
    log = fake_defaults.workdir / "reduce.log"
    assert "replaced the existing" not in log.read_text()
    assert reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "--no-progress"]) == 0
    text = log.read_text()
    out = fake_defaults.workdir / "N20170613S0180_fakebias.fits"
    copy = fake_defaults.workdir / "calibrations" / "processed_bias" / out.name
    assert f"replaced the existing file {out}" in text
    assert f"replaced the existing file {copy}" in text


@pytest.fixture
def service(tmp_path):
    from gmoswidgets.caldb import CalibrationService
    svc = CalibrationService(database_dir=tmp_path / "db")
    svc.init()
    yield svc
    svc.close()


def test_replaced_calibration_entry_is_updated_or_removed(service, tmp_path):
    import logging
    from gmoswidgets.caldb.testing import write_calibration
    from gmoswidgets.overwrite import replacing
    log = logging.getLogger("gmoswidgets.test")
    path = write_calibration(tmp_path / "N20170613S0180_bias.fits", "bias", date="2017-06-13T20:00:00")
    service.add_cal(path)
    with replacing(path, log, service):
        write_calibration(path, "bias", date="2017-06-20T20:00:00", binning=(1, 1))
    (entry,) = service.list_files()
    assert (entry.props.ut_datetime.day, entry.props.binning) == (20, "1x1")
    with replacing(path, log, service):
        write_calibration(path, "science")
    assert service.list_files() == []


def test_engine_keeps_the_database_true_when_it_replaces_a_registered_file(fake_defaults, service):
    import time
    from gmoswidgets.caldb import CalEntry, properties_of, set_calservice
    from gmoswidgets.caldb import service as service_module
    from gmoswidgets.caldb.testing import make_headers
    assert reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "--no-progress"]) == 0
    out = fake_defaults.workdir / "N20170613S0180_fakebias.fits"
    service.db.upsert(CalEntry(out.name, out, "processed_bias", properties_of(make_headers("bias")),
                               time.time()))
    saved = service_module._DEFAULT["service"]
    set_calservice(service)
    try:
        assert reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "--no-progress"]) == 0
    finally:
        service_module._DEFAULT["service"] = saved
    text = (fake_defaults.workdir / "reduce.log").read_text()
    # the fake bias lacks the keywords of a real one: its entry cannot describe it any more
    assert f"{out.name} is no longer a processed_bias" in text and "entry was removed" in text
    assert service.list_files() == []


def test_reduce_skips_an_unreadable_input_and_carries_on(fake_defaults, capsys):
    import os
    fifo = fake_defaults.raw / "N20170613S0183.fits"
    os.mkfifo(fifo)
    nonfits = fake_defaults.raw / "N20170613S0184.fits"
    nonfits.write_text("not FITS\n")
    files = [*map(str, fake_defaults.biases), str(fifo), str(nonfits)]
    assert reduce_cli.main([*files, "-r", "fakeBias", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"reduce: skipping {fifo}: is not a regular file (a FIFO, device or socket); "
        "only regular files are read",
        f"reduce: skipping {nonfits}: not a FITS file"]
    assert (fake_defaults.workdir / "N20170613S0180_fakebias.fits").exists()
    assert reduce_cli.main([str(fifo), str(nonfits), "--no-progress"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "reduce: error: no readable input files"
