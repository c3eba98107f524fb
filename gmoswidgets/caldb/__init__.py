"""Local calibration manager: an SQLite database of processed calibrations.

The seed tutorial's ``caldb`` (command line) and ``CalibrationService``
(Python) with the Gemini archive's association rules for GMOS imaging.
See :mod:`.config` for where the database lives, :mod:`.association` for
the rules, and :mod:`.usercal` for ``--user_cal`` overrides.

Examples
--------
>>> from gmoswidgets.caldb import CalibrationService, set_calservice
>>> caldb = CalibrationService()            # doctest: +SKIP
>>> caldb.init()                            # doctest: +SKIP
>>> caldb.add_cal("N20170613S0180_bias.fits")   # doctest: +SKIP
>>> set_calservice(caldb)                   # doctest: +SKIP
>>> get_calibration(frame, "processed_bias").path   # doctest: +SKIP
"""
from .association import RULES, CalEntry, CalMatch, CandidateReport
from .config import CONFIG_ENV, CalDBConfig, ConfigError, load_config
from .database import CalDBError
from .properties import CALTYPES, USER_CALTYPES, ObsProperties, properties_of
from .service import (AddResult, CalDBStatus, CalibrationService, explain, get_calibration,
                      get_calservice, set_calservice)
from .usercal import UserCalibrations

__all__ = ["CalibrationService", "set_calservice", "get_calservice", "get_calibration",
           "explain", "UserCalibrations", "CALTYPES", "USER_CALTYPES", "RULES", "CalMatch",
           "CandidateReport", "CalEntry", "AddResult", "CalDBStatus", "CalDBConfig",
           "ObsProperties", "properties_of", "load_config", "CONFIG_ENV", "ConfigError",
           "CalDBError"]
