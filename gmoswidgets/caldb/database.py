"""The calibration database: one SQLite file, safe for several processes.

The file is in WAL mode (readers never wait for a writer), every write is
one ``BEGIN IMMEDIATE`` transaction, retried with a jittered, growing pause
(1 to 50 ms) for up to :data:`BUSY_TIMEOUT` seconds while another process
holds the lock, so
the dashboard and a terminal can add and read at the same time.  Each
table row holds what association needs
(:class:`~gmoswidgets.caldb.properties.ObsProperties`), so a lookup never
opens a FITS file.

Every SQLite failure is turned into a :class:`CalDBError` whose message
says what to do (``caldb init``, ``caldb init -w``).
"""
from __future__ import annotations

import datetime as _dt
import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import GmosError
from .association import ORDER_SQL, RULES, CalEntry, order_params
from .properties import PROPERTY_FIELDS, ObsProperties

__all__ = ["CalDBError", "CalDatabase", "BUSY_TIMEOUT", "SCHEMA_VERSION"]

#: Seconds a connection waits for another process's lock before giving up.
BUSY_TIMEOUT = 60.0
#: SQLite's own wait for a lock, per attempt (statements retry until BUSY_TIMEOUT).
_LOCK_WAIT = 0.05
#: Shortest and longest pause between two attempts to get a lock (seconds).
_MIN_BACKOFF, _MAX_BACKOFF = 0.001, 0.05
#: Version of the table layout; a database with another version must be recreated.
SCHEMA_VERSION = 1

_SQL_TYPES = {"xbin": "INTEGER", "ybin": "INTEGER", "imaging": "INTEGER", "prepared": "INTEGER",
              "overscan_subtracted": "INTEGER", "overscan_trimmed": "INTEGER"}
_COLUMNS = ("filename", "path", "caltype", *PROPERTY_FIELDS, "ut_epoch", "ingest_time")
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM calibrations"
_UPSERT = (f"INSERT INTO calibrations ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)}) "
           "ON CONFLICT(filename) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "filename"))


def _schema() -> list:
    props = ",\n    ".join(f"{name} {_SQL_TYPES.get(name, 'TEXT')} NOT NULL"
                           for name in PROPERTY_FIELDS)
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS calibrations (
    id INTEGER PRIMARY KEY,
    filename TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    caltype TEXT NOT NULL,
    {props},
    ut_epoch REAL NOT NULL,
    ingest_time REAL NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS calibrations_lookup "
        "ON calibrations (caltype, instrument, xbin, ybin, ut_epoch)",
        f"INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}')",
    ]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """True for SQLite's 'database is locked' / busy errors (worth retrying)."""
    message = str(exc)
    return "locked" in message or "busy" in message


class CalDBError(GmosError):
    """The calibration database is missing, corrupt, busy, or an entry is not in it."""


def _to_row(entry: CalEntry) -> tuple:
    props = entry.props
    values = [getattr(props, name) for name in PROPERTY_FIELDS]
    values[PROPERTY_FIELDS.index("ut_datetime")] = props.ut_datetime.isoformat()
    return (entry.filename, str(entry.path), entry.caltype, *values, props.epoch,
            entry.ingest_time)


def _from_row(row) -> CalEntry:
    values = dict(zip(PROPERTY_FIELDS, row[3:3 + len(PROPERTY_FIELDS)]))
    values["ut_datetime"] = _dt.datetime.fromisoformat(values["ut_datetime"])
    for name in ("imaging", "prepared", "overscan_subtracted", "overscan_trimmed"):
        values[name] = bool(values[name])
    return CalEntry(row[0], Path(row[1]), row[2], ObsProperties(**values), row[-1])


class CalDatabase:
    """The SQLite calibration database at ``path``.

    Parameters
    ----------
    path : str or path-like
        The database file (``database_dir / cal_manager.db``).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._local = threading.local()

    # -- connections and errors ----------------------------------------------
    def _problem(self, exc: sqlite3.Error) -> CalDBError:
        message = str(exc)
        if isinstance(exc, sqlite3.OperationalError):
            if _is_busy(exc):
                return CalDBError(f"database {self.path} is busy (another program kept it locked "
                                  f"for {BUSY_TIMEOUT:.0f} s): try again")
            if "no such table" in message or "no such column" in message:
                return CalDBError(f"{self.path} is not a gmoswidgets calibration database; "
                                  f"recreate it with: caldb init -w")
            if "unable to open" in message or "readonly" in message:
                return CalDBError(f"cannot write the database {self.path} ({message}): "
                                  f"check the directory's permissions")
            if "malformed" not in message and "not a database" not in message:
                return CalDBError(f"database {self.path}: {message}")
        return CalDBError(f"database {self.path} is corrupt ({message}); "
                          f"recreate it with: caldb init -w")

    @contextmanager
    def _guard(self):
        try:
            yield
        except sqlite3.Error as exc:
            raise self._problem(exc) from None

    def _open(self, create: bool) -> sqlite3.Connection:
        uri = self.path.absolute().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        conn = sqlite3.connect(uri, uri=True, timeout=_LOCK_WAIT, isolation_level=None)
        # WAL + NORMAL: a commit does not wait for fsync; a crash can lose the last
        # additions, never corrupt the file.
        self._execute(conn, "PRAGMA synchronous = NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use; reopened after a fork)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if not self.path.is_file():
            raise CalDBError(f"no calibration database at {self.path}; create it with: caldb init")
        with self._guard():
            conn = self._open(create=False)
            try:
                row = self._execute(conn, "SELECT value FROM meta "
                                          "WHERE key = 'schema_version'").fetchone()
                if row is None or row[0] != str(SCHEMA_VERSION):
                    check = self._quick_check(conn)
                    raise CalDBError(
                        f"database {self.path} is corrupt ({check}); recreate it with: caldb init -w"
                        if check != "ok" else
                        f"{self.path} was made by another version of gmoswidgets; "
                        f"recreate it with: caldb init -w")
            except (sqlite3.Error, CalDBError):
                conn.close()
                raise
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @staticmethod
    def _execute(conn: sqlite3.Connection, sql: str, params=()) -> sqlite3.Cursor:
        """Execute, retrying with jittered exponential backoff while another process holds a lock.

        SQLite's own waits grow to 100 ms between attempts, which makes two
        busy writers crawl; this retries after a random pause that starts at
        a millisecond and doubles up to :data:`_MAX_BACKOFF` (full jitter),
        so that many waiting processes (``caldb add`` run 20 times in
        parallel on a loaded machine) neither hammer the file nor wait in
        step, until :data:`BUSY_TIMEOUT`.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT
        backoff = _MIN_BACKOFF
        while True:
            try:
                return conn.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(_MIN_BACKOFF, backoff))
            backoff = min(2 * backoff, _MAX_BACKOFF)

    @contextmanager
    def _transaction(self):
        conn = self._conn()
        with self._guard():
            self._execute(conn, "BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._execute(conn, "COMMIT")

    def _query(self, sql: str, params=()) -> list:
        conn = self._conn()
        with self._guard():
            return self._execute(conn, sql, params).fetchall()

    def close(self) -> None:
        """Close this thread's connection (it reopens on next use)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- lifecycle -------------------------------------------------------------
    @property
    def exists(self) -> bool:
        """True if the database file exists."""
        return self.path.is_file()

    def create(self, wipe: bool = False) -> bool:
        """Create the database (and its directory); with ``wipe``, delete it first.

        Returns
        -------
        bool
            True if a new database was created, False if a valid one was
            already there (it is kept as is).

        Raises
        ------
        CalDBError
            The existing file is corrupt or not a calibration database
            (without ``wipe``), or the directory is not writable.
        """
        if wipe:
            self.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        elif self.exists and self.path.stat().st_size > 0:
            self._conn()  # validates; raises a clear error if corrupt or foreign
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CalDBError(f"cannot create the database directory {self.path.parent}: "
                             f"{exc.strerror}") from None
        with self._guard():
            conn = self._open(create=True)
            try:
                self._execute(conn, "PRAGMA journal_mode = WAL")
                self._execute(conn, "BEGIN IMMEDIATE")
                for statement in _schema():
                    conn.execute(statement)
                conn.execute("COMMIT")
            finally:
                conn.close()
        return True

    def integrity(self) -> str:
        """Run SQLite's quick check: 'ok' when the file is sound, else the first problem."""
        conn = self._conn()
        with self._guard():
            return self._quick_check(conn)

    def _quick_check(self, conn: sqlite3.Connection) -> str:
        rows = self._execute(conn, "PRAGMA quick_check(1)").fetchall()
        return "; ".join(" ".join(str(r[0]).split()) for r in rows)

    # -- content -------------------------------------------------------------
    def counts(self) -> dict:
        """Number of calibrations of each type (types with none are left out)."""
        return dict(self._query("SELECT caltype, count(*) FROM calibrations GROUP BY caltype"))

    def upsert(self, entry: CalEntry) -> CalEntry | None:
        """Add ``entry``, or update the entry with the same file name.

        Returns
        -------
        CalEntry or None
            The entry it replaced, if any.
        """
        with self._transaction() as conn:
            old = conn.execute(f"{_SELECT} WHERE filename = ?", (entry.filename,)).fetchone()
            conn.execute(_UPSERT, _to_row(entry))
        return None if old is None else _from_row(old)

    def remove(self, filename: str) -> CalEntry | None:
        """Delete the entry of ``filename`` (never the file); return it, or None if absent."""
        with self._transaction() as conn:
            old = conn.execute(f"{_SELECT} WHERE filename = ?", (filename,)).fetchone()
            conn.execute("DELETE FROM calibrations WHERE filename = ?", (filename,))
        return None if old is None else _from_row(old)

    def entries(self, caltype: str | None = None) -> list:
        """All entries (or those of one type), by type, date and name."""
        where, params = ("", ()) if caltype is None else (" WHERE caltype = ?", (caltype,))
        rows = self._query(f"{_SELECT}{where} ORDER BY caltype, ut_epoch, filename", params)
        return [_from_row(row) for row in rows]

    def best(self, caltype: str, sci: ObsProperties) -> CalEntry | None:
        """The best calibration of ``caltype`` for ``sci`` (rules of :data:`RULES`), or None."""
        clauses, params = ["caltype = ?"], [caltype]
        for _, clause, values in _conditions(caltype, sci):
            clauses.append(f"({clause})")
            params.extend(values)
        sql = f"{_SELECT} WHERE {' AND '.join(clauses)} {ORDER_SQL} LIMIT 1"
        rows = self._query(sql, params + order_params(sci))
        return _from_row(rows[0]) if rows else None

    def rejections(self, caltype: str, sci: ObsProperties) -> tuple[int, dict]:
        """How many calibrations of ``caltype`` are stored, and how many each rule rejects.

        Returns
        -------
        total : int
        rejected : dict
            Rule name -> number of calibrations failing it (rules that reject
            none are left out).  One table scan, whatever the number of rules.
        """
        conditions = _conditions(caltype, sci)
        sums = "".join(f", sum(NOT ({clause}))" for _, clause, _ in conditions)
        params = [value for _, _, values in conditions for value in values]
        row = self._query(f"SELECT count(*){sums} FROM calibrations WHERE caltype = ?",
                          params + [caltype])[0]
        rejected = {name: n for (name, _, _), n in zip(conditions, row[1:]) if n}
        return row[0], rejected


def _conditions(caltype: str, sci: ObsProperties) -> list:
    """(rule name, SQL clause, parameters) of every rule of ``caltype`` that applies to ``sci``."""
    return [(rule.name, *rule.sql(sci)) for rule in RULES[caltype] if rule.applies(sci)]

