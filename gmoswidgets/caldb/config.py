"""Where the calibration database lives: the seed's ``rsys.cfg``.

The seed tutorial configures the local calibration manager with a file
``~/.geminidr/rsys.cfg``::

    [calibs]
    standalone = True
    database_dir = /path_to_my_data/gmosimg_tutorial/playground

Which configuration file is read, first match wins:

1. an explicit ``config_file`` argument (``caldb -c FILE``);
2. the environment variable :data:`CONFIG_ENV` (``GMOSWIDGETS_CONFIG``), so
   tests and the dashboard never touch the user's real home;
3. ``~/.geminidr/rsys.cfg``.

An explicit ``database_dir`` argument bypasses the file altogether.  A
tilde in ``database_dir`` is expanded; a relative path is taken from the
current directory, as DRAGONS does.
"""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import GmosError

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG_FILE", "DATABASE_NAME", "CalDBConfig", "ConfigError",
           "load_config"]

#: Environment variable naming the rsys.cfg file to read.
CONFIG_ENV = "GMOSWIDGETS_CONFIG"
#: The seed's configuration file.
DEFAULT_CONFIG_FILE = Path("~/.geminidr/rsys.cfg")
#: Name of the SQLite file inside ``database_dir`` (DRAGONS' name).
DATABASE_NAME = "cal_manager.db"

_SECTION = "calibs"


class ConfigError(GmosError):
    """The calibration-manager configuration is missing or malformed."""


@dataclass(frozen=True)
class CalDBConfig:
    """The resolved calibration-manager configuration.

    Attributes
    ----------
    database_dir : pathlib.Path
        Absolute directory holding the database.
    config_file : pathlib.Path or None
        The rsys.cfg file read, or None when ``database_dir`` was given directly.
    source : str
        How the configuration was found (argument, environment, default file).
    standalone : bool
        The ``standalone`` flag (only the local database is ever used).
    """

    database_dir: Path
    config_file: Path | None
    source: str
    standalone: bool = True

    @property
    def database_path(self) -> Path:
        """The SQLite file: ``database_dir / cal_manager.db``."""
        return self.database_dir / DATABASE_NAME


def _expand(path) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(str(path)))).absolute()


def _how_to(config_file: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"{problem}\nWrite this in {config_file}:\n\n"
        f"[{_SECTION}]\nstandalone = True\ndatabase_dir = /path/to/your/playground\n\n"
        f"(or point the environment variable {CONFIG_ENV} to another rsys.cfg)")


def _read(config_file: Path, source: str) -> CalDBConfig:
    if not config_file.is_file():
        raise _how_to(config_file, f"no calibration configuration file {config_file} ({source})")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config_file, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise _how_to(config_file, f"{config_file} is malformed: "
                                   f"{str(exc).splitlines()[0]}") from None
    if not parser.has_section(_SECTION):
        raise _how_to(config_file, f"{config_file} has no [{_SECTION}] section")
    directory = parser.get(_SECTION, "database_dir", fallback="").strip()
    if not directory:
        raise _how_to(config_file, f"{config_file} does not set database_dir in [{_SECTION}]")
    try:
        standalone = parser.getboolean(_SECTION, "standalone", fallback=True)
    except ValueError:
        raise _how_to(config_file, f"{config_file}: standalone must be True or False, not "
                                   f"{parser.get(_SECTION, 'standalone')!r}") from None
    return CalDBConfig(_expand(directory), config_file, source, standalone)


def load_config(config_file=None, database_dir=None) -> CalDBConfig:
    """Resolve the calibration-manager configuration.

    Parameters
    ----------
    config_file : str or path-like, optional
        An rsys.cfg to read instead of the environment's or the default one.
    database_dir : str or path-like, optional
        Use this directory directly; no configuration file is read.

    Returns
    -------
    CalDBConfig

    Raises
    ------
    ConfigError
        The configuration file is missing or malformed; the message shows
        the lines to write.
    """
    if database_dir is not None:
        return CalDBConfig(_expand(database_dir), None, "database_dir argument")
    if config_file is not None:
        return _read(_expand(config_file), "config_file argument")
    from_env = os.environ.get(CONFIG_ENV, "").strip()
    if from_env:
        return _read(_expand(from_env), f"from ${CONFIG_ENV}")
    return _read(_expand(DEFAULT_CONFIG_FILE), "default location")
