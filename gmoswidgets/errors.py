"""Exceptions raised by gmoswidgets.

Every error a user can provoke with a bad file or bad input derives from
:class:`GmosError`, so front ends can show its message without a traceback.
"""

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


class ExpressionError(GmosError):
    """A dataselect expression is not valid."""


class CalibrationNotFoundError(GmosError):
    """No processed calibration of the needed type matches the frame."""


class ParameterError(GmosError):
    """An unknown primitive or parameter, or a bad parameter value."""


class RecipeError(GmosError):
    """An unknown recipe, or one that does not apply to the inputs."""
