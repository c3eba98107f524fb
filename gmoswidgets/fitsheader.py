"""Header keyword values of plain FITS files, read without astropy (``caldb add``, ``dataselect``).

Importing :mod:`astropy.io.fits` costs 0.2-0.3 s (it imports numpy and
astropy.units), more than a command that only looks at a few keywords of a
few files needs.  :func:`scan_headers` reads the 2880-byte header blocks
itself and returns a :class:`HeaderSet` (``phu``, ``ext_headers``,
``shapes``, ``path``: what tags, descriptors and the calibration properties
read) whose headers map each keyword to its value as astropy gives it.
:class:`HeaderSet` is also what :func:`gmoswidgets.frame.read_headers`
returns, with astropy headers.

It only reads files it can read exactly as astropy does: every card
printable ASCII with a plain value (string, integer, real or logical; the
test of :func:`gmoswidgets.fitscheck.is_plain_card`), a primary header and
image or table extensions whose declared sizes fill the file.  For anything
else (no value, ``CONTINUE``, ``HIERARCH``, a record-valued card, a truncated
or non-GMOS file, a size beyond any GMOS image) it returns None, and the caller reads the
file with :func:`gmoswidgets.frame.read_headers`, whose checks name the
problem.  ``tests/test_fitsheader.py`` compares both readers on every kind
of simulated file.  :func:`scan_hdus` (the same scan, every HDU with its
header's bytes and offsets) is how :func:`gmoswidgets.frame.read_frame`
reads a plain file without ``fits.open``.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fitscheck import MAX_AXIS, MAX_PIXELS, check_regular_file, is_plain_card

__all__ = ["BLOCK", "HeaderSet", "HeaderValues", "ScannedHDU", "scan_hdus", "scan_headers",
           "header_set", "header_values", "is_gmos", "is_science"]

#: Bytes of a FITS block (logical record): headers and data are padded to whole blocks.
BLOCK = 2880
_CARD = 80
#: Keywords whose cards are commentary (astropy gives their texts as a list).
_COMMENTARY = ("COMMENT", "HISTORY", "")
_VALUE = re.compile(r"""\ *(?:
      '(?P<string>(?:[\ -&(-~]|'')*)'
    | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?)
    | (?P<logical>[TF])
    )\ *(?:/.*)?""", re.VERBOSE | re.ASCII)
#: A string astropy reads as a record-valued keyword card ('AXIS.1: 1' makes DP1 into DP1.AXIS.1).
_RECORD_VALUED = re.compile(r"[a-zA-Z_][\w.]*: +[+-]?[0-9.]")
#: The extensions whose images are science data (as :func:`gmoswidgets.frame.read_headers`).
_SCIENCE_NAMES = ("", "SCI")


class HeaderValues(dict):
    """A header as ``keyword -> value`` (first card of each keyword), keywords in any case.

    Commentary keywords (``HISTORY``, ``COMMENT``, blank) map to the list of their texts.
    """

    def __getitem__(self, key):
        return super().__getitem__(key.upper())

    def __contains__(self, key) -> bool:
        return super().__contains__(key.upper())

    def get(self, key, default=None):
        return super().get(key.upper(), default)


@dataclass
class HeaderSet:
    """Headers of one file, read without pixels.

    :func:`scan_headers` gives values only (:class:`HeaderValues`);
    :func:`gmoswidgets.frame.read_headers` gives astropy headers.  Tags,
    descriptors and the calibration properties read either.

    Attributes
    ----------
    phu : astropy.io.fits.Header or HeaderValues
        The primary header.
    ext_headers : list of astropy.io.fits.Header or HeaderValues
        One header per science extension (amplifier, CCD or mosaic), in order.
    path : pathlib.Path or None
        The file the headers came from.
    shapes : list of tuple
        The numpy shape of each science extension (from NAXISn).
    """

    phu: Any
    ext_headers: list
    path: Path | None = None
    shapes: list = field(default_factory=list)

    @property
    def filename(self) -> str:
        """Base name of the file, or '' if unknown."""
        return self.path.name if self.path else ""


def _value(text: str):
    match = _VALUE.fullmatch(text)
    if match is None:
        return None, False
    if match["string"] is not None:
        if _RECORD_VALUED.match(match["string"]):
            return None, False
        return match["string"].replace("''", "'").rstrip(), True
    if match["logical"] is not None:
        return match["logical"] == "T", True
    number = match["number"]
    if any(c in number for c in ".EeDd"):
        return float(number.replace("D", "E").replace("d", "e")), True
    return int(number), True


def _parse_header(data: bytes) -> HeaderValues | None:
    """The values of one header's cards up to END; None if a card is not plain."""
    header = HeaderValues()
    for start in range(0, len(data), _CARD):
        image = data[start:start + _CARD].decode("ascii", "replace")
        if image.startswith("END") and not image[3:].strip():
            return header
        if not is_plain_card(image):
            return None
        keyword = image[:8].rstrip()
        if keyword in _COMMENTARY:
            header.setdefault(keyword, []).append(image[8:].rstrip())
            continue
        if image[8:10] != "= ":
            return None
        value, ok = _value(image[10:])
        if not ok:
            return None
        header.setdefault(keyword, value)
    return None


def _read_header(fh) -> tuple[bytes | None, int]:
    """The next header's blocks (END and padding included) and their length (0 at the end of
    the file, -1 if it ends inside a block)."""
    blocks = []
    while True:
        block = fh.read(BLOCK)
        if not block:
            return (None, 0) if blocks else (b"", 0)
        if len(block) < BLOCK:
            return None, -1
        blocks.append(block)
        for start in range(0, BLOCK, _CARD):
            card = block[start:start + _CARD]
            if card.startswith(b"END") and not card[3:].strip():
                return b"".join(blocks), BLOCK * len(blocks)


def _shape(header: HeaderValues) -> tuple | None:
    naxis = header.get("NAXIS")
    if not isinstance(naxis, int) or isinstance(naxis, bool) or not 0 <= naxis <= 999:
        return None
    axes = [header.get(f"NAXIS{i}") for i in range(naxis, 0, -1)]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in axes):
        return None
    return tuple(axes)


def _data_bytes(header: HeaderValues, shape: tuple) -> int | None:
    bitpix, pcount, gcount = (header.get(k, d) for k, d in (("BITPIX", None), ("PCOUNT", 0),
                                                              ("GCOUNT", 1)))
    if bitpix not in (8, 16, 32, 64, -32, -64) or not isinstance(pcount, int) \
            or not isinstance(gcount, int):
        return None
    if not shape:
        return 0
    size = abs(bitpix) // 8 * gcount * (pcount + math.prod(shape))
    return -(-size // BLOCK) * BLOCK


@dataclass(frozen=True)
class ScannedHDU:
    """One HDU of a file read by :func:`scan_hdus`.

    Attributes
    ----------
    header : HeaderValues
        Its header's values.
    text : bytes
        Its header as in the file: whole blocks, ``END`` and padding included.
    offset : int
        Where its header starts in the file.
    data_offset : int
        Where its data start.
    shape : tuple
        The numpy shape its ``NAXISn`` declare (``()`` for none).
    """

    header: HeaderValues
    text: bytes
    offset: int
    data_offset: int
    shape: tuple

    @property
    def xtension(self) -> str | None:
        """``XTENSION`` (None for the primary HDU)."""
        return self.header.get("XTENSION")


def scan_hdus(path) -> list[ScannedHDU] | None:
    """Every HDU of a plain FITS file, or None if it must be read by astropy.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    list of ScannedHDU or None
        None when the file is not plain (see the module's description; any
        instrument): astropy reads it, or names its problem.

    Raises
    ------
    FileProblem
        Missing, a directory, not a regular file or not readable.
    """
    check_regular_file(path)
    hdus = []
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            if fh.read(30)[:9] != b"SIMPLE  =":
                return None
            fh.seek(0)
            offset = 0
            while offset < size:
                text, length = _read_header(fh)
                header = _parse_header(text) if text else None
                shape = _shape(header) if header is not None else None
                data = _data_bytes(header, shape) if shape is not None else None
                if data is None or length <= 0 or offset + length + data > size:
                    return None
                first, xtension = not hdus, header.get("XTENSION")
                if first != (xtension is None) or (xtension not in (None, "IMAGE")
                                                   and xtension not in ("BINTABLE", "TABLE")):
                    return None
                if xtension in (None, "IMAGE") and shape and \
                        (max(shape) > MAX_AXIS or math.prod(shape) > MAX_PIXELS):
                    return None
                hdus.append(ScannedHDU(header, text, offset, offset + length, shape))
                offset += length + data
                fh.seek(offset)
    except OSError:
        return None
    if not hdus or hdus[0].header.get("SIMPLE") is not True or "GROUPS" in hdus[0].header \
            or any("ZIMAGE" in h.header for h in hdus):  # random groups, tile-compressed images
        return None
    return hdus


def is_gmos(phu) -> bool:
    """True if the primary header ``phu`` (any mapping) names a GMOS instrument."""
    return str(phu.get("INSTRUME", "")).strip().upper().startswith("GMOS")


def is_science(hdu) -> bool:
    """True if the extension ``hdu`` (:class:`ScannedHDU`) is a science image
    (as :func:`gmoswidgets.frame.read_headers` selects them)."""
    return hdu.xtension == "IMAGE" \
        and str(hdu.header.get("EXTNAME", "")).strip().upper() in _SCIENCE_NAMES


def scan_headers(path) -> HeaderSet | None:
    """The headers of a plain GMOS FITS file, or None if it must be read by astropy.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    HeaderSet or None
        Its headers are :class:`HeaderValues`; None when the file is not plain (see the module's description):
        :func:`gmoswidgets.frame.read_headers` reads it, or names its problem.

    Raises
    ------
    FileProblem
        Missing, a directory, not a regular file or not readable.
    """
    hdus = scan_hdus(path)
    if hdus is None or not is_gmos(hdus[0].header):
        return None
    return header_set(hdus, path)


def header_set(hdus: list[ScannedHDU], path, *, header=None) -> HeaderSet | None:
    """The :class:`HeaderSet` of a scanned file: its primary and science headers and shapes.

    Parameters
    ----------
    hdus : list of ScannedHDU
        What :func:`scan_hdus` returned.
    path : str or path-like
    header : callable, optional
        Makes each header kept from its :class:`ScannedHDU` (default: its
        :class:`HeaderValues`).

    Returns
    -------
    HeaderSet or None
        None when the file has no science extension.
    """
    make = header or (lambda hdu: hdu.header)
    science = [h for h in hdus[1:] if is_science(h)]
    if not science:
        return None
    return HeaderSet(make(hdus[0]), [make(h) for h in science], Path(path),
                     [(h.header.get("NAXIS2", 0), h.header.get("NAXIS1", 0)) for h in science])


def header_values(path):
    """The headers of ``path``: :func:`scan_headers`, else :func:`gmoswidgets.frame.read_headers`.

    For code that only reads keyword values (tags, descriptors, calibration
    properties).

    Raises
    ------
    FileProblem
        As :func:`gmoswidgets.frame.read_headers`.
    """
    scanned = scan_headers(path)
    if scanned is not None:
        return scanned
    from .frame import read_headers
    return read_headers(path)
