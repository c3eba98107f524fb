"""gmoswidgets: reduce Gemini GMOS imaging data, from Python, the shell and Jupyter widgets.

The kernel (this package minus :mod:`gmoswidgets.widgets`) never imports a
widget library; widget classes are loaded on first use.  Importing the package
itself imports nothing else: ``Frame`` and the readers come from
:mod:`gmoswidgets.frame` (numpy, astropy.io.fits) on first access, so that a
command that needs neither (``caldb --help``) does not pay for them.
"""
__version__ = "0.1.0"

#: Data-model names, imported from :mod:`gmoswidgets.frame` on first access.
_FRAME = ("Frame", "HeaderSet", "read_frame", "read_headers")
#: Widget classes, imported from :mod:`gmoswidgets.widgets` on first access.
_WIDGETS = ("ReductionApp", "FilePanel", "CalDBPanel", "StepPanel", "ImageView", "SkyView",
            "BatchPanel")
__all__ = [*_FRAME, "__version__", *_WIDGETS]


def __getattr__(name):
    if name in _FRAME:
        from . import frame
        return getattr(frame, name)
    if name in _WIDGETS:
        from . import widgets
        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
