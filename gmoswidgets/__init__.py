"""gmoswidgets: reduce Gemini GMOS imaging data, from Python, the shell and Jupyter widgets.

The kernel (this package minus :mod:`gmoswidgets.widgets`) never imports a
widget library; widget classes are loaded on first use.
"""
__version__ = "0.1.0"

from .frame import Frame, HeaderSet, read_frame, read_headers  # noqa: E402

__all__ = ["Frame", "HeaderSet", "read_frame", "read_headers", "__version__"]

#: Widget classes, imported from :mod:`gmoswidgets.widgets` on first access.
_WIDGETS = ("ReductionApp", "FilePanel", "CalDBPanel", "StepPanel", "ImageView", "SkyView",
            "BatchPanel")
__all__ += list(_WIDGETS)


def __getattr__(name):
    if name in _WIDGETS:
        from . import widgets
        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
