"""File names in FITS headers and tables, which hold printable ASCII only.

A file or folder name beyond ASCII (``bïas0.fits``) cannot be written as a
header value (``ORIGNAME``, ``BIASIM``) or in the ``PROVENANCE`` table.
:func:`to_header_text` percent-encodes such a name as URLs do
(``b%C3%AFas0.fits``) and :func:`from_header_text` gives it back, so output
names made from ``ORIGNAME`` keep the original name.  ASCII names without
``%`` are unchanged.
"""
from __future__ import annotations

from urllib.parse import quote, unquote

__all__ = ["to_header_text", "from_header_text"]

#: Printable ASCII except '%' (the escape character) passes unchanged.
_SAFE = "".join(chr(c) for c in range(32, 127) if chr(c) != "%")


def to_header_text(name: str) -> str:
    """``name`` as printable ASCII, non-ASCII and control characters percent-encoded (UTF-8)."""
    return quote(str(name), safe=_SAFE)


def from_header_text(text: str) -> str:
    """The name encoded by :func:`to_header_text`."""
    return unquote(str(text))
