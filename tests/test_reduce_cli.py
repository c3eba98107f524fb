"""The front ends: ``reduce``, ``showpars``, ``showrecipes`` and the ``Reduce`` class (fakes)."""
import re

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import gmoswidgets.caldb as caldb
import gmoswidgets.caldb.lookup
from fakes import expected_final, write_fake
from gmoswidgets.cli import reduce as reduce_cli
from gmoswidgets.cli import showpars, showrecipes
from gmoswidgets.errors import ParameterError
from gmoswidgets.reduce import Reduce


def _list(env, name="list_of_bias.txt"):
    (env.workdir / name).write_text("# biases\n" + "\n".join(str(p) for p in env.biases) + "\n")
    return "@" + name


def _pixels(path):
    return [fits.getdata(path, i + 1) for i in range(2)]


# -- reduce ------------------------------------------------------------------------------------
def test_reduce_command_with_params_suffix_and_log(fake_defaults, capsys):
    rc = reduce_cli.main(["-p", "fakeScale:factor=1", _list(fake_defaults), "-r", "fakeBias",
                          "--suffix", "mine", "--logfile", "my.log"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = fake_defaults.workdir / "N20170613S0180_mine.fits"
    for got, want in zip(_pixels(out), expected_final(fake_defaults.biases, factor=1.0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert (fake_defaults.workdir / "calibrations" / "processed_bias" / out.name).exists()
    log = (fake_defaults.workdir / "my.log").read_text()
    assert "Recipe fakeBias on 3 file(s)" in log and "Output: N20170613S0180_mine.fits" in log
    assert "overrides the value the recipe fakeBias sets" in log
    assert captured.out.count("Output: N20170613S0180_mine.fits") == 1
    assert "5.0/5" in captured.err  # the progress bar reached the end


def test_reduce_default_log_file(fake_defaults):
    assert reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "--no-progress"]) == 0
    assert "Output: N20170613S0180_fakebias.fits" in (fake_defaults.workdir / "reduce.log").read_text()


@pytest.mark.parametrize("param, message", [
    ("noSuchPrim:x=1", "unknown primitive 'noSuchPrim'; valid primitives are: .*fakeScale"),
    ("fakeScale:fctor=1", "fakeScale has no parameter 'fctor'; valid parameters are: "
                          "factor, fail, skip_primitive, write_outputs"),
    ("fakeScale:factor=big", "fakeScale:factor: cannot read 'big' as float"),
    ("fakeScale:fail=maybe", "fakeScale:fail: cannot read 'maybe' as bool"),
])
def test_reduce_rejects_bad_parameters(fake_defaults, capsys, param, message):
    rc = reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "-p", param, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("reduce: error: ")
    assert re.search(message, err), err
    assert not list(fake_defaults.workdir.glob("*.fits"))


def test_reduce_failure_and_mixed_inputs(fake_defaults, capsys):
    rc = reduce_cli.main([_list(fake_defaults), str(fake_defaults.flat), "--no-progress"])
    assert rc == 1 and "cannot reduce N20170702S0178.fits" in capsys.readouterr().err
    rc = reduce_cli.main([_list(fake_defaults), "-r", "fakeBias", "-p", "fakeScale:fail=True",
                          "--no-progress"])
    assert rc == 1
    assert "fakeScale failed: ValueError: fakeScale was told to fail (traceback in reduce.log)" \
        in capsys.readouterr().err
    assert "Traceback" in (fake_defaults.workdir / "reduce.log").read_text()
    assert reduce_cli.main(["--no-progress"]) == 1
    assert "no input files" in capsys.readouterr().err


@pytest.fixture
def user_cal_env(fake_defaults, monkeypatch):
    """fake_defaults + a master bias file; calibrations reduced to the user's choice.

    The fake files lack the headers the real association checks read.
    """
    master = write_fake(fake_defaults.raw / "N20170613S0200_bias.fits", base=40.0)
    fits.setval(master, "PROCBIAS", value="2017-06-13T00:00:00")   # a processed bias

    def get_calibration(frame, caltype, service=None, user_cals=None):
        assert user_cals and caltype in user_cals, "only user calibrations in this test"
        return caldb.CalMatch(user_cals.files[caltype], "given by the user", caltype, "user")

    monkeypatch.setattr(gmoswidgets.caldb.lookup, "get_calibration", get_calibration)
    fake_defaults.master = master
    return fake_defaults


def test_reduce_user_cal(user_cal_env, capsys):
    env = user_cal_env
    rc = reduce_cli.main([_list(env), "-r", "fakeCalibrated", "--no-progress",
                          "--user_cal", f"processed_bias:{env.master}"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "using processed_bias N20170613S0200_bias.fits: given by the user" in out
    result = env.workdir / "N20170613S0180_fakebias.fits"
    want = np.mean([fits.getdata(b, 1) for b in env.biases], axis=0) - fits.getdata(env.master, 1)
    np.testing.assert_allclose(fits.getdata(result, 1), want, rtol=1e-6)
    provenance = Table.read(result, hdu="PROVENANCE")
    assert "N20170613S0200_bias.fits" in list(provenance["filename"])


@pytest.mark.parametrize("spec, message", [
    ("processed_bias", "expected CALTYPE:FILE"),
    ("processed_bais:x.fits", "unknown calibration type 'processed_bais'"),
    ("processed_bias:missing.fits", "missing.fits: no such file"),
])
def test_reduce_user_cal_errors(fake_defaults, capsys, spec, message):
    rc = reduce_cli.main([_list(fake_defaults), "-r", "fakeCalibrated", "--user_cal", spec,
                          "--no-progress"])
    assert rc == 1 and message in capsys.readouterr().err


def test_reduce_says_how_to_make_a_missing_calibration(fake_defaults, capsys, monkeypatch):
    monkeypatch.setattr(caldb.service, "_DEFAULT", {"service": None})
    monkeypatch.setenv(caldb.CONFIG_ENV, str(fake_defaults.workdir / "no_rsys.cfg"))
    rc = reduce_cli.main([_list(fake_defaults), "-r", "fakeCalibrated", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "no processed_bias for N20170613S0180.fits: no calibration database" in err
    assert ("To fix: make one with `reduce @list_of_bias.txt` then `caldb add N..._bias.fits`, "
            "or give one with --user_cal processed_bias:FILE") in err


# -- showpars / showrecipes ------------------------------------------------------------------
def test_showpars(fake_defaults, capsys):
    assert showpars.main([str(fake_defaults.biases[0]), "fakeScale"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Dataset tagged as ") and "BIAS" in out.splitlines()[0]
    assert "Settable parameters on 'fakeScale':" in out
    lines = {line.split()[0]: line for line in out.splitlines()[3:] if line.startswith(" ")}
    assert "2.0" in lines["factor"] and "Multiplier." in lines["factor"]
    assert "(float, 0.0 <= value)" in out and "(bool)" in out
    assert "False" in lines["skip_primitive"] and "Skip this step" in lines["skip_primitive"]
    assert "write_outputs" in lines
    assert showpars.main([str(fake_defaults.biases[0]), "fakeScal"]) == 1
    assert "valid primitives are:" in capsys.readouterr().err
    assert showpars.main([str(fake_defaults.biases[0])]) == 1


def test_showrecipes(fake_defaults, capsys):
    bias = str(fake_defaults.biases[0])
    assert showrecipes.main([bias]) == 0
    out = capsys.readouterr().out
    assert "Recipe not provided, default recipe (makeProcessedBias) will be used." in out
    assert "   p.prepare(require_wcs=False)\n" in out and "   p.overscanCorrect()\n" in out
    assert "   p.storeProcessedBias()" in out
    assert showrecipes.main([bias, "--all"]) == 0
    out = capsys.readouterr().out
    assert "makeProcessedBias (default)" in out and "fakeBias: Fake bias recipe." in out
    assert "reduce" not in out.split("Recipes available")[1].split()
    assert showrecipes.main([bias, "-r", "fakeBias"]) == 0
    assert "p.fakeScale(factor=3.0)" in capsys.readouterr().out
    assert showrecipes.main([str(fake_defaults.flat)]) == 0
    assert "default recipe (makeProcessedFlat)" in capsys.readouterr().out
    assert showrecipes.main([bias, "-r", "nope"]) == 1
    assert "unknown recipe 'nope'" in capsys.readouterr().err


# -- the Reduce class ----------------------------------------------------------------------------
def test_reduce_class_seed_api(fake_defaults):
    reduce_bias = Reduce()
    reduce_bias.files.extend(str(p) for p in fake_defaults.biases)
    reduce_bias.recipename = "fakeBias"
    reduce_bias.uparms.append(("fakeScale:factor", 1.0))
    reduce_bias.suffix = "newsuffix"
    reduce_bias.runr()
    assert reduce_bias.output_filenames == ["N20170613S0180_newsuffix.fits"]
    for got, want in zip(_pixels(reduce_bias.output_filenames[0]),
                         expected_final(fake_defaults.biases, factor=1.0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert reduce_bias.reduction.finished
    assert not reduce_bias.reduction.has_outputs(1)  # the API frees intermediates


def test_reduce_class_dict_uparms_workdir_and_ucals(user_cal_env, tmp_path):
    env = user_cal_env
    red = Reduce(files=env.biases, recipename="fakeCalibrated", workdir=tmp_path / "out",
                 uparms={"fakeCal:write_outputs": True})
    red.user_calibs = {"processed_bias": str(env.master)}
    assert red.ucals == {"processed_bias": str(env.master)}
    red.runr()
    assert red.output_filenames == [str(tmp_path / "out" / "N20170613S0180_fakebias.fits")]
    assert (tmp_path / "out" / "N20170613S0181_calCorrected.fits").exists()
    bad = Reduce(files=env.biases, recipename="fakeBias", uparms={"fakeScale:nope": 1})
    with pytest.raises(ParameterError, match="no parameter 'nope'"):
        bad.runr()
    assert bad.output_filenames == []
