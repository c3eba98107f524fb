"""Jupyter widget panels (ipywidgets, bqplot, ipyaladin) over the gmoswidgets kernel.

Each panel only calls the kernel and shows what it returns; previews are
computed by :mod:`gmoswidgets.widgets.preview`.
"""
from .imageview import ImageView
from .skyview import SkyView
from .filepanel import FilePanel
from .caldbpanel import CalDBPanel
from .steppanel import StepPanel
from .downloadpanel import DownloadPanel
from .archivepanel import ArchivePanel
from .app import ReductionApp
from .batchpanel import BatchPanel

__all__ = ["ArchivePanel", "BatchPanel", "CalDBPanel", "DownloadPanel", "FilePanel", "ImageView", "ReductionApp", "SkyView", "StepPanel"]
