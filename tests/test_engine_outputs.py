"""Output naming, calibration copies and logging set-up (gmoswidgets.outputs, logutils)."""
import hashlib
import logging

import numpy as np
import pytest
from astropy.io import fits

from fakes import preserved_logger
from gmoswidgets import logutils
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.outputs import (add_history, add_provenance, calibration_type, merge_provenance,
                                 normalize_suffix, output_filename, remember_origin,
                                 store_calibration_copy, utc_now)


def _frame(name="N20170614S0201.fits", **phu):
    header = fits.Header()
    header["INSTRUME"] = "GMOS-N"
    for key, value in phu.items():
        header[key] = value
    frame = Frame(header, [Extension(np.zeros((2, 3), np.float32), fits.Header())])
    frame.filename = name
    return frame


def test_output_names_strip_the_previous_suffix():
    frame = _frame("N20170614S0201_biasCorrected.fits", ORIGNAME="N20170614S0201.fits")
    assert output_filename(frame, "_flatCorrected") == "N20170614S0201_flatCorrected.fits"
    assert output_filename(frame, "newsuffix") == "N20170614S0201_newsuffix.fits"
    plain = _frame("N20170614S0201.fits")
    remember_origin(plain)
    assert plain.phu["ORIGNAME"] == "N20170614S0201.fits"
    remember_origin(plain, "other.fits")  # never overwritten
    assert output_filename(plain, "_stack") == "N20170614S0201_stack.fits"
    assert normalize_suffix("_x") == "_x" and normalize_suffix("") == ""


def test_calibration_type_and_copy(tmp_path):
    bias = _frame(OBSTYPE="BIAS", PROCBIAS="2017-06-13T00:00:00")
    flat = _frame(OBSTYPE="OBJECT", OBJECT="Twilight", OBSMODE="IMAGE", PROCFLAT="x")
    science = _frame(OBSTYPE="OBJECT", OBSMODE="IMAGE", PROCSCI="x")
    assert calibration_type(bias) == "processed_bias"
    assert calibration_type(flat) == "processed_flat"
    assert calibration_type(science) is None
    path = bias.write(tmp_path / "N20170613S0180_bias.fits")
    copy = store_calibration_copy(path, bias, tmp_path)
    assert copy == tmp_path / "calibrations" / "processed_bias" / "N20170613S0180_bias.fits"
    assert copy.read_bytes() == path.read_bytes()
    assert store_calibration_copy(path, science, tmp_path) is None


def test_calibration_copy_is_kept_when_the_product_is_written_again(tmp_path):
    bias = _frame(OBSTYPE="BIAS", PROCBIAS="2017-06-13T00:00:00")
    path = bias.write(tmp_path / "N20170613S0180_bias.fits")
    copy = store_calibration_copy(path, bias, tmp_path)
    assert copy.stat().st_ino == path.stat().st_ino   # a hard link: no bytes copied
    stored = copy.read_bytes()
    bias.exts[0].data[...] += 1
    bias.write(path)                                  # replaced whole, as every write is
    assert copy.read_bytes() == stored != path.read_bytes()


def test_history_and_provenance_tables_survive_a_round_trip(tmp_path):
    frame = _frame()
    source = tmp_path / "in.fits"
    source.write_bytes(b"some bytes")
    add_provenance(frame, source, "prepare")
    add_provenance(frame, source, "prepare")  # listed once
    long_args = {"operation": "mean", "values": [1.0, 2.0], "text": "x" * 200}
    add_history(frame, "stackFrames", long_args, utc_now(), utc_now())
    path = frame.write(tmp_path / "out.fits")
    back = Frame.read(path)
    assert len(back.tables["PROVENANCE"]) == 1
    assert back.tables["PROVENANCE"]["md5"][0] == hashlib.md5(b"some bytes").hexdigest()
    add_history(back, "storeProcessedBias", {}, utc_now(), utc_now())
    assert list(back.tables["HISTORY"]["primitive"]) == ["stackFrames", "storeProcessedBias"]
    assert back.tables["HISTORY"]["args"][0].endswith('"' + "x" * 200 + '"}')  # not truncated
    other = _frame()
    merge_provenance(other, [back, back])
    assert len(other.tables["PROVENANCE"]) == 1


def test_logutils_config_is_idempotent_and_logs_once(tmp_path, capsys):
    root_records = []

    class Catch(logging.Handler):
        def emit(self, record):
            root_records.append(record)

    root_handler = Catch()
    logging.getLogger().addHandler(root_handler)
    try:
        with preserved_logger():
            log_file = tmp_path / "gmos_data_reduction.log"
            logutils.config(file_name=str(log_file))
            logutils.config(file_name=str(log_file))
            logutils.get_logger("reduce").info("hello once")
            assert capsys.readouterr().out.count("hello once") == 1
            assert log_file.read_text().count("hello once") == 1
            assert not root_records  # nothing propagates to the root logger
            logutils.config(file_name=str(log_file), mode="quiet")
            logutils.get_logger().warning("to the file only")
            assert "to the file only" not in capsys.readouterr().out
            assert "to the file only" in log_file.read_text()
            with pytest.raises(ValueError):
                logutils.config(mode="loud")
    finally:
        logging.getLogger().removeHandler(root_handler)


def test_provenance_tables_written_as_astropy_writes_tables_and_read_back(tmp_path):
    """The FITS_rec tables the engine builds write the same bytes as astropy Tables would."""
    from astropy.io import fits
    from astropy.table import Table
    from gmoswidgets.frame import _table_hdu
    from gmoswidgets.outputs import PROVENANCE_COLUMNS, _rows, _table
    rows = [("2026-11-30T19:00:00.000001", "N20170614S0201.fits", "0" * 32, "prepare"),
            ("2026-11-30T19:00:01.000002", "N20170613S0180_bias.fits", "f" * 32, "")]
    table = _table(rows, PROVENANCE_COLUMNS)
    expected = Table(rows=rows, names=PROVENANCE_COLUMNS, dtype=[str] * 4)   # the old way
    assert table.dtype.names == tuple(expected.colnames) and len(table) == 2
    for name in PROVENANCE_COLUMNS:
        assert list(table[name]) == list(expected[name])
    for hdu, path in ((_table_hdu(table, "PROVENANCE"), "new.fits"),
                      (fits.BinTableHDU(expected, name="PROVENANCE"), "old.fits")):
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / path)
    assert (tmp_path / "new.fits").read_bytes() == (tmp_path / "old.fits").read_bytes()
    with fits.open(tmp_path / "new.fits") as hdulist:
        assert [hdulist[1].header[f"TFORM{i}"] for i in (1, 2, 3, 4)] == ["26A", "24A", "32A", "7A"]
        assert _rows(hdulist[1].data, PROVENANCE_COLUMNS) == rows          # FITS_rec read back
    assert _rows(Table.read(tmp_path / "new.fits"), PROVENANCE_COLUMNS) == rows   # Table, bytes
    assert _rows(expected[["filename"]], PROVENANCE_COLUMNS) == [("", r[1], "", "") for r in rows]
