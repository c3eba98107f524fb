"""Exceptions raised by gmoswidgets.

Every error a user can provoke with a bad file or bad input derives from
:class:`GmosError`, so front ends can show its message without a traceback.
"""
from __future__ import annotations

__all__ = ["GmosError", "FileProblem", "ExpressionError", "CalibrationNotFoundError",
           "ParameterError", "RecipeError"]


class GmosError(Exception):
    """Base class for every error whose message is meant for the user."""


class FileProblem(GmosError):
    """A file cannot be used: not FITS, truncated, another instrument, missing keyword."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # so that it crosses process pools and Dask workers intact
        return type(self), (self.path, self.problem)


class ExpressionError(GmosError):
    """A dataselect expression is not valid."""


class CalibrationNotFoundError(GmosError):
    """No processed calibration of the needed type matches the frame.

    Attributes
    ----------
    caltype : str or None
        The calibration type asked for, e.g. ``'processed_bias'``.
    filename : str or None
        The file that needed it.
    """

    def __init__(self, message: str, *, caltype: str | None = None,
                 filename: str | None = None):
        super().__init__(message)
        self.caltype = caltype
        self.filename = filename


class ParameterError(GmosError):
    """An unknown primitive or parameter, or a bad parameter value."""


class RecipeError(GmosError):
    """An unknown recipe, or one that does not apply to the inputs."""
