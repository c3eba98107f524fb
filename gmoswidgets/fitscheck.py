"""Checks on a file before its headers or pixels are used (called by :mod:`gmoswidgets.frame`).

Every check raises :class:`~gmoswidgets.errors.FileProblem` naming the file
and the problem, so the tools print one line and skip the file:

* :func:`check_regular_file`: only regular files are opened (a FIFO named
  ``*.fits`` would block the reader forever); an unreadable file
  (permissions) is a problem of that file, not a crash.
* :func:`check_cards`: every header card parses (a non-ASCII card or
  ``EXPTIME = NaN`` make astropy raise ``VerifyError`` on first access).
* :func:`check_sizes` and :func:`check_sections`: image sizes declared in
  the headers (``NAXISn``; ``DATASEC``, ``BIASSEC`` before pixels are read)
  fit a GMOS detector and their own image before any array is allocated
  from them.
"""
from __future__ import annotations

import math
import os
import re
import stat

from .errors import FileProblem
from .sections import Section

__all__ = ["check_regular_file", "check_cards", "check_sizes", "check_sections", "is_plain_card",
           "MAX_AXIS", "MAX_PIXELS"]


def _largest_detector() -> tuple:
    from .gmos.lookups import DETECTOR_TYPES
    width = max(d.nccds * d.ccd_width for d in DETECTOR_TYPES.values())
    height = max(d.ccd_height for d in DETECTOR_TYPES.values())
    return width, height


#: Longest image axis accepted, in pixels: four times the longest side of a
#: GMOS array (unbinned, mosaic gaps, dithers and overscan fit many times).
MAX_AXIS = 4 * max(_largest_detector())
#: Most pixels accepted in one image extension: four times a whole unbinned
#: GMOS array (a stack of dithered, resampled frames is far smaller).
MAX_PIXELS = 4 * _largest_detector()[0] * _largest_detector()[1]
#: A plain card value: string, integer, real, logical or none, then an optional comment.
_PLAIN_VALUE = re.compile(r"""\ *(?:
      '(?:[\ -&(-~]|'')*'                                 # string ('' is a quote)
    | [+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?          # integer or real
    | [TF]                                               # logical
    | )\ *(?:/[\ -~]*)?""", re.VERBOSE | re.ASCII)
_KEYWORD = re.compile(r"[A-Z0-9_ -]{8}", re.ASCII)
#: Header keywords that declare a region of their own extension's array.
_OWN_SECTIONS = ("DATASEC", "BIASSEC")


def check_regular_file(path) -> None:
    """Raise FileProblem unless ``path`` is an existing, readable regular file.

    Parameters
    ----------
    path : path-like

    Raises
    ------
    FileProblem
        Missing, a directory, a FIFO / device / socket, or not readable.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileProblem(path, "no such file") from None
    except OSError as exc:
        raise FileProblem(path, f"cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise FileProblem(path, "is a directory, not a FITS file")
    if not stat.S_ISREG(mode):
        raise FileProblem(path, "is not a regular file (a FIFO, device or socket); "
                                "only regular files are read")


def _where(index: int) -> str:
    return "the primary header" if index == 0 else f"the header of extension {index}"


def is_plain_card(image) -> bool:
    """True for an 80-character printable-ASCII card with a standard keyword and a plain value.

    Commentary cards (``COMMENT``, ``HISTORY``, blank) are plain when printable
    ASCII.  Anything else (``HIERARCH``, long strings, complex values, NaN,
    non-ASCII bytes) is left to astropy's parser.
    """
    if image is None or len(image) != 80 or not (image.isascii() and image.isprintable()):
        return False
    if not _KEYWORD.fullmatch(image[:8]):
        return False
    if image[8:10] == "= ":
        return _PLAIN_VALUE.fullmatch(image[10:]) is not None
    return True


def check_cards(path, hdulist) -> None:
    """Raise FileProblem if a header card of ``hdulist`` (an astropy HDUList) cannot be parsed.

    Raises
    ------
    FileProblem
        Naming the first unparsable card and the header it is in.
    """
    from astropy.io.fits.verify import VerifyError
    for index, hdu in enumerate(hdulist):
        for card in hdu.header.cards:
            if is_plain_card(getattr(card, "_image", None)):
                continue      # astropy's (slow) parse cannot fail on it
            try:
                card.value  # noqa: B018  (parsing is the check)
            except (VerifyError, ValueError, UnicodeError):
                image = getattr(card, "_image", None) or card.image   # as in the file
                text = image[10:].split("/")[0].strip()[:30]
                raise FileProblem(path, f"unreadable header card {card.keyword} in "
                                        f"{_where(index)} (value {text!r})") from None


def _declared_shape(header) -> tuple:
    naxis = int(header.get("NAXIS", 0) or 0)
    return tuple(int(header.get(f"NAXIS{i}", 0) or 0) for i in range(naxis, 0, -1))


def check_sizes(path, hdulist) -> None:
    """Raise FileProblem if an image's declared size is beyond any GMOS image.

    An image axis longer than :data:`MAX_AXIS` or an image of more than
    :data:`MAX_PIXELS` pixels is refused: a sparse file can declare any size
    and still match its declared length.

    Raises
    ------
    FileProblem
    """
    from astropy.io import fits
    for index, hdu in enumerate(hdulist):
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)):
            continue
        shape = _declared_shape(hdu.header)
        if shape and (max(shape) > MAX_AXIS or math.prod(shape) > MAX_PIXELS):
            size = " x ".join(str(n) for n in reversed(shape))
            raise FileProblem(path, f"extension {index} declares a {size} image, larger than "
                                    f"any GMOS image (at most {MAX_AXIS} pixels a side, "
                                    f"{MAX_PIXELS} pixels)")


def check_sections(path, images) -> None:
    """Raise FileProblem if a ``DATASEC`` or ``BIASSEC`` lies outside its own image.

    Called before pixels are read: arrays are later sized from these sections.

    Parameters
    ----------
    path : path-like
        The file, for the message.
    images : iterable of (int, header)
        The index and header (astropy's or :class:`~.fitsheader.HeaderValues`)
        of each image extension.

    Raises
    ------
    FileProblem
    """
    for index, header in images:
        shape = _declared_shape(header)
        if len(shape) != 2:
            continue
        for key in _OWN_SECTIONS:
            if key not in header:
                continue
            try:
                section = Section.from_string(header[key])
            except ValueError:
                continue  # malformed: reported by whatever needs the section
            if section.x2 > shape[1] or section.y2 > shape[0]:
                raise FileProblem(path, f"extension {index}: {key} {header[key]} lies outside "
                                        f"the {shape[1]} x {shape[0]} image")
