import numpy as np
import pytest

from gmoswidgets.sections import parse_section


def test_fits_string_to_numpy_slices():
    sec = parse_section("[33:544,1:4224]")
    assert (sec.x1, sec.x2, sec.y1, sec.y2) == (32, 544, 0, 4224)
    assert sec.shape == (4224, 512)
    arr = np.zeros((4224, 544))
    assert arr[sec.slices].shape == (4224, 512)
    assert sec.to_string() == "[33:544,1:4224]"


@pytest.mark.parametrize("text", ["[1:10,1:10]", "[ 5 : 7 , 2:9 ]", "[1:1,1:1]"])
def test_round_trip(text):
    assert parse_section(parse_section(text).to_string()) == parse_section(text)


@pytest.mark.parametrize("text", ["", "[1:10]", "[0:10,1:5]", "[10:1,1:5]", "1:10,1:5", "[a:b,c:d]"])
def test_bad_sections_raise(text):
    with pytest.raises(ValueError):
        parse_section(text)


def test_binning_conversion():
    sec = parse_section("[513:1024,1:4224]")
    binned = sec.binned(2, 2)
    assert binned.to_string() == "[257:512,1:2112]"
    assert binned.unbinned(2, 2) == sec
    assert sec.contains(parse_section("[600:700,10:20]"))
    assert not sec.contains(parse_section("[1:700,10:20]"))
