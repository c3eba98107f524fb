"""Issue 12, items 19 (showd --csv quoting, ASCII digits in expressions)."""
import csv
import io

import pytest

from gmoswidgets.cli import showd
from gmoswidgets.errors import ExpressionError
from gmoswidgets.select import expr_parser


def test_showd_csv_quotes_per_extension_values(tutorial4, capsys):
    files = [str(p) for p in tutorial4.bias[:2]]
    assert showd.main(["-d", "gain,object,data_section", "--csv", *files]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["filename", "gain", "object", "data_section"]
    assert [len(row) for row in rows] == [4, 4, 4]
    assert rows[1][0] == files[0] and rows[1][2] == "Bias"
    assert len(rows[1][1].split(",")) == 12          # one gain per amplifier, in one cell
    assert rows[1][3].startswith("[") and "],[" in rows[1][3]


@pytest.mark.parametrize("text", ["exposure_time==1\u0660", "exposure_time==\u0661\u0660",
                                  "exposure_time==1\uff10", "exposure_time==\u0b67.5"])
def test_expression_numbers_are_ascii_digits_only(text):
    with pytest.raises(ExpressionError, match="not allowed"):
        expr_parser(text)


def test_expression_ascii_numbers_still_work():
    assert expr_parser("exposure_time==10. and airmass<1.5e0").descriptors == {"exposure_time", "airmass"}
