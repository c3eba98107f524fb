"""The ``Reduce`` class: the seed tutorial's Python API over the :class:`Reduction` engine.

::

    from gmoswidgets import logutils
    from gmoswidgets.reduce import Reduce

    logutils.config(file_name='gmos_data_reduction.log')
    reduce_bias = Reduce()
    reduce_bias.files.extend(list_of_biases)
    reduce_bias.runr()
    reduce_bias.output_filenames        # ['N20170613S0180_bias.fits']

``uparms`` takes the seed's list of ``("primitive:param", value)`` tuples or
a dict as current DRAGONS does; ``ucals`` (alias ``user_calibs``) takes
``{"processed_bias": FILE}`` or ``["processed_bias:FILE"]``.
"""
from __future__ import annotations

from collections.abc import Iterable

from .caldb.lookup import default_service
from .executor import get_executor
from .logutils import config, get_logger
from .reduction import Reduction

__all__ = ["Reduce"]


class Reduce:
    """Reduce a list of files with a recipe, as DRAGONS' ``Reduce`` class.

    Parameters
    ----------
    files : list of str, optional
        Input files; more can be added with ``files.extend``.
    recipename : str, optional
        Recipe name; default chosen from the first input's tags.
    uparms : list of tuple or dict, optional
        Parameter overrides ``[("stackFrames:scale", True)]`` or ``{"stackFrames:scale": True}``.
    ucals : dict or list, optional
        User calibrations, bypassing the calibration manager.
    suffix : str, optional
        Suffix of the final output instead of the recipe's.
    workdir : path-like, optional
        Output directory (default: the current directory).
    keep : {'last', 'all', 'spill'}
        Memory policy of the engine (see :class:`~gmoswidgets.reduction.Reduction`).
    calservice : CalibrationService, optional
        The calibration database to ask (default: the one set with
        :func:`gmoswidgets.caldb.set_calservice`, else the configured one).
    scheduler : str, Executor or distributed.Client, optional
        Where the per-frame work runs: ``'sync'``, ``'threads'``,
        ``'processes'`` or a Dask scheduler address (see
        :func:`~gmoswidgets.executor.get_executor`); default
        ``$GMOSWIDGETS_SCHEDULER``, else local threads.

    Attributes
    ----------
    output_filenames : list of str
        The final outputs written by :meth:`runr`.
    reduction : Reduction or None
        The engine of the last :meth:`runr`, to inspect its steps.
    """

    def __init__(self, files: Iterable | None = None, recipename: str | None = None,
                 uparms: list | dict | None = None, ucals: dict | list | None = None,
                 suffix: str | None = None, workdir=None, keep: str = "last", calservice=None,
                 scheduler=None):
        self.files = list(files or [])
        self.recipename = recipename
        self.uparms = uparms if uparms is not None else []
        self.ucals = ucals
        self.suffix = suffix
        self.workdir = workdir
        self.keep = keep
        self.calservice = calservice
        self.scheduler = scheduler
        self.output_filenames: list = []
        self.reduction: Reduction | None = None

    @property
    def user_calibs(self) -> dict | list | None:
        """Alias of :attr:`ucals`."""
        return self.ucals

    @user_calibs.setter
    def user_calibs(self, value: dict | list | None) -> None:
        self.ucals = value

    def runr(self) -> list:
        """Choose the recipe, run it to the end and write the outputs.

        Messages go to the screen; call :func:`gmoswidgets.logutils.config`
        first to also keep them in a log file.  Calibrations not given in
        :attr:`ucals` come from the service set with ``set_calservice``, else
        from the database of the configuration file (``~/.geminidr/rsys.cfg``).

        Returns
        -------
        list of str
            :attr:`output_filenames`.

        Raises
        ------
        GmosError
            Bad inputs or parameters, a missing calibration, or a failing step
            (the engine in :attr:`reduction` keeps the steps done before it).
        """
        self.output_filenames = []
        if not get_logger().handlers:  # as DRAGONS: messages go to the screen by default
            config()
        self.reduction = Reduction(list(self.files), recipe=self.recipename,
                                   uparms=self.uparms, user_cals=self.ucals, suffix=self.suffix,
                                   workdir=self.workdir, keep=self.keep,
                                   calservice=self.calservice or default_service())
        executor = get_executor(self.scheduler)
        self.reduction.executor = executor
        try:
            self.output_filenames = list(self.reduction.run_all())
        finally:
            if executor is not self.scheduler:  # made here from a name: release it
                executor.close()
        return self.output_filenames
