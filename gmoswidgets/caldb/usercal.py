"""User-supplied calibrations: ``reduce --user_cal processed_bias:FILE ...``.

A user calibration beats the database.  It is used even if it does not
match the frame, but each mismatched property (binning, ROI, filter ...)
becomes a warning in :attr:`CalMatch.warnings`.  Dates are not checked:
choosing an old calibration on purpose is the point of overriding.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import FileProblem, ParameterError
from ..gmos.tags import tags_of
from .association import RULES, CalMatch, run_checks
from .properties import USER_CALTYPES, caltype_of, properties_of

__all__ = ["UserCalibrations", "check_caltype"]


def check_caltype(caltype: str, valid=USER_CALTYPES) -> str:
    """Return ``caltype`` if it is one of ``valid``; else raise ParameterError listing them."""
    if caltype not in valid:
        raise ParameterError(f"unknown calibration type {caltype!r}; valid types are: "
                             + ", ".join(valid))
    return caltype


class UserCalibrations:
    """Calibration files chosen by the user, one per calibration type.

    Parameters
    ----------
    files : dict, optional
        ``{caltype: path}``; e.g. ``{"processed_bias": "N20170613S0180_bias.fits"}``.
        Relative paths are taken from the current directory now.

    Raises
    ------
    ParameterError
        An unknown calibration type.
    FileProblem
        A file that does not exist.
    """

    def __init__(self, files=None):
        self.files: dict[str, Path] = {}
        for caltype, path in (files or {}).items():
            check_caltype(caltype)
            path = Path(path).expanduser().absolute()
            if not path.is_file():
                raise FileProblem(path, f"no such file (given as the user {caltype})")
            self.files[caltype] = path

    @classmethod
    def parse(cls, specs) -> "UserCalibrations":
        """Build from ``--user_cal`` words: ``["processed_bias:FILE", "processed_flat:FILE"]``.

        Raises
        ------
        ParameterError
            A word that is not ``CALTYPE:FILE``, an unknown type, or a type given twice.
        FileProblem
            A file that does not exist.
        """
        files = {}
        for spec in specs:
            caltype, sep, path = str(spec).partition(":")
            caltype, path = caltype.strip(), path.strip()
            if not sep or not path:
                raise ParameterError(f"--user_cal {spec!r}: expected CALTYPE:FILE, "
                                     f"e.g. processed_bias:N20170613S0180_bias.fits")
            check_caltype(caltype)
            if caltype in files:
                raise ParameterError(f"--user_cal: {caltype} given twice")
            files[caltype] = path
        return cls(files)

    def __bool__(self) -> bool:
        return bool(self.files)

    def __contains__(self, caltype) -> bool:
        return caltype in self.files

    def __repr__(self) -> str:
        inner = " ".join(f"{c}:{p}" for c, p in self.files.items())
        return f"<UserCalibrations {inner}>"

    def get(self, frame, caltype: str) -> CalMatch | None:
        """The user's calibration of ``caltype`` for ``frame``, or None if none was given.

        Parameters
        ----------
        frame : Frame, HeaderSet, ObsProperties or path
            The frame being reduced.
        caltype : str
            E.g. ``"processed_bias"``.

        Returns
        -------
        CalMatch or None
            With ``source='user'``; ``warnings`` lists every property of the
            file that does not match the frame; ``missing`` is True if the
            file has vanished.

        Raises
        ------
        FileProblem
            The file is not a readable GMOS FITS file.
        """
        check_caltype(caltype)
        path = self.files.get(caltype)
        if path is None:
            return None
        label = f"user {caltype} {path.name}"
        if not path.is_file():
            return CalMatch(path, f"{label} is missing from disk: {path}", caltype, "user",
                            missing=True)
        from ..frame import read_headers   # astropy.io.fits: only when a file is read
        headers = read_headers(path)
        warnings = []
        actual = caltype_of(tags_of(headers))
        if actual != caltype:
            kind = f"a {actual}" if actual else "not a processed calibration"
            warnings.append(f"{label}: is {kind}, not a {caltype}")
        if caltype in RULES:
            cal = properties_of(headers, lenient=caltype == "processed_bpm")
            checks = run_checks(caltype, properties_of(frame), cal, temporal=False)
            warnings.extend(f"{label}: {detail}" for _, ok, detail in checks if not ok)
        return CalMatch(path, f"{label} (given by the user, overrides the database)", caltype,
                        "user", warnings=warnings)
