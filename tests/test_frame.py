"""Frame I/O: raw and processed layouts, atomic writes, bad files."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from gmoswidgets.errors import FileProblem
from gmoswidgets.frame import Extension, Frame, read_frame, read_headers


def _raw_file(path, nexts=3, instrument="GMOS-N"):
    phu = fits.PrimaryHDU()
    phu.header["INSTRUME"] = instrument
    phu.header["OBSTYPE"] = "BIAS"
    hdus = [phu]
    for i in range(nexts):
        data = np.full((20, 12), 1000 + i, dtype=np.uint16)
        hdu = fits.ImageHDU(data)
        hdu.header["DATASEC"] = "[1:10,1:20]"
        hdu.header["BIASSEC"] = "[11:12,1:20]"
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return path


def test_read_raw_and_headers_only(tmp_path):
    path = _raw_file(tmp_path / "raw.fits")
    hs = read_headers(path)
    assert len(hs.ext_headers) == 3 and hs.shapes == [(20, 12)] * 3
    frame = read_frame(path)
    assert len(frame) == 3
    assert frame[1].data.dtype == np.uint16 and frame[1].data[0, 0] == 1001
    assert frame[0].variance is None and frame[0].mask is None


def test_processed_round_trip(tmp_path):
    path = _raw_file(tmp_path / "raw.fits")
    frame = read_frame(path)
    for ext in frame:
        ext.data = ext.data.astype(np.float32) * 1.5
        ext.variance = np.full(ext.shape, 2.0, np.float32)
        ext.mask = np.zeros(ext.shape, np.uint16)
        ext.mask[0, 0] = 4
        ext.objcat = Table({"NUMBER": [1, 2], "X_IMAGE": [1.5, 3.0]})
    frame.tables["PROVENANCE"] = Table({"filename": ["a.fits"], "md5": ["x"]})
    out = frame.write(tmp_path / "out.fits")
    with fits.open(out) as hdul:
        names = [(h.header.get("EXTNAME"), h.header.get("EXTVER")) for h in hdul[1:]]
    assert names[:4] == [("SCI", 1), ("VAR", 1), ("DQ", 1), ("OBJCAT", 1)]
    assert names[-1][0] == "PROVENANCE"
    back = read_frame(out)
    assert len(back) == 3
    np.testing.assert_array_equal(back[2].data, frame[2].data)
    assert back[2].mask.dtype == np.uint16 and back[2].mask[0, 0] == 4
    assert list(back[0].objcat["NUMBER"]) == [1, 2]
    assert "PROVENANCE" in back.tables


def test_frame_tables_read_as_fits_rec_write_back_unchanged(tmp_path):
    """A table read (a FITS_rec, units and all) is written back with the same cards and rows."""
    path = _raw_file(tmp_path / "raw.fits")
    frame = read_frame(path)
    frame.tables["REFCAT"] = Table({"RA": [150.1, 150.2], "name": ["s1", "s22"]},
                                   units={"RA": "deg"})
    first = frame.write(tmp_path / "first.fits")
    back = read_frame(first)
    assert isinstance(back.tables["REFCAT"], fits.FITS_rec)
    second = back.write(tmp_path / "second.fits")
    with fits.open(first) as one, fits.open(second) as two:
        assert one["REFCAT"].header.tostring() == two["REFCAT"].header.tostring()
        assert one["REFCAT"].header["TUNIT1"] == "deg" and one["REFCAT"].header["TFORM2"] == "3A"
        assert one["REFCAT"].data.tolist() == two["REFCAT"].data.tolist()


def test_write_never_overwrites_input(tmp_path):
    path = _raw_file(tmp_path / "raw.fits")
    before = path.read_bytes()
    frame = read_frame(path)
    with pytest.raises(FileProblem, match="refusing to overwrite"):
        frame.write(path)
    other = tmp_path / "other.fits"
    with pytest.raises(FileProblem):
        frame.write(other, protect=[other])
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    frame = Frame(fits.Header({"INSTRUME": "GMOS-N"}), [Extension(np.zeros((4, 4), np.float32), fits.Header())])
    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(fits.HDUList, "writeto", boom)
    with pytest.raises(OSError):
        frame.write(tmp_path / "x.fits")
    assert list(tmp_path.iterdir()) == []


def test_bad_files(tmp_path):
    text = tmp_path / "notes.fits"
    text.write_text("hello")
    with pytest.raises(FileProblem, match="not a FITS file"):
        read_headers(text)
    good = _raw_file(tmp_path / "good.fits")
    cut = tmp_path / "cut.fits"
    cut.write_bytes(good.read_bytes()[:2880 * 3 + 100])
    with pytest.raises(FileProblem, match="truncated"):
        read_headers(cut)
    other = _raw_file(tmp_path / "niri.fits", instrument="NIRI")
    with pytest.raises(FileProblem, match="not a GMOS file"):
        read_headers(other)
    with pytest.raises(FileProblem, match="no such file"):
        read_headers(tmp_path / "absent.fits")


@pytest.mark.parametrize("bzero, bscale, dtype", [
    (32768, 1, np.uint16),        # raw GMOS and DQ planes: read by gmoswidgets' own pass
    (32768, 2, np.float32),       # scaled: astropy's conversion
    (0, 1, np.int16),             # signed
    (None, None, np.float32),     # BITPIX -32
])
def test_pixels_are_astropys_values(tmp_path, bzero, bscale, dtype):
    rng = np.random.default_rng(5)
    values = rng.integers(-32768, 32767, size=(2, 33, 17), dtype=np.int16)  # every bit pattern
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["INSTRUME"] = "GMOS-S"
    for extver, plane in enumerate(values, start=1):
        for name in ("SCI", "DQ"):
            data = plane.astype(np.float32) if bzero is None else plane
            hdu = fits.ImageHDU(data, name=name, ver=extver, do_not_scale_image_data=True)
            if bzero is not None:
                hdu.header["BZERO"], hdu.header["BSCALE"] = bzero, bscale
            hdus.append(hdu)
    path = tmp_path / "planes.fits"
    fits.HDUList(hdus).writeto(path)
    frame = read_frame(path)
    with fits.open(path) as expected:        # astropy's own reading, defaults
        for index, ext in enumerate(frame):
            for plane, hdu in ((ext.data, expected["SCI", index + 1]),
                               (ext.mask, expected["DQ", index + 1])):
                assert plane.dtype == dtype and plane.dtype.isnative
                assert plane.dtype == hdu.data.dtype.newbyteorder("=")
                np.testing.assert_array_equal(plane, hdu.data)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # astropy scaling NaN and huge values
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scaling", [None, (0, 1), (0, 2)])
def test_float_pixels_are_astropys_values(tmp_path, dtype, scaling):
    """SCI / VAR planes: read straight into native arrays unless scaled (then astropy's)."""
    rng = np.random.default_rng(6)
    bits = rng.integers(0, 256, size=33 * 17 * np.dtype(dtype).itemsize, dtype=np.uint8)
    plane = bits.view(dtype).reshape(33, 17).copy()      # every bit pattern: NaN, inf, -0, tiny
    plane[0, :4] = [np.nan, np.inf, -0.0, 1e-40]
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(plane, name="SCI", ver=1),
            fits.ImageHDU(plane[::-1].copy(), name="VAR", ver=1)]
    hdus[0].header["INSTRUME"] = "GMOS-N"
    if scaling is not None:
        for hdu in hdus[1:]:
            hdu.header["BZERO"], hdu.header["BSCALE"] = scaling
    path = tmp_path / "floats.fits"
    fits.HDUList(hdus).writeto(path)
    ext = read_frame(path)[0]
    with fits.open(path) as expected:
        for array, hdu in ((ext.data, expected["SCI"]), (ext.variance, expected["VAR"])):
            assert array.dtype.isnative and array.dtype == hdu.data.dtype.newbyteorder("=")
            assert array.flags.writeable and array.flags.c_contiguous
            np.testing.assert_array_equal(array, hdu.data)
            if scaling != (0, 2):
                assert array.tobytes() == hdu.data.astype(array.dtype).tobytes()   # same bits


def _varied_header():
    header = fits.Header()
    header["SIMPLE"] = True
    header["EXPTIME"] = (10.0, "seconds")
    header["OBJECT"] = "starfield"
    header.add_history("first")
    header.add_comment("a comment")
    header.append(fits.Card("", "blank commentary"), end=True)
    header["HIERARCH ESO DET CHIP"] = 3
    header["LONGSTR"] = "x" * 150                                 # CONTINUE cards
    header.append(fits.Card.fromstring("DP1     = 'AXIS.1: 1'".ljust(80)))   # record-valued
    header.append(fits.Card.fromstring("DP1     = 'AXIS.2: 2'".ljust(80)))
    header.append(("DUPL", 1), end=True)
    header.append(("DUPL", 2), end=True)
    header.add_history("second")
    return header


def _edit(header):
    header["EXPTIME"] = 20.0
    header["NEWKEY"] = ("new", "added")
    del header["OBJECT"]
    header.add_history("third")
    header["DP1.AXIS.1"] = 5
    header.insert("DUPL", ("BEFORE", 0))
    header.remove("DUPL")


def _state(header):
    return (header.tostring(), list(header.keys()), dict(header._keyword_indices),
            dict(header._rvkc_indices), header["DP1.AXIS.2"], header[("DUPL", 0)],
            header["HISTORY"][:], header.get("DP1.AXIS.1"))


@pytest.mark.parametrize("source", ["varied", "read"])
def test_copy_header_equals_astropys_copy(tmp_path, source):
    from gmoswidgets.frame import copy_header
    header = _varied_header()
    if source == "read":      # as parsed from a file (cards not yet parsed)
        fits.PrimaryHDU(header=header).writeto(tmp_path / "h.fits")
        header = fits.getheader(tmp_path / "h.fits")
    before = header.tostring()
    ours, theirs = copy_header(header), header.copy()
    assert _state(ours) == _state(theirs) and ours._modified == theirs._modified
    _edit(ours)
    _edit(theirs)
    assert _state(ours) == _state(theirs)
    assert header.tostring() == before        # the original is untouched


def _astropy_read(monkeypatch, reader, path):
    """``reader(path)`` with every file opened by astropy (the path for files that are not plain)."""
    import gmoswidgets.frame as frame_module
    with monkeypatch.context() as patch:
        patch.setattr(frame_module, "_scanned", lambda path: None)
        return reader(path)


def _cards(header):
    return ([(c.keyword, c.value, c.comment, c.image) for c in header.cards], header.tostring(),
            dict(header._keyword_indices), dict(header._rvkc_indices), header._modified)


def _assert_same_arrays(ours, theirs):
    if theirs is None:
        assert ours is None
        return
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.flags.writeable == theirs.flags.writeable and ours.flags.c_contiguous
    assert ours.tobytes() == theirs.tobytes()


def _assert_same_tables(ours, theirs):
    assert type(ours) is type(theirs) and ours.dtype == theirs.dtype and len(ours) == len(theirs)
    as_array = (lambda t: t) if isinstance(theirs, np.ndarray) else (lambda t: t.as_array())
    assert as_array(ours).tobytes() == as_array(theirs).tobytes()
    for name in theirs.dtype.names:
        ours_col, theirs_col = (np.asarray(t[name]) for t in (ours, theirs))
        assert ours_col.tobytes() == theirs_col.tobytes()
    if hasattr(theirs, "columns"):                         # FITS_rec: formats, units, ...
        assert str(ours.columns) == str(theirs.columns)
    else:                                                  # Table (OBJCAT)
        assert ours.meta == theirs.meta
        assert [c.unit for c in ours.columns.values()] == [c.unit for c in theirs.columns.values()]


def _assert_same_frames(ours, theirs):
    assert _cards(ours.phu) == _cards(theirs.phu)
    assert len(ours) == len(theirs) and ours.tables.keys() == theirs.tables.keys()
    for mine, other in zip(ours, theirs):
        assert _cards(mine.header) == _cards(other.header)
        for name in ("data", "variance", "mask", "objmask"):
            _assert_same_arrays(getattr(mine, name), getattr(other, name))
        assert (mine.objcat is None) == (other.objcat is None)
        if other.objcat is not None:
            _assert_same_tables(mine.objcat, other.objcat)
    for name, table in theirs.tables.items():
        _assert_same_tables(ours.tables[name], table)


def test_scanned_reading_equals_astropys(tmp_path, tutorial4, monkeypatch):
    """A plain file is scanned (headers from the exact bytes, pixels and planes by offset):
    the frame and the headers equal those of astropy's reading, card by card and byte by byte,
    on raw, processed (bias, flat) and stacked files (OBJMASK, OBJCAT, frame tables)."""
    from gmoswidgets.caldb.testing import write_calibration
    from gmoswidgets.frame import _scanned
    stack = read_frame(tutorial4.science[0])
    for ext in stack:
        ext.data = ext.data.astype(np.float32) * 1.25
        ext.variance = np.full(ext.shape, 3.5, np.float32)
        ext.mask = (np.arange(ext.data.size, dtype=np.uint16) % 7).reshape(ext.shape) << 13
        ext.objmask = (np.arange(ext.data.size) % 3).astype(np.uint8).reshape(ext.shape)
        ext.objcat = Table({"NUMBER": [1, 2], "FLUX": [1.5, 2.5], "label": ["a", "bc"]})
        ext.objcat["FLUX"].unit = "s"
    stack.tables["PROVENANCE"] = Table({"filename": ["a.fits"], "md5": ["x" * 32]})
    stack.tables["HISTORY"] = Table({"primitive": ["prepare"], "args": ["{}"]})
    stack.phu["HISTORY"] = "a 'quoted' history"
    stack.write(tmp_path / "stack.fits")
    files = [tutorial4.bias[0], tutorial4.flat[0], tutorial4.science[0], tmp_path / "stack.fits",
             write_calibration(tmp_path / "bias.fits", "bias"),
             write_calibration(tmp_path / "flat.fits", "flat")]
    for path in files:
        assert _scanned(path) is not None, path            # the scanned path is the one tested
        frame = read_frame(path)
        _assert_same_frames(frame, _astropy_read(monkeypatch, read_frame, path))
        with fits.open(path) as hdulist:                   # the pixels are astropy's values
            images = [h.data for h in hdulist[1:] if h.is_image]
        planes = [a for ext in frame for a in (ext.data, ext.variance, ext.mask, ext.objmask)
                  if a is not None]
        assert len(planes) == len(images)
        for plane, image in zip(planes, images):
            assert plane.dtype == image.dtype.newbyteorder("=")
            np.testing.assert_array_equal(plane, image)
        ours, theirs = read_headers(path), _astropy_read(monkeypatch, read_headers, path)
        assert ours.shapes == theirs.shapes and ours.path == theirs.path
        assert [_cards(h) for h in (ours.phu, *ours.ext_headers)] == \
            [_cards(h) for h in (theirs.phu, *theirs.ext_headers)]


def test_files_astropy_changes_are_left_to_it(tmp_path):
    """No EXTEND card before extensions: ``fits.open`` adds one, so astropy reads the file."""
    from gmoswidgets.frame import _scanned
    path = _raw_file(tmp_path / "raw.fits", instrument="GMOS-N")
    assert _scanned(path) is not None
    data = bytearray(path.read_bytes())
    at = data.index(b"EXTEND  =")
    data[at:at + 80] = b"COMMENT".ljust(80)
    path.write_bytes(bytes(data))
    assert _scanned(path) is None
    frame = read_frame(path)
    assert frame.phu["EXTEND"] is True and len(frame) == 3
