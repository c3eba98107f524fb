"""The dataselect expression language and select_data, on hand-built headers and files."""
import builtins
import os

import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets.errors import ExpressionError, FileProblem
from gmoswidgets.select import MAX_EXPRESSION_LENGTH, MAX_NESTING, Expression, expr_parser, select_data
from test_descriptors import make_headers


def matches(text, **phu_values):
    return expr_parser(text)(make_headers(**phu_values))


# -- semantics ----------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('filter_name=="i"', True),
    ("filter_name=='i'", True),
    ('filter_name=="i_G0302"', False),          # short form, as DRAGONS' pretty=True
    ('object=="starfield" and exposure_time==10.', True),
    ('(object=="starfield" and exposure_time==10.)', True),
    ('observation_class=="science"', True),
    ('observation_class=="dayCal" or object=="starfield"', True),
    ('not observation_class=="science"', False),
    ('object!="starfield"', False),
    ("exposure_time>5 and exposure_time<=10", True),
    ("5 < exposure_time < 20", True),
    ("5 < exposure_time < 8", False),
    ("True", True),
    ("False or True and False", False),           # 'and' binds tighter than 'or'
    ("(False or True) and True", True),
    ("detector_x_bin==2 and detector_y_bin==2", True),
    ("dec>-90", True),
])
def test_expression_values(text, expected):
    assert matches(text) is expected


@pytest.mark.parametrize("exptime, equal", [(10.0, True), (10.09, True), (9.91, True),
                                            (10.2, False), (9.8, False)])
def test_exposure_time_equality_has_one_percent_tolerance(exptime, equal):
    assert matches("exposure_time==10.", EXPTIME=exptime) is equal
    assert matches("exposure_time!=10", EXPTIME=exptime) is (not equal)
    assert matches("10==exposure_time", EXPTIME=exptime) is equal


def test_exposure_time_order_is_exact():
    assert matches("exposure_time>10", EXPTIME=10.05)
    assert not matches("exposure_time<10", EXPTIME=10.0)


@pytest.mark.parametrize("text, expected", [
    ('ut_date=="2017-06-14"', True),
    ('ut_date>="2017-06-14"', True),
    ("ut_date<'2017-06-14'", False),
    ('ut_date>"2017-06-13" and ut_date<"2017-06-15"', True),
    ('ut_datetime>"2017-06-14"', True),                     # date alone: midnight
    ('ut_datetime<"2017-06-14 05:30:00"', False),
    ('ut_datetime<"2017-06-14 05:31:00"', True),
    ('ut_datetime>="2017-06-14T05:30:36.5"', True),
])
def test_dates_compare_with_strings(text, expected):
    assert matches(text) is expected


def test_bad_date_is_refused_at_parse_time():
    with pytest.raises(ExpressionError, match="not a valid date"):
        expr_parser('ut_date=="14/06/2017"')


def test_per_extension_descriptors_use_first_extension():
    hs = make_headers()            # first amplifier 'BI13-20-4k-1, 4', slow/low gain 1.675
    assert expr_parser("gain>1.67 and gain<1.68")(hs)
    assert expr_parser('array_name=="BI13-20-4k-1, 4"')(hs)
    assert expr_parser('data_section=="[1:256,1:2112]"')(hs)


def test_missing_value_matches_nothing():
    hs = make_headers()
    del hs.phu["AIRMASS"]
    for text in ("airmass<2", "airmass>0", "airmass==1.1"):
        assert not expr_parser(text)(hs)
    assert expr_parser("airmass!=1.1")(hs)


def test_order_comparison_of_string_and_number_is_an_error():
    with pytest.raises(ExpressionError, match="cannot compare"):
        matches("object<3")
    assert matches("object==3") is False


def test_expression_object_api():
    expr = expr_parser('(object=="starfield" and exposure_time==10.)')
    assert isinstance(expr, Expression) and expr_parser(expr) is expr
    assert expr.descriptors == {"object", "exposure_time"}
    assert str(expr) == '(object=="starfield" and exposure_time==10.)'


def test_evaluation_never_uses_eval_exec_or_compile(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/compile must not be used")
    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    assert matches('(object=="starfield" and exposure_time==10.) or ut_date<"2000-01-01"')


# -- refusals -----------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('__import__("os").system("ls")', "'__' are not allowed"),
    ("open('/etc/passwd')", "function calls are not allowed"),
    ("exposure_time()==10", "function calls are not allowed"),
    ("object.__class__", r"attribute access \('\.'\)"),
    ('object.upper()=="X"', r"attribute access"),
    ("gain[0]>1", r"subscripts"),
    ("lambda: True", "'lambda' is not allowed"),
    ("[x for x in (1, 2)]", "subscripts"),
    ("import os", "'import' is not allowed"),
    ("exposure_time+1==11", "arithmetic"),
    ("exposure_time-1==9", "arithmetic"),
    ("exposure_time**2==100", "arithmetic"),
    ("object=='a' if True else False", "'if' is not allowed"),
    ('object = "x"', "use '==' to compare"),
    ('object=="unterminated', "unterminated string"),
    (r'object=="a\"b"', "unterminated string|backslash"),
    ("__builtins__", "'__' are not allowed"),
    ("{'a': 1}", "not allowed"),
    ("object in ('a', 'b')", "'in' is not allowed"),
    ("object", "must be a condition"),
    ('object=="a" and exposure_time', "must be a condition"),
    ("exposuretime==10", "unknown descriptor 'exposuretime'; valid descriptors are: .*exposure_time"),
    ("", "empty expression"),
    ("(True", r"expected '\)'"),
    ("True True", "unexpected text"),
])
def test_refused_expressions(text, message):
    with pytest.raises(ExpressionError, match=message) as info:
        expr_parser(text)
    assert "\n" not in str(info.value)


def test_refusals_say_what_is_allowed():
    with pytest.raises(ExpressionError, match="allowed are descriptor names, numbers, quoted strings"):
        expr_parser("object.__class__")


def test_too_long_expression():
    text = " or ".join(['object=="starfield"'] * 200)
    assert len(text) > MAX_EXPRESSION_LENGTH
    with pytest.raises(ExpressionError, match="too long"):
        expr_parser(text)


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 100000])
def test_deep_nesting_is_refused_without_recursion_error(depth):
    for text in ("(" * depth + "True" + ")" * depth, "not " * depth + "True"):
        with pytest.raises(ExpressionError, match="too long|nested too deeply"):
            expr_parser(text)


def test_nesting_up_to_the_limit_is_accepted():
    assert expr_parser("(" * MAX_NESTING + "True" + ")" * MAX_NESTING)(make_headers())
    assert expr_parser("not " * MAX_NESTING + "True")(make_headers())   # 50 'not': even


def test_non_string_expression():
    with pytest.raises(ExpressionError, match="must be a string"):
        expr_parser(42)


# -- select_data on files -----------------------------------------------------

def _write(path, headers):
    hdus = [fits.PrimaryHDU(header=headers.phu)]
    for hdr in headers.ext_headers:
        hdus.append(fits.ImageHDU(np.zeros((2, 2), np.uint16), header=hdr))
    fits.HDUList(hdus).writeto(path)
    return str(path)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("select")
    files = {
        "bias": _write(d / "b1.fits", make_headers(kind="bias")),
        "flat_i": _write(d / "f1.fits", make_headers(kind="twilight")),
        "flat_z": _write(d / "f2.fits", make_headers(kind="twilight", FILTER2="z_G0304")),
        "sci10": _write(d / "s1.fits", make_headers(EXPTIME=10.0)),
        "sci30": _write(d / "s2.fits", make_headers(EXPTIME=30.0)),
    }
    (d / "notfits.fits").write_text("hello, I am not a FITS file\n")
    files["bad"] = str(d / "notfits.fits")
    return files


def test_select_by_tags_and_expression(small_set):
    f = small_set
    everything = [f["bias"], f["flat_i"], f["flat_z"], f["sci10"], f["sci30"]]
    assert select_data(everything, ["BIAS"], []) == [f["bias"]]
    assert select_data(everything, ["FLAT"], []) == [f["flat_i"], f["flat_z"]]
    assert select_data(everything, ["FLAT"], [], expr_parser('filter_name=="i"')) == [f["flat_i"]]
    assert select_data(everything, ["FLAT"], [], 'filter_name=="z"') == [f["flat_z"]]
    assert select_data(everything, [], ["CAL"]) == [f["sci10"], f["sci30"]]
    assert select_data(everything, ["FLAT", "CAL"], []) == [f["flat_i"], f["flat_z"]]   # AND
    assert select_data(everything, [], ["BIAS", "FLAT"]) == [f["sci10"], f["sci30"]]   # any
    assert select_data(everything, ["flat"], []) == [f["flat_i"], f["flat_z"]]          # case
    assert select_data(everything, expression="exposure_time==10.") == [
        f["bias"], f["flat_i"], f["flat_z"], f["sci10"]]
    assert select_data(everything) == everything


def test_select_keeps_inputs_as_given_and_in_order(small_set):
    from pathlib import Path
    f = small_set
    inputs = [Path(f["sci30"]), f["sci10"], Path(f["sci30"])]
    out = select_data(inputs, [], ["CAL"])
    assert out == inputs and out[0] is inputs[0]
    assert select_data(f["sci10"]) == [f["sci10"]]          # one name, not its characters


def test_bad_files_are_reported_and_skipped(small_set, tmp_path, caplog):
    f = small_set
    headers = make_headers()
    del headers.phu["EXPTIME"]
    no_exptime = _write(tmp_path / "noexp.fits", headers)
    inputs = [f["bad"], f["sci10"], no_exptime, str(tmp_path / "missing.fits")]
    problems = []
    out = select_data(inputs, [], [], "exposure_time==10", problems=problems)
    assert out == [f["sci10"]]
    assert [type(p) for p in problems] == [FileProblem] * 3
    assert "notfits.fits: not a FITS file" in str(problems[0])
    assert "noexp.fits" in str(problems[1]) and "EXPTIME" in str(problems[1])
    assert "missing.fits: no such file" in str(problems[2])
    # without a list, problems are logged as warnings
    with caplog.at_level("WARNING", logger="gmoswidgets.select"):
        assert select_data(inputs[:2]) == [f["sci10"]]
    assert "not a FITS file" in caplog.text


def test_expression_checked_before_any_file_is_read():
    with pytest.raises(ExpressionError):
        select_data(["/no/such/file.fits"], [], [], "exposure_time())")


def test_select_reads_headers_only(small_set, monkeypatch):
    import gmoswidgets.frame as frame
    monkeypatch.setattr(frame, "read_frame", lambda *a: pytest.fail("pixels were read"))
    assert select_data([small_set["sci10"]], [], ["CAL"]) == [small_set["sci10"]]


def test_files_are_not_modified(small_set):
    stamps = {p: (os.path.getmtime(p), os.path.getsize(p)) for p in small_set.values()}
    select_data(list(small_set.values()), ["FLAT"], [], 'filter_name=="i"', problems=[])
    assert stamps == {p: (os.path.getmtime(p), os.path.getsize(p)) for p in small_set.values()}
