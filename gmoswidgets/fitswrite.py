"""Writing a multi-extension FITS file: astropy's bytes, without astropy's cost per image.

astropy's ``HDUList.writeto`` builds an ``ImageHDU`` per plane (a header
copy and data checks), verifies every card of every extension, byte-swaps
each native array in place to big-endian, writes it and swaps it back, and
turns an unsigned 16-bit plane into two temporary arrays.  For a processed
2x2 calibration (36 planes, 65 MB) that is ~0.1 s, of which the file's bytes
are a third.

:func:`write_fits` writes the same bytes:

* the primary header and the table extensions are astropy's: they are written
  by ``HDUList.writeto`` (with ``output_verify='silentfix'``, as before) to
  memory and copied into the file in their places;
* each image extension's header is the one ``ImageHDU`` makes (the mandatory
  cards with astropy's comments, ``BSCALE``/``BZERO`` for unsigned
  integers, then the cards of the given header as ``Header.extend(strip=True,
  update=True, end=True)`` keeps them, each card's text as astropy writes it);
* the pixels go to the file through a small reused buffer, big-endian
  (unsigned integers offset by ``BZERO``, as astropy stores them), then
  zero-padded to a 2880-byte block.

:func:`writable` says which images it writes (the pixel types of :data:`BITPIX`,
headers without the cards astropy derives from the data);
:meth:`gmoswidgets.frame.Frame.write` leaves any other frame to astropy.  ``tests/test_fitswrite.py`` compares the bytes with astropy's on
raw-like, processed and stacked frames and on unusual headers.
"""
from __future__ import annotations

import functools
import io
import os
import re
import warnings
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .fitsheader import BLOCK

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = ["BITPIX", "writable", "write_fits"]

#: FITS ``BITPIX`` and ``BZERO`` (0: none) of each pixel type written here, as astropy's.
BITPIX = {np.dtype(np.uint8): (8, 0), np.dtype(np.int16): (16, 0), np.dtype(np.int32): (32, 0),
          np.dtype(np.int64): (64, 0), np.dtype(np.float32): (-32, 0),
          np.dtype(np.float64): (-64, 0), np.dtype(np.uint16): (16, 1 << 15),
          np.dtype(np.uint32): (32, 1 << 31)}
#: Bytes converted to big-endian per write (small enough to stay in the CPU caches).
CHUNK_BYTES = 1 << 20
#: Cards ``Header.strip`` removes (first occurrence), besides ``NAXISn`` and table columns.
_STRIPPED = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS",
             "BSCALE", "BZERO", "TFIELDS")
_COLUMN_KEYS = ("TFORM", "TSCAL", "TZERO", "TNULL", "TTYPE", "TUNIT", "TDISP", "TDIM", "THEAP",
                "TBCOL")
#: Keywords ``ImageHDU`` sets from its data (or checks against it).
_SET_FROM_DATA = re.compile(r"XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|BSCALE|BZERO|BLANK")


def writable(header, array) -> bool:
    """True if :func:`write_fits` writes the image ``array`` with ``header`` as astropy does.

    Not for other pixel types, an empty array, or a header with a card astropy
    sets from the data (``BITPIX``, ``NAXISn``, ``BZERO``, ``BLANK``, ...): astropy
    writes those.
    """
    return (isinstance(array, np.ndarray) and array.size > 0
            and array.dtype.newbyteorder("=") in BITPIX
            and not any(_SET_FROM_DATA.fullmatch(keyword) for keyword in header.keys()))


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def _kept_cards(header) -> list:
    """The cards of ``header`` (:func:`writable`: no ``NAXIS``) that
    ``Header.extend(header, strip=True, ...)`` appends."""
    tfields = header.get("TFIELDS", 0)
    dropped = {f"{name}{i + 1}" for name in _COLUMN_KEYS
               for i in range(tfields if isinstance(tfields, int) else 0)}
    dropped.update(_STRIPPED)
    cards = []
    for card in header.cards:
        if card.keyword in dropped:
            dropped.discard(card.keyword)          # only the first occurrence goes
            continue
        cards.append(card)
    return cards


def _image_header(header, array) -> bytes:
    """The header ``ImageHDU(array, header=header)`` writes, as bytes (``header``: :func:`writable`)."""
    bitpix, zero = BITPIX[array.dtype.newbyteorder("=")]
    first = [("XTENSION", "IMAGE", "Image extension"), ("BITPIX", bitpix, "array data type"),
             ("NAXIS", array.ndim, "number of array dimensions"),
             *((f"NAXIS{i}", n) for i, n in enumerate(reversed(array.shape), start=1)),
             ("PCOUNT", 0, "number of parameters"), ("GCOUNT", 1, "number of groups")]
    if zero:
        first += [("BSCALE", 1), ("BZERO", zero)]
    text = "".join(_card_text(*card) for card in first)
    text += "".join(str(card) for card in _kept_cards(header))
    text += "END".ljust(80)
    return (text + " " * (-len(text) % BLOCK)).encode("ascii")


@functools.lru_cache(maxsize=256, typed=True)
def _card_text(keyword: str, value, comment: str = "") -> str:
    """The 80 characters astropy writes for a mandatory card (the same few, file after file)."""
    from astropy.io import fits
    return str(fits.Card(keyword, value, comment))


def _write_pixels(fd: int, array: np.ndarray, buffer: np.ndarray) -> None:
    """Write ``array`` big-endian (offset by BZERO if unsigned), then pad its block."""
    _, zero = BITPIX[array.dtype.newbyteorder("=")]
    itemsize = array.dtype.itemsize
    stored = np.dtype(f">i{itemsize}") if zero else array.dtype.newbyteorder(">")
    rows = array.reshape(-1, array.shape[-1])
    step = max(1, CHUNK_BYTES // (itemsize * rows.shape[1]))
    if step * rows.shape[1] * itemsize > buffer.size:     # rows longer than the buffer
        buffer = np.empty(step * rows.shape[1] * itemsize, np.uint8)
    for start in range(0, rows.shape[0], step):
        part = rows[start:start + step]
        out = buffer[:part.size * itemsize].view(stored).reshape(part.shape)
        if zero:   # astropy's ``data - BZERO``, modulo 2**bits, stored as signed
            np.subtract(part, zero, out=out, casting="unsafe")
        else:
            out[...] = part
        _write_all(fd, out)
    _write_all(fd, _padding(array.nbytes))


def _write_all(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _astropy_parts(phu: fits.PrimaryHDU, tables: list) -> list:
    """The bytes astropy writes for ``phu`` and each of ``tables`` (in one ``HDUList``)."""
    from astropy.io import fits
    hdulist = fits.HDUList([phu, *tables])
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdulist.writeto(buffer, output_verify="silentfix")
    raw, parts, offset = buffer.getvalue(), [], 0
    for hdu in hdulist:
        size = len(hdu.header.tostring()) + hdu.size + len(_padding(hdu.size))
        parts.append(raw[offset:offset + size])
        offset += size
    if offset != len(raw):
        raise RuntimeError(f"astropy wrote {len(raw)} bytes for the primary header and tables, "
                           f"their headers add up to {offset}")
    return parts


def write_fits(path, phu: fits.PrimaryHDU, extensions: Iterable) -> None:
    """Write a FITS file: ``phu``, then ``extensions`` in order.

    Parameters
    ----------
    path : path-like
        The file (created or truncated).
    phu : astropy.io.fits.PrimaryHDU
        The primary HDU; its ``EXTEND`` is set as ``HDUList.writeto`` sets it.
    extensions : iterable
        ``(header, array)`` for an image extension (:func:`writable`) or a table HDU.
    """
    extensions = list(extensions)
    tables = [e for e in extensions if not isinstance(e, tuple)]
    if extensions:                                 # HDUList.update_extend
        if "EXTEND" not in phu.header:
            phu.header.set("EXTEND", True, after="NAXIS")
        elif not phu.header["EXTEND"]:
            phu.header["EXTEND"] = True
    parts = iter(_astropy_parts(phu, tables))
    buffer = np.empty(CHUNK_BYTES, np.uint8)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        _write_all(fd, next(parts))
        for extension in extensions:
            if isinstance(extension, tuple):
                header, array = extension
                _write_all(fd, _image_header(header, array))
                _write_pixels(fd, array, buffer)
            else:
                _write_all(fd, next(parts))
    finally:
        os.close(fd)
