"""FITS section strings and their numpy equivalents.

This is the one place where a FITS section string (``[x1:x2,y1:y2]``,
1-based, inclusive, x first) is converted to or from numpy indices
(0-based, half-open, y first).  Every other module goes through
:class:`Section`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Section", "parse_section"]

_SECTION_RE = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


@dataclass(frozen=True)
class Section:
    """A rectangular region in 0-based, half-open numpy convention.

    Attributes
    ----------
    x1, x2 : int
        First column and one past the last column.
    y1, y2 : int
        First row and one past the last row.
    """

    x1: int
    x2: int
    y1: int
    y2: int

    @classmethod
    def from_string(cls, text: str) -> "Section":
        """Parse a FITS section string such as ``'[1:512,1:4224]'``.

        Parameters
        ----------
        text : str
            The section, 1-based and inclusive, x range first.

        Returns
        -------
        Section

        Raises
        ------
        ValueError
            If the string is not a valid 2-D section.
        """
        match = _SECTION_RE.match(str(text))
        if not match:
            raise ValueError(f"not a FITS section string: {text!r} (expected '[x1:x2,y1:y2]')")
        x1, x2, y1, y2 = (int(v) for v in match.groups())
        if x1 < 1 or y1 < 1 or x2 < x1 or y2 < y1:
            raise ValueError(f"invalid FITS section {text!r}: ranges must be 1-based and increasing")
        return cls(x1 - 1, x2, y1 - 1, y2)

    def to_string(self) -> str:
        """Return the FITS (1-based, inclusive) form, e.g. ``'[1:512,1:4224]'``."""
        return f"[{self.x1 + 1}:{self.x2},{self.y1 + 1}:{self.y2}]"

    def __str__(self) -> str:
        return self.to_string()

    @property
    def slices(self) -> tuple[slice, slice]:
        """The numpy ``(rows, columns)`` slices for this section."""
        return slice(self.y1, self.y2), slice(self.x1, self.x2)

    @property
    def shape(self) -> tuple[int, int]:
        """The numpy shape ``(ny, nx)`` of this section."""
        return self.y2 - self.y1, self.x2 - self.x1

    def binned(self, xbin: int, ybin: int) -> "Section":
        """Convert an unbinned (detector-pixel) section to binned pixels."""
        return Section(self.x1 // xbin, self.x2 // xbin, self.y1 // ybin, self.y2 // ybin)

    def unbinned(self, xbin: int, ybin: int) -> "Section":
        """Convert a binned section to unbinned (detector-pixel) units."""
        return Section(self.x1 * xbin, self.x2 * xbin, self.y1 * ybin, self.y2 * ybin)

    def shift(self, dx: int = 0, dy: int = 0) -> "Section":
        """Return the section moved by ``dx`` columns and ``dy`` rows."""
        return Section(self.x1 + dx, self.x2 + dx, self.y1 + dy, self.y2 + dy)

    def contains(self, other: "Section") -> bool:
        """True if ``other`` lies wholly inside this section."""
        return (self.x1 <= other.x1 and other.x2 <= self.x2
                and self.y1 <= other.y1 and other.y2 <= self.y2)


def parse_section(text: str) -> Section:
    """Parse a FITS section string; shorthand for :meth:`Section.from_string`."""
    return Section.from_string(text)
