"""Primitive declarations: one default per parameter, the table, calling a primitive."""
import inspect

import pytest

from gmoswidgets.errors import ParameterError
from gmoswidgets.steps import parse_uparms
from gmoswidgets.primitives import (GENERIC_PARAMS, Param, PrimitiveTable, StepContext,
                                    default_table, get_primitive, primitive)


@pytest.mark.parametrize("name", sorted(default_table()))
def test_signature_matches_declarations(name):
    """The function takes exactly the declared parameters, keyword-only, without defaults."""
    prim = default_table()[name]
    params = list(inspect.signature(prim.func).parameters.values())
    assert [p.name for p in params[:2]] == ["frames", "ctx"]
    own = params[2:]
    measured = ["measured"] if prim.measure is not None else []   # its measurement's items
    assert [p.name for p in own] == measured + list(prim.params), name
    for p in own:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}:{p.name} is not keyword-only"
        assert p.default is inspect.Parameter.empty, f"{name}:{p.name} has a signature default"


@pytest.mark.parametrize("name", sorted(default_table()))
def test_declared_defaults_pass_their_own_checks(name):
    prim = default_table()[name]
    assert prim.validate(prim.defaults()) == prim.defaults()
    assert not set(prim.params) & {p.name for p in GENERIC_PARAMS}


def test_table_lists_the_packages_primitives_once():
    table = default_table()
    assert len(table) == 24 and table is default_table()
    assert table.get("stackFrames") is get_primitive("stackFrames") is table["stackFrames"]
    with pytest.raises(ParameterError, match="unknown primitive 'stackFrame'.*stackFrames"):
        table.get("stackFrame")
    with pytest.raises(TypeError):
        table["stackFrames"] = table["stackBiases"]


def _fake_module():
    """A module-like namespace with two primitives (one parameter has a check)."""
    def positive_even(value):
        return None if value % 2 == 0 else "must be even"

    @primitive(Param("factor", float, 2.0, "Multiplier."),
               Param("width", int, 4, "An even width.", min=0, check=positive_even),
               suffix="_fake")
    def fakeScale(frames, ctx, *, factor, width):
        """Return (factor, width) per input."""
        return [(frame, factor, width) for frame in frames]

    @primitive(suffix="_other")
    def fakeOther(frames, ctx):
        """Nothing."""
        return list(frames)

    return type("FakeModule", (), {"PRIMITIVES": (fakeScale, fakeOther)})


def test_table_from_modules_and_duplicates():
    module = _fake_module()
    table = PrimitiveTable.from_modules(module)
    assert list(table) == ["fakeScale", "fakeOther"]
    assert table["fakeScale"].doc == "Return (factor, width) per input."
    with pytest.raises(ValueError, match="two primitives are named 'fakeScale'"):
        PrimitiveTable.from_modules(module, module)
    with pytest.raises(TypeError, match="not a Primitive"):
        PrimitiveTable([lambda frames, ctx: frames])


def test_calling_a_primitive_fills_defaults_and_checks_overrides():
    scale = PrimitiveTable.from_modules(_fake_module())["fakeScale"]
    ctx = StepContext()
    assert scale(["a"], ctx) == [("a", 2.0, 4)]
    assert scale(("a", "b"), ctx, width="6", factor=3) == [("a", 3.0, 6), ("b", 3.0, 6)]
    with pytest.raises(ParameterError, match="fakeScale:width: must be even"):
        scale(["a"], ctx, width=5)
    with pytest.raises(ParameterError, match="fakeScale has no parameter 'size'"):
        scale(["a"], ctx, size=5)
    with pytest.raises(ParameterError, match="no parameter 'write_outputs'"):
        scale(["a"], ctx, write_outputs=True)       # the engine's business, not the function's
    assert scale.validate({"write_outputs": "yes"}) == {"write_outputs": True}


def test_bad_section_fails_validation_naming_the_parameter():
    stack = get_primitive("stackFrames")
    assert stack.validate({"statsec": "[1:100, 1:50]"}) == {"statsec": "[1:100, 1:50]"}
    for bad in ("[1:100]", "1:100,1:50", "[0:10,1:5]", "[10:1,1:5]"):
        with pytest.raises(ParameterError, match=r"^stackFrames:statsec: .*FITS section"):
            stack.validate({"statsec": bad})
    # the user parameters of a reduction are checked before it starts
    with pytest.raises(ParameterError, match="stackFrames:statsec"):
        parse_uparms(["stackFrames:statsec=[1:100]"], default_table())


@pytest.mark.parametrize("name, values, message", [
    ("QECorrect", {"factors": "1.2"}, "QECorrect:factors: needs two values"),
    ("fringeCorrect", {"scale_factor": []}, "fringeCorrect:scale_factor: give one value"),
])
def test_list_parameters_are_checked_before_a_run(name, values, message):
    with pytest.raises(ParameterError, match=message):
        get_primitive(name).validate(values)
