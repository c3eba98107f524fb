"""Command-line tools with DRAGONS' names and output: ``typewalk``, ``dataselect``, ``showd``.

Each module has ``main(argv=None) -> int`` (the console-script entry point);
they only call the kernel (:mod:`gmoswidgets.select`,
:mod:`gmoswidgets.gmos.tags`, :mod:`gmoswidgets.gmos.descriptors`).
"""
