"""The data model: a GMOS multi-extension FITS file as one :class:`Frame`.

A raw GMOS file is a primary header (PHU) and one uint16 image extension
per amplifier, overscan included.  A processed file (as DRAGONS writes it)
has, per extension, ``SCI``, ``VAR`` and ``DQ`` images sharing an
``EXTVER``, optionally ``OBJMASK`` and an ``OBJCAT`` table, and frame-level
tables such as ``PROVENANCE`` and ``HISTORY``.  Both read into a
:class:`Frame`; :meth:`Frame.write` writes the processed layout back.

:func:`read_headers` reads headers only (no pixels), for listing and tags.

A plain GMOS file (every card plain, sizes that fill the file:
:func:`~.fitsheader.scan_hdus`) is scanned once: its headers are astropy's
``Header.fromstring`` of their bytes in the file, its images are read at
their offsets (:func:`image_pixels`), its tables by astropy at theirs.
Any other file is opened by ``fits.open``, whose checks (and
:mod:`~.fitscheck`'s) name its problem.  Both give the same frame
(``tests/test_frame.py`` compares them card by card and byte by byte).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import atomic_path
from .errors import FileProblem
from .fitscheck import check_cards, check_regular_file, check_sections, check_sizes
from .fitsheader import HeaderSet, ScannedHDU, header_set, is_gmos, is_science, scan_hdus
from .fitswrite import CHUNK_BYTES, writable, write_fits

if TYPE_CHECKING:  # astropy is imported where a file is read or written (start-up time)
    from astropy.io import fits
    from astropy.table import Table

__all__ = ["Extension", "Frame", "HeaderSet", "copy_header", "image_pixels", "read_headers",
           "read_frame", "FRAME_TABLES"]

#: Frame-level table extensions (not attached to one amplifier / CCD).
FRAME_TABLES = ("PROVENANCE", "HISTORY", "REFCAT")
_PER_EXT_IMAGES = ("SCI", "VAR", "DQ", "OBJMASK")
#: SCI header keywords copied (values only) into its VAR, DQ and OBJMASK headers.
_PLANE_KEYS = ("CCDSUM", "DATASEC", "DETSEC", "CCDSEC", "AMPNAME", "CCDNAME")



def copy_header(header: fits.Header) -> fits.Header:
    """``header.copy()``, about ten times faster: the copy every step makes of every header.

    astropy's copy re-appends each card to a new header (re-checking its
    keyword); this copies the cards (shallow, as :func:`copy.copy` does) and
    the keyword indices of a header astropy has already checked.
    ``tests/test_frame.py`` compares both copies, card by card and index by index.
    """
    new = type(header)()
    new._cards = [_copy_card(card) for card in header._cards]
    new._keyword_indices.update((key, list(where))
                                for key, where in header._keyword_indices.items())
    new._rvkc_indices.update((key, list(where)) for key, where in header._rvkc_indices.items())
    return new


def _copy_card(card):
    twin = object.__new__(type(card))
    twin.__dict__.update(card.__dict__)
    return twin


@dataclass
class Extension:
    """One science extension with the planes that travel with it.

    Attributes
    ----------
    data : numpy.ndarray
        The SCI pixels (uint16 when raw, float32 once prepared).
    header : astropy.io.fits.Header
        The SCI extension header (DATASEC, DETSEC, WCS, ...).
    variance : numpy.ndarray or None
        The VAR plane (variance, not sigma), same shape as ``data``.
    mask : numpy.ndarray or None
        The DQ plane, uint16 bit mask (see :mod:`gmoswidgets.dq`).
    objcat : astropy.table.Table or None
        Sources detected on this extension.
    objmask : numpy.ndarray or None
        uint8 object mask.
    """

    data: np.ndarray
    header: fits.Header
    variance: np.ndarray | None = None
    mask: np.ndarray | None = None
    objcat: Table | None = None
    objmask: np.ndarray | None = None

    @property
    def shape(self) -> tuple:
        """Numpy shape of the SCI plane."""
        return self.data.shape

    def copy(self) -> "Extension":
        """A deep copy (arrays, header and table)."""
        return Extension(
            self.data.copy(), copy_header(self.header),
            None if self.variance is None else self.variance.copy(),
            None if self.mask is None else self.mask.copy(),
            None if self.objcat is None else self.objcat.copy(),
            None if self.objmask is None else self.objmask.copy(),
        )


class Frame:
    """A GMOS exposure (raw or processed) in memory.

    Parameters
    ----------
    phu : astropy.io.fits.Header
        Primary header.
    extensions : list of Extension
        The science extensions, in file order.
    path : str or pathlib.Path, optional
        The file this frame was read from; :meth:`write` refuses to write
        over it.
    tables : dict, optional
        Frame-level tables by name (``PROVENANCE``, ``HISTORY``, ...): numpy
        structured arrays (made by :mod:`gmoswidgets.outputs`), astropy
        ``FITS_rec`` (as read from a file) or astropy ``Table``.
    """

    def __init__(self, phu, extensions, path=None, tables=None):
        self.phu = phu
        self.exts = list(extensions)
        self.path = Path(path) if path is not None else None
        self.filename = self.path.name if self.path else "unnamed.fits"
        self.tables = dict(tables or {})

    # -- header access shared with HeaderSet --------------------------------
    @property
    def ext_headers(self) -> list:
        """The science-extension headers, in order."""
        return [ext.header for ext in self.exts]

    @property
    def shapes(self) -> list:
        """The shape of each science extension."""
        return [ext.shape for ext in self.exts]

    @property
    def tags(self) -> frozenset:
        """The DRAGONS-style tags of this frame (see :mod:`gmoswidgets.gmos.tags`)."""
        from .gmos.tags import tags_of
        return tags_of(self)

    def descriptor(self, name: str):
        """Value of the descriptor ``name`` (see :mod:`gmoswidgets.gmos.descriptors`)."""
        from .gmos.descriptors import descriptor_value
        return descriptor_value(self, name)

    def __len__(self) -> int:
        return len(self.exts)

    def __iter__(self):
        return iter(self.exts)

    def __getitem__(self, index) -> Extension:
        return self.exts[index]

    def __repr__(self) -> str:
        return f"<Frame {self.filename}: {len(self.exts)} extension(s)>"

    def copy(self) -> "Frame":
        """A deep copy that remembers the same origin path."""
        new = Frame(copy_header(self.phu), [ext.copy() for ext in self.exts], self.path,
                    {k: v.copy() for k, v in self.tables.items()})
        new.filename = self.filename
        return new

    @property
    def nbytes(self) -> int:
        """Memory held by the pixel planes, in bytes."""
        total = 0
        for ext in self.exts:
            for arr in (ext.data, ext.variance, ext.mask, ext.objmask):
                if arr is not None:
                    total += arr.nbytes
        return total

    # -- I/O -----------------------------------------------------------------
    @classmethod
    def read(cls, path) -> "Frame":
        """Read a GMOS file; see :func:`read_frame`."""
        return read_frame(path)

    def to_hdulist(self) -> fits.HDUList:
        """Build the multi-extension FITS layout DRAGONS writes.

        Returns
        -------
        astropy.io.fits.HDUList
            PHU, then per extension SCI, VAR, DQ (and OBJMASK, OBJCAT) sharing
            EXTVER, then the frame-level tables: the file :meth:`write` writes.
        """
        from astropy.io import fits
        layout = self._layout()
        hdus = [fits.ImageHDU(part[1], header=part[0]) if isinstance(part, tuple) else part
                for part in layout]
        return fits.HDUList([self._primary_hdu(len(hdus)), *hdus])

    def _primary_hdu(self, extensions: int) -> fits.PrimaryHDU:
        from astropy.io import fits
        phu = fits.PrimaryHDU(header=copy_header(self.phu))
        phu.header["NEXTEND"] = (extensions, "Number of extensions")
        return phu

    def _layout(self) -> list:
        """The extensions of the file in order: ``(header, array)`` per image, table HDUs."""
        layout = []
        for extver, ext in enumerate(self.exts, start=1):
            hdr = _clean_ext_header(ext.header)
            hdr["EXTNAME"] = ("SCI", "Extension name")
            hdr["EXTVER"] = (extver, "Extension version")
            layout.append((hdr, ext.data))
            for plane, name, dtype in ((ext.variance, "VAR", np.float32),
                                       (ext.mask, "DQ", np.uint16),
                                       (ext.objmask, "OBJMASK", np.uint8)):
                if plane is not None:
                    layout.append((_plane_header(hdr, name, extver),
                                   plane.astype(dtype, copy=False)))
            if ext.objcat is not None:
                cat = _table_hdu(ext.objcat, "OBJCAT")
                cat.header["EXTVER"] = extver
                layout.append(cat)
        layout.extend(_table_hdu(table, name) for name, table in self.tables.items())
        return layout

    def write(self, path, protect=()) -> Path:
        """Write the frame to ``path`` atomically (temporary name, then rename).

        The bytes are those of ``to_hdulist().writeto(path, output_verify='silentfix')``;
        :func:`gmoswidgets.fitswrite.write_fits` writes the image extensions
        without astropy's cost per extension (astropy writes a frame with any image
        it does not take: :func:`~gmoswidgets.fitswrite.writable`).

        Parameters
        ----------
        path : str or pathlib.Path
            Destination file.  An existing output is replaced.
        protect : iterable of path-like, optional
            Further files that must never be overwritten (e.g. the inputs of
            a reduction).  The frame's own source file is always protected.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        FileProblem
            If ``path`` is the frame's own input file or a protected file.
        """
        path = Path(path)
        target = path.resolve()
        guarded = {Path(p).resolve() for p in protect}
        if self.path is not None:
            guarded.add(self.path.resolve())
        if target in guarded:
            raise FileProblem(path, "refusing to overwrite an input file")
        path.parent.mkdir(parents=True, exist_ok=True)
        from astropy.io import fits
        layout = self._layout()
        images = [part for part in layout if isinstance(part, tuple)]
        direct = all(writable(header, array) for header, array in images)
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            if direct:
                write_fits(tmp, self._primary_hdu(len(layout)), layout)
            else:
                self.to_hdulist().writeto(tmp, overwrite=True, output_verify="silentfix")
        return path


def _clean_ext_header(header: fits.Header) -> fits.Header:
    hdr = copy_header(header)
    for key in ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT",
                "BZERO", "BSCALE", "CHECKSUM", "DATASUM"):
        hdr.remove(key, ignore_missing=True, remove_all=True)
    return hdr


def _table_hdu(table, name: str) -> fits.BinTableHDU:
    """A binary table HDU named ``name`` of ``table``: a numpy structured array, a
    ``FITS_rec`` or an astropy ``Table``.

    An array is set as the data of an empty HDU: given as ``data``, astropy
    (8.0) would import :mod:`astropy.table` (~0.1 s) only to check whether it
    is a ``Table``.  A str column is written ``nA``, as astropy writes a ``Table``'s.
    """
    from astropy.io import fits
    if not isinstance(table, np.ndarray):
        return fits.BinTableHDU(table, name=name)
    hdu = fits.BinTableHDU(name=name)
    hdu.data = table if isinstance(table, fits.FITS_rec) else fits.FITS_rec.from_columns(table)
    return hdu


def _plane_header(sci_header, name, extver) -> fits.Header:
    """The header of a VAR, DQ or OBJMASK plane: the SCI's sections and names, EXTNAME, EXTVER."""
    from astropy.io import fits
    return fits.Header([*((key, sci_header[key]) for key in _PLANE_KEYS if key in sci_header),
                        ("EXTNAME", name), ("EXTVER", extver)])


def _open(path) -> fits.HDUList:
    path = Path(path)
    check_regular_file(path)
    try:
        with open(path, "rb") as fh:
            start = fh.read(30)
    except OSError as exc:
        raise FileProblem(path, f"cannot read it ({exc.strerror})") from None
    if not start.startswith(b"SIMPLE  =") or b"T" not in start[9:30]:
        raise FileProblem(path, "not a FITS file")
    from astropy.io import fits
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdulist = fits.open(path, memmap=False, lazy_load_hdus=False)
    except Exception as exc:  # astropy raises OSError, ValueError, ...
        raise FileProblem(path, f"unreadable FITS file ({exc})") from None
    for warning in caught:
        message = str(warning.message).lower()
        if "truncated" in message or "corrupted" in message:
            hdulist.close()
            raise FileProblem(path, "truncated or corrupt FITS file (it ends inside an extension)")
    _check_complete(path, hdulist)
    try:
        check_cards(path, hdulist)
        check_sizes(path, hdulist)
    except FileProblem:
        hdulist.close()
        raise
    return hdulist


def _check_complete(path: Path, hdulist: fits.HDUList) -> None:
    """Raise FileProblem if the file is shorter than its last extension needs.

    astropy itself warns (caught in :func:`_open`) when a header is cut; this
    catches a file cut inside the last extension's data.  Only the last HDU
    needs checking, and its offsets are known without re-reading headers.
    """
    size = path.stat().st_size
    last = hdulist[-1]
    needed = last._data_offset + last._data_size
    if needed > size:
        hdulist.close()
        raise FileProblem(path, f"truncated FITS file (extension {len(hdulist) - 1} needs {needed} "
                                f"bytes, file has {size})")


def _is_table(hdu) -> bool:
    from astropy.io import fits
    return isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))


def _classify(hdulist):
    """Split HDUs into science extensions (with their planes) and frame tables."""
    sci, planes, tables = [], {}, {}
    for hdu in hdulist[1:]:
        name = str(hdu.header.get("EXTNAME", "")).strip().upper()
        extver = hdu.header.get("EXTVER")
        if _is_table(hdu):
            if name == "OBJCAT":
                planes[("OBJCAT", extver)] = hdu
            else:
                tables[name or f"TABLE{len(tables) + 1}"] = hdu
        elif name in ("", "SCI"):
            sci.append(hdu)
        elif name in _PER_EXT_IMAGES:
            planes[(name, extver)] = hdu
        else:
            tables[name] = hdu
    return sci, planes, tables


def _scanned(path) -> list[ScannedHDU] | None:
    """The HDUs of ``path`` if it is a plain GMOS file (:func:`~.fitsheader.scan_hdus`) that
    astropy reads unchanged, else None (astropy reads it, or names its problem).

    ``fits.open`` sets ``EXTEND = T`` in a primary header that lacks it (or has
    ``F``) before extensions: such files are left to it.
    """
    hdus = scan_hdus(path)
    if hdus is None or not is_gmos(hdus[0].header) or not any(map(is_science, hdus[1:])):
        return None
    if len(hdus) > 1 and hdus[0].header.get("EXTEND") is not True:
        return None
    return hdus


def _astropy_header(hdu: ScannedHDU) -> fits.Header:
    """The header astropy makes of ``hdu``'s text (``Header.fromstring``, as ``fits.open``)."""
    from astropy.io import fits
    return fits.Header.fromstring(hdu.text.decode("ascii"))


def read_headers(path) -> HeaderSet:
    """Read only the headers of a GMOS file (no pixel data are loaded).

    A plain file (:func:`~.fitsheader.scan_hdus`) is scanned and only its primary
    and science headers are made into astropy headers; any other file is read by
    astropy, whose checks name its problem.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    HeaderSet

    Raises
    ------
    FileProblem
        Not a FITS file, truncated, or not a GMOS file.
    """
    scanned = _scanned(path)
    if scanned is not None:
        return header_set(scanned, path, header=_astropy_header)
    hdulist = _open(path)
    try:
        phu = hdulist[0].header          # the file is closed below: no copy needed
        if not is_gmos(phu):
            inst = phu.get("INSTRUME")
            raise FileProblem(path, "not a GMOS file (no INSTRUME keyword)" if inst is None
                              else f"not a GMOS file (INSTRUME = {str(inst).strip()!r})")
        sci, _, _ = _classify(hdulist)
        if not sci:
            raise FileProblem(path, "no image extensions")
        headers = [h.header for h in sci]
        shapes = [(h.header.get("NAXIS2", 0), h.header.get("NAXIS1", 0)) for h in sci]
    finally:
        hdulist.close()
    return HeaderSet(phu, headers, Path(path), shapes)


def _frame_table(hdu):
    """A frame-level table as read: a binary table's ``FITS_rec`` (no :mod:`astropy.table`
    import, ~0.1 s), an ASCII table converted to an astropy ``Table`` (written back binary)."""
    from astropy.io import fits
    if isinstance(hdu, fits.BinTableHDU):
        return hdu.data
    from astropy.table import Table
    return Table(hdu.data)


def _native(data: np.ndarray) -> np.ndarray:
    """``data`` in the machine's byte order (FITS stores big-endian; arithmetic on it is slower).

    Read without memory mapping, astropy's arrays are the frame's own: no copy otherwise.
    """
    if data.dtype.isnative:
        return data
    return data.astype(data.dtype.newbyteorder("="))


def _is_unsigned16(header) -> bool:
    """True for 16-bit pseudo-unsigned pixels (raw GMOS, DQ): BZERO 32768, BSCALE 1."""
    return (header.get("BITPIX") == 16 and header.get("BZERO") == 1 << 15
            and header.get("BSCALE", 1) == 1)


#: Native pixel type of the floating-point FITS images read directly, by ``BITPIX``.
_FLOAT_TYPES = {-32: np.float32, -64: np.float64}


def _is_plain_float(header) -> bool:
    """True for floating-point pixels that astropy returns unscaled (no or trivial BZERO/BSCALE)."""
    return (header.get("BITPIX") in _FLOAT_TYPES and header.get("BZERO", 0) == 0
            and header.get("BSCALE", 1) == 1)


def _is_plain_bytes(header) -> bool:
    """True for 8-bit pixels (OBJMASK) that astropy returns as they are: no scaling, no BLANK."""
    return (header.get("BITPIX") == 8 and header.get("BZERO", 0) == 0
            and header.get("BSCALE", 1) == 1 and "BLANK" not in header)


def _direct_type(header) -> tuple | None:
    """``(dtype, flip)`` of the pixels :func:`image_pixels` reads itself, or None.

    ``dtype`` is the native type of the result; the file holds it big-endian.
    ``flip`` is set for pseudo-unsigned 16-bit pixels: stored as ``int16``,
    their value is the stored one plus BZERO = 32768 modulo 2**16, i.e. the
    stored bits with the top one flipped.
    """
    if _is_unsigned16(header):
        return np.dtype(np.uint16), True
    if _is_plain_float(header):
        return np.dtype(_FLOAT_TYPES[header["BITPIX"]]), False
    if _is_plain_bytes(header):
        return np.dtype(np.uint8), False
    return None


def _read_pixels(fh, offset: int, shape: tuple, dtype: np.dtype, flip: bool) -> np.ndarray:
    """The big-endian pixels at ``offset`` of ``fh`` as a new native ``dtype`` array
    (the top bit flipped if ``flip``: :func:`_direct_type`).

    The file is read in chunks of :data:`~.fitswrite.CHUNK_BYTES` into one
    small buffer (it stays in the CPU caches), each converted into its place:
    the new array is written once (reading into it, then swapping it in
    place, went over it twice).
    """
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    stored = dtype.newbyteorder(">")
    step = max(1, CHUNK_BYTES // dtype.itemsize)
    buffer = np.empty(min(step, flat.size) * dtype.itemsize, np.uint8)
    fh.seek(offset)
    for start in range(0, flat.size, step):
        part = flat[start:start + step]
        chunk = buffer[:part.nbytes]
        if fh.readinto(chunk) != part.nbytes:
            raise OSError("the file ends inside an image")
        if flip:
            np.bitwise_xor(chunk.view(stored), dtype.type(1 << (8 * dtype.itemsize - 1)),
                           out=part)
        else:
            part[...] = chunk.view(stored)
    return out


def image_pixels(hdu, fh) -> np.ndarray | None:
    """The image of ``hdu`` (read from ``fh``, the open FITS file) as astropy gives it, native order.

    16-bit pseudo-unsigned pixels (raw GMOS, DQ planes, DRAGONS' masks) are
    read and made unsigned in one pass: adding BZERO = 32768 modulo 2**16
    flips the top bit, which is what astropy computes (by a copy and a
    subtraction, ten times slower).  Unscaled floating-point pixels (the SCI
    and VAR planes of processed files) and unscaled bytes (OBJMASK) are read
    straight into a native array (:func:`_read_pixels`).  Other images are
    astropy's.

    Parameters
    ----------
    hdu : astropy.io.fits.ImageHDU, PrimaryHDU or _ScannedImage
        An HDU of a file opened without memory mapping, or an image of a scanned file.
    fh : binary file object
        The same file, open for reading (a file or :class:`io.BytesIO`).

    Returns
    -------
    numpy.ndarray or None
        None when the HDU has no data.
    """
    shape = hdu.shape
    direct = _direct_type(hdu.header) if shape and all(shape) else None
    if direct is not None:
        return _read_pixels(fh, hdu._data_offset, shape, *direct)
    return None if hdu.data is None else _native(hdu.data)


class _ScannedImage:
    """An image extension of a scanned file whose pixels :func:`image_pixels` reads itself.

    Its ``header`` is the astropy header ``fits.open`` makes; ``shape`` and
    ``_data_offset`` are named as an astropy HDU's.
    """

    __slots__ = ("header", "shape", "_data_offset")

    def __init__(self, hdu: ScannedHDU):
        self.header = _astropy_header(hdu)
        self.shape = hdu.shape
        self._data_offset = hdu.data_offset


@contextlib.contextmanager
def _hdus(path):
    """The primary header of ``path`` and its extensions' HDUs, checked (:mod:`~.fitscheck`).

    A plain GMOS file (:func:`_scanned`) gives its primary header, a
    :class:`_ScannedImage` for each image :func:`image_pixels` reads itself,
    and astropy's HDU of each other extension (a table, another pixel type),
    read at its offset as ``fits.open`` reads it.  Any other file is opened
    by astropy (:func:`_open`), whose checks name its problem.
    """
    scanned = _scanned(path)
    if scanned is None:
        from astropy.io import fits
        hdulist = _open(path)
        try:
            check_sections(path, ((i, h.header) for i, h in enumerate(hdulist)
                                  if isinstance(h, fits.ImageHDU)))
            yield [hdulist[0].header, *hdulist[1:]]
        finally:
            hdulist.close()
        return
    check_sections(path, ((i, h.header) for i, h in enumerate(scanned)
                          if h.xtension == "IMAGE"))
    with contextlib.ExitStack() as stack:
        hdus, astropy_file = [_astropy_header(scanned[0])], None
        for hdu in scanned[1:]:
            if hdu.xtension == "IMAGE" and hdu.shape and all(hdu.shape) \
                    and _direct_type(hdu.header) is not None:
                hdus.append(_ScannedImage(hdu))
                continue
            from astropy.io import fits
            from astropy.io.fits.file import _File
            if astropy_file is None:
                astropy_file = stack.enter_context(_File(path, mode="readonly", memmap=False))
            astropy_file.seek(hdu.offset)
            hdus.append(fits.hdu.base._BaseHDU.readfrom(astropy_file, uint=fits.conf.enable_uint))
        yield hdus


def read_frame(path) -> Frame:
    """Read a raw or processed GMOS file into a :class:`Frame`.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    Frame

    Raises
    ------
    FileProblem
        Not a FITS file, truncated, not GMOS, or inconsistent planes.
    """
    with _hdus(path) as hdulist:
        phu = hdulist[0]
        if not is_gmos(phu):
            raise FileProblem(path, f"not a GMOS file (INSTRUME = {phu.get('INSTRUME')!r})")
        sci, planes, tables = _classify(hdulist)
        if not sci:
            raise FileProblem(path, "no image extensions")
        exts = []
        with open(path, "rb") as fh:
            for index, hdu in enumerate(sci, start=1):
                extver = hdu.header.get("EXTVER", index)
                data = image_pixels(hdu, fh)
                if data is None:
                    raise FileProblem(path, f"extension {index} has no data")
                # the HDU list is closed and dropped: its headers and arrays need no copy
                ext = Extension(data, hdu.header)
                for name, attr in (("VAR", "variance"), ("DQ", "mask"), ("OBJMASK", "objmask")):
                    plane = planes.get((name, extver))
                    if plane is not None:
                        arr = image_pixels(plane, fh)
                        if arr is None or arr.shape != ext.data.shape:
                            shown = None if arr is None else arr.shape
                            raise FileProblem(path, f"{name} extension {extver} has shape "
                                                    f"{shown}, SCI has {ext.data.shape}")
                        setattr(ext, attr, arr)
                cat = planes.get(("OBJCAT", extver))
                if cat is not None:
                    from astropy.table import Table  # the primitives that use sources need one
                    ext.objcat = Table(cat.data)
                exts.append(ext)
        frame_tables = {name: _frame_table(h) for name, h in tables.items() if _is_table(h)}
    return Frame(phu, exts, path, frame_tables)


