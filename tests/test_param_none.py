"""``-p PRIM:PAR=None``: None where the parameter allows it (DRAGONS reads the text ``None`` as
None), a one-line error where it does not."""
import re

import pytest

from gmoswidgets.cli import caldb as caldb_cli
from gmoswidgets.cli import reduce as reduce_cli
from gmoswidgets.errors import ParameterError
from gmoswidgets.steps import parse_uparms


@pytest.mark.parametrize("item, value", [
    ("stackFrames:statsec=None", None),           # a string parameter that allows None
    ("stackFrames:statsec= None ", None),
    ("biasCorrect:bias=None", None),
    ("stackFrames:max_iters=None", None),         # a number that allows None
    ("stackFrames:memory=none", None),
    ("stackFrames:statsec=[1:100,1:50]", "[1:100,1:50]"),
    ("stackFrames:reject_method=none", "none"),   # a choice named 'none' stays a string
])
def test_none_is_none_where_allowed(item, value):
    assert parse_uparms([item]) == [(item.split(":")[0], item.split(":")[1].split("=")[0], value)]


def test_none_in_the_python_api_forms():
    assert parse_uparms({"stackFrames:statsec": "None"}) == [("stackFrames", "statsec", None)]
    assert parse_uparms([("stackFrames:statsec", None)]) == [("stackFrames", "statsec", None)]


@pytest.mark.parametrize("item, message", [
    ("stackFrames:operation=None", "stackFrames:operation: None is not allowed; expected one of "
                                   "'mean', 'wtmean', 'median', 'lmedian'"),
    ("stackFrames:hsigma=None", "stackFrames:hsigma: None is not allowed; expected float"),
    ("stackFrames:scale=none", "stackFrames:scale: None is not allowed; expected bool"),
    ("stackFrames:statsec=nothing", "stackFrames:statsec: not a FITS section string"),
])
def test_none_where_not_allowed_is_a_one_line_error(item, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        parse_uparms([item])


@pytest.mark.parametrize("item, message", [
    ("stackFrames:operation=None", "stackFrames:operation: None is not allowed; expected one of "),
    ("stackFrames:hsigma=None", "stackFrames:hsigma: None is not allowed; expected float"),
])
def test_reduce_command_refuses_none_in_one_line(tutorial4, home, capsys, item, message):
    rc = reduce_cli.main([str(p) for p in tutorial4.bias[:3]] + ["-p", item, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"reduce: error: {message}") and err.count("\n") == 1, err
    assert not list(home.glob("*.fits"))


@pytest.mark.slow          # a flat reduction (and the session's masters)
def test_reduce_command_with_none_asks_the_calibration_database(tutorial4, masters4, home,
                                                                capsys):
    """``-p biasCorrect:bias=None``: the flat's bias comes from caldb, as with no ``-p``
    (it was the string 'None', a file name); ``stackFrames:statsec=None`` is accepted."""
    assert caldb_cli.main(["init"]) == 0
    assert caldb_cli.main(["add", str(masters4["processed_bias"])]) == 0
    capsys.readouterr()
    rc = reduce_cli.main([str(p) for p in tutorial4.flat[:3]]
                         + ["-p", "biasCorrect:bias=None", "stackFrames:statsec=None",
                            "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "using processed_bias N20170613S0180_bias.fits" in out, out
    assert "stackFrames:statsec ignored: stackFrames is not a step of recipe makeProcessedFlat" \
        in err + out + (home / "reduce.log").read_text()
    assert list(home.glob("*_flat.fits"))
