"""A local fake of the Gemini Observatory Archive on 127.0.0.1, faithful to its documented behaviour.

Follows ``shared/reference/gemini-archive-api.md`` (§5, the fidelity
checklist) for the endpoints gmoswidgets uses:

* ``/jsonsummary/<sel>[?orderby=]`` and ``/jsonfilelist/<sel>``: the token
  classification of §1.2 (unknown tokens silently ignored and recorded in
  :attr:`FakeArchive.unrecognised`, last token wins, most specific ID wins,
  bare dates UTC, ``-`` and ``--`` ranges), canonical forced for jsonsummary
  only, open/closed limits 500/2000, order by filename then ut_datetime,
  ``results_truncated`` on the last row of *every* non-empty open
  jsonsummary, no pagination; rows with the archive's keys in its order;
  ``application/json``, indent 4, streamed (chunked, no Content-Length).
* ``/jsoncalmgr/[<caltype>/]<closed sel>``: ``text/plain`` (as the real one),
  406 for an open selection; GMOS imaging bias (±90 d, 50) and twilight flat
  (±180 d, 20) matching, best first; ``md5`` of the cal is its ``file_md5``
  (of the .bz2), the dataset ``md5`` the science ``data_md5``; ``url`` on the
  request's host **without the port**, as the real server writes it.
* ``/file/<name>``: ``.bz2`` toggling, on-the-fly decompression with
  Content-Length ``data_size``, ``application/fits``, Content-Disposition, no
  Range support, 404 with an empty ``text/plain`` body, 403 HTML page for a
  proprietary file unless the session cookie is sent.
* Unknown routes: 404 HTML; a client without a User-Agent: 403 ``text/plain``
  (the archive's robot defence).  Every response has ``Cache-Control: no-cache``
  and ``Expired: -1``.

The files are the simulated tutorial dataset, bzip2-compressed as the
archive stores them.  The fake reads their headers with astropy alone (no
gmoswidgets code).  The server thread stops by itself after ``lifetime``
seconds or ``max_requests`` requests.  The fixtures ``archive_store`` and
``fake_archive`` are made available to every test by ``tests/conftest.py``.
"""
from __future__ import annotations

import bz2
import datetime as dt
import hashlib
import http.server
import json
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from astropy.io import fits

SESSION = "fake-session-cookie-value"
OBSTYPES = "DARK ARC FLAT BIAS OBJECT PINHOLE RONCHI CAL FRINGE MASK STANDARD SLITILLUM BPM".split()
OBSCLASSES = "dayCal partnerCal acqCal acq science progCal nightCal".split()
CALTYPES = ("bias processed_bias dark processed_dark processed_bpm flat processed_flat arc "
            "processed_arc pinhole processed_pinhole processed_fringe ronchi_mask lampoff_flat "
            "qh_flat domeflat lampoff_domeflat mask slitillum processed_slitillum standard "
            "processed_standard telluric processed_telluric polarization_standard "
            "astrometric_standard polarization_flat specphot photometric_standard "
            "processed_slitflat processed_slit").split()
INSTRUMENTS = {"GMOS-N": "GMOS-N", "GMOS-S": "GMOS-S", "GMOS": "GMOS", "F2": "F2",
               "GNIRS": "GNIRS", "NIRI": "NIRI", "NIFS": "NIFS", "GSAOI": "GSAOI", "GHOST": "GHOST"}
QA_WORDS = {"Pass", "Usable", "Fail", "CHECK", "UndefinedQA", "Win", "Lucky", "NotFail", "AnyQA"}
REDUCTIONS = ("RAW PREPARED PROCESSED_FLAT PROCESSED_BIAS PROCESSED_FRINGE PROCESSED_ARC "
              "PROCESSED_DARK PROCESSED_SCIENCE PROCESSED_BPM").split()
PROGRAM = re.compile(r"^G[NS]-(\d{4}[AB]-(Q|C|SV|QS|DD|LP|FT|DS|CAL|ENG)-\d+|(CAL|ENG)\d{8})$")
OBSID = re.compile(PROGRAM.pattern[:-1] + r"-\d+$")
DATALABEL = re.compile(OBSID.pattern[:-1] + r"-\d+(-[A-Za-z][A-Za-z0-9-]*)?$")
FILENAME = re.compile(r"^([NS]\d{8}S\d{4}[A-Za-z0-9_]*)(\.fits)?(\.bz2)?$")
DATE = r"(\d{8}|\d{4}-\d{2}-\d{2})"
CLOSING = ("date", "daterange", "program_id", "observation_id", "data_label", "filename",
           "filepre")
#: The order of the keys of a jsonsummary row (jsonfilelist: the first 16).
KEYS = ("name filename path compressed file_size data_size file_md5 data_md5 lastmod mdready "
        "entrytime present canonical size md5 pending_ingest program_id engineering "
        "science_verification processing calibration_program observation_id data_label "
        "telescope instrument ut_datetime local_time observation_type observation_class object "
        "ra dec azimuth elevation cass_rotator_pa airmass filter_name exposure_time disperser "
        "camera central_wavelength wavelength_band focal_plane_mask detector_binning "
        "detector_gain_setting detector_roi_setting detector_readspeed_setting "
        "detector_welldepth_setting detector_readmode_setting spectroscopy mode adaptive_optics "
        "laser_guide_star wavefront_sensor gcal_lamp raw_iq raw_cc raw_wv raw_bg requested_iq "
        "requested_cc requested_wv requested_bg qa_state release reduction types "
        "phot_standard").split()


def _parse_date(text: str) -> dt.date:
    text = text.replace("-", "") if len(text) == 10 else text
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def parse_selection(tokens) -> tuple:
    """The archive's token classification (§1.2): (selection dict, unrecognised tokens)."""
    sel, unknown, ids = {}, [], {}
    for token in tokens:
        low = token.lower()
        match = FILENAME.match(token)
        if low.replace("-", "").replace("_", "") in ("gemininorth", "geminisouth"):
            sel["telescope"] = "Gemini-North" if "north" in low else "Gemini-South"
        elif match and "=" not in token:
            sel["filename"] = match.group(1) + ".fits"
        elif token in OBSTYPES:
            sel["observation_type"] = token
        elif token in OBSCLASSES:
            sel["observation_class"] = token
        elif token in CALTYPES:
            sel["caltype"] = token
        elif token in ("Raw", "Quick-Look", "Science-Quality"):
            sel["processing"] = token
        elif token in REDUCTIONS:
            sel["reduction"] = token
        elif re.fullmatch(r"[1248]x[1248]", token):
            sel["binning"] = token
        elif token.upper() in INSTRUMENTS:
            sel["inst"] = INSTRUMENTS[token.upper()]
        elif "=" in token:
            key, value = token.split("=", 1)
            value = value.replace("=slash=", "/")
            key = {"Filter": "filter", "Object": "object", "progid": "program_id",
                   "obsid": "observation_id", "datalabel": "data_label"}.get(key, key)
            if key in ("program_id", "observation_id", "data_label"):
                ids[key] = value
            else:
                sel[key] = value
        elif token in ("canonical", "Canonical"):
            sel["canonical"] = True
        elif token in ("notcanonical", "NotCanonical"):
            sel["canonical"] = False
        elif token in ("present", "Present"):
            sel["present"] = True
        elif token in ("notengineering", "engineering", "includeengineering"):
            sel["engineering"] = {"notengineering": False, "engineering": True}.get(token)
        elif token in ("imaging", "spectroscopy"):
            sel["spectroscopy"] = token == "spectroscopy"
        elif token in QA_WORDS:
            sel["qa_state"] = token
        elif DATALABEL.match(token):
            ids["data_label"] = token
        elif OBSID.match(token):
            ids["observation_id"] = token
        elif PROGRAM.match(token):
            ids["program_id"] = token
        elif low in ("twilight", "nottwilight"):
            sel["twilight"] = low == "twilight"
        elif re.fullmatch(DATE, token):
            sel["date"] = _parse_date(token)
        elif re.fullmatch(rf"{DATE}--?{DATE}", token):
            first, second = re.findall(DATE, token)
            sel["daterange"] = tuple(sorted((_parse_date(first), _parse_date(second))))
        else:
            unknown.append(token)
    for key in ("data_label", "observation_id", "program_id"):   # the most specific ID wins
        if key in ids:
            sel[key] = ids[key]
            break
    return sel, unknown


def is_open(sel: dict) -> bool:
    return not any(key in sel for key in CLOSING)


def _like(pattern: str, value) -> bool:
    if value is None:
        return False
    regex = "".join(".*" if c in "*%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, str(value), re.I) is not None


def _qa_ok(word: str, state: str) -> bool:
    return {"NotFail": state != "Fail", "AnyQA": True, "Win": state in ("Pass", "Usable"),
            "Lucky": state in ("Pass", "Undefined"), "UndefinedQA": state == "Undefined"}.get(
                word, state == word)


def matches(row: dict, sel: dict) -> bool:
    """Does a jsonsummary row fall in a selection (§1.3)?"""
    when = dt.datetime.fromisoformat(row["ut_datetime"]).date() if row["ut_datetime"] else None
    checks = {
        "telescope": lambda v: row["telescope"] == v,
        "filename": lambda v: row["name"] == v,
        "observation_type": lambda v: row["observation_type"] == v,
        "observation_class": lambda v: row["observation_class"] == v,
        "reduction": lambda v: row["reduction"] == v,
        "processing": lambda v: row["processing"] == v,
        "binning": lambda v: row["detector_binning"] == v,
        "inst": lambda v: row["instrument"].startswith(v) if v == "GMOS" else row["instrument"] == v,
        "filter": lambda v: row["filter_name"] == v,
        "object": lambda v: _like(v, row["object"]),
        "canonical": lambda v: row["canonical"] == v,
        "present": lambda v: row["present"] == v,
        "engineering": lambda v: v is None or row["engineering"] == v,
        "spectroscopy": lambda v: row["spectroscopy"] == v,
        "qa_state": lambda v: _qa_ok(v, row["qa_state"]),
        "program_id": lambda v: row["program_id"] == v,
        "observation_id": lambda v: row["observation_id"] == v,
        "data_label": lambda v: row["data_label"] == v,
        "twilight": lambda v: (row["object"] == "Twilight") == v,
        "date": lambda v: when == v,
        "daterange": lambda v: when is not None and v[0] <= when <= v[1],
    }
    return all(checks[key](value) for key, value in sel.items() if key in checks)


def _pretty_filter(phu) -> str:
    names = [str(phu.get(k, "")).strip() for k in ("FILTER1", "FILTER2")]
    real = [n for n in names if n and not n.lower().startswith("open")]
    return re.sub(r"_G\d{4}$", "", real[0]) if real else "open"


def _percentile(text) -> int | None:
    match = re.match(r"(\d+)", str(text or ""))
    return int(match.group(1)) if match else (100 if str(text).strip() == "Any" else None)


def summary_row(path: Path, stored: bytes, data: bytes, *, release: str | None = None) -> dict:
    """A jsonsummary row for a raw GMOS file, from its headers (astropy only)."""
    with fits.open(path) as hdul:
        phu, ext = hdul[0].header, hdul[1].header
    name = path.name
    date_obs, time_obs = phu["DATE-OBS"], phu["TIME-OBS"]
    ut = dt.datetime.fromisoformat(f"{date_obs}T{time_obs}")
    local = ut - dt.timedelta(hours=10)
    xbin, ybin = str(ext["CCDSUM"]).split()
    program = phu["GEMPRGID"]
    obstype, obj = phu["OBSTYPE"], phu["OBJECT"]
    tags = {"GEMINI", "NORTH" if "North" in phu["OBSERVAT"] else "SOUTH", "GMOS", "RAW",
            "UNPREPARED"}
    # DRAGONS' tracking tags: an AZEL frame is a non-sidereal AZEL target; airmass 1 is zenith
    tags |= ({"AZEL_TARGET", "NON_SIDEREAL"} if str(phu.get("FRAME")).startswith("AZEL")
             else {"SIDEREAL"})
    tags |= {"AT_ZENITH"} if float(phu["AIRMASS"]) == 1.0 else set()
    tags |= ({"BIAS", "CAL"} if obstype == "BIAS" else {"IMAGE"})
    tags |= {"FLAT", "TWILIGHT", "CAL"} if obj == "Twilight" else set()
    lastmod = f"{date_obs} 12:00:00.251233+00:00"
    full = int(phu["DETRO1XS"]) * int(xbin) >= 6144 and int(phu["DETRO1YS"]) * int(ybin) >= 4224
    row = {
        "name": name, "filename": name + ".bz2", "path": "", "compressed": True,
        "file_size": len(stored), "data_size": len(data),
        "file_md5": hashlib.md5(stored).hexdigest(), "data_md5": hashlib.md5(data).hexdigest(),
        "lastmod": lastmod, "mdready": True, "entrytime": lastmod, "present": True,
        "canonical": True, "size": len(stored), "md5": hashlib.md5(stored).hexdigest(),
        "pending_ingest": False, "program_id": program, "engineering": False,
        "science_verification": "-SV-" in program, "processing": "Raw",
        "calibration_program": "CAL" in program, "observation_id": phu["OBSID"],
        "data_label": phu["DATALAB"], "telescope": phu["OBSERVAT"], "instrument": phu["INSTRUME"],
        "ut_datetime": ut.isoformat(sep=" "), "local_time": local.time().isoformat(),
        "observation_type": obstype, "observation_class": phu["OBSCLASS"], "object": obj,
        "ra": float(phu["RA"]), "dec": float(phu["DEC"]), "azimuth": float(phu["AZIMUTH"]),
        "elevation": float(phu["ELEVATIO"]), "cass_rotator_pa": float(phu["PA"]),
        "airmass": float(phu["AIRMASS"]), "filter_name": _pretty_filter(phu),
        "exposure_time": float(phu["EXPTIME"]), "disperser": "MIRROR", "camera": phu["INSTRUME"],
        "central_wavelength": None, "wavelength_band": _pretty_filter(phu),
        "focal_plane_mask": "Imaging", "detector_binning": f"{xbin}x{ybin}",
        "detector_gain_setting": "low" if float(ext["GAIN"]) < 3 else "high",
        "detector_roi_setting": "Full Frame" if full else "Custom",
        "detector_readspeed_setting": "slow" if int(phu["AMPINTEG"]) > 8000 else "fast",
        "detector_welldepth_setting": None, "detector_readmode_setting": "Classic",
        "spectroscopy": False, "mode": "imaging", "adaptive_optics": False,
        "laser_guide_star": False, "wavefront_sensor": "OIWFS", "gcal_lamp": None,
        "raw_iq": _percentile(phu.get("RAWIQ")), "raw_cc": _percentile(phu.get("RAWCC")),
        "raw_wv": _percentile(phu.get("RAWWV")), "raw_bg": _percentile(phu.get("RAWBG")),
        "requested_iq": None, "requested_cc": None, "requested_wv": None, "requested_bg": None,
        "qa_state": {"USABLE": "Usable", "BAD": "Fail", "PASS": "Pass"}.get(
            str(phu.get("RAWGEMQA", "")).strip(), "Undefined"),
        "release": release or date_obs, "reduction": "RAW", "types": repr(tags),
        "phot_standard": None,
    }
    assert tuple(row) == tuple(KEYS)
    return row


class ArchiveStore:
    """The archive's holdings: stored (.bz2) bytes and summary rows, built once per session.

    Parameters
    ----------
    directory : path-like
        Raw FITS files.
    names : iterable of str, optional
        Only these files (default: all).
    proprietary : iterable of str
        Files still proprietary (release date in the future).

    The first file also has an older, superseded row (not canonical, not
    present), as the archive keeps: jsonfilelist without ``/canonical`` lists it.
    """

    def __init__(self, directory, *, names=None, proprietary=()):
        paths = sorted(Path(directory).glob("*.fits"))
        if names is not None:
            paths = [p for p in paths if p.name in set(names)]
        with ThreadPoolExecutor(2) as pool:      # bz2 releases the GIL
            stored = list(pool.map(lambda p: bz2.compress(p.read_bytes(), 9), paths))
        self.files, self.rows = {}, []
        for path, payload in zip(paths, stored):
            release = "2099-01-01" if path.name in proprietary else None
            self.rows.append(summary_row(path, payload, path.read_bytes(), release=release))
            self.files[path.name + ".bz2"] = payload
        if self.rows:       # a superseded version of the first file: neither canonical nor present
            old = dict(self.rows[0], canonical=False, present=False, file_md5="0" * 32,
                       md5="0" * 32, lastmod="2017-01-01 00:00:00+00:00")
            self.rows.insert(0, old)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    archive: "FakeArchive"

    def log_message(self, *args):
        pass

    def _headers(self, status: int, ctype: str, length: int | None, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Expired", "-1")
        for key, value in extra:
            self.send_header(key, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, ctype: str, body: bytes, *, stream: bool = False, extra=()):
        self._headers(status, ctype, None if stream else len(body), extra)
        if not stream:
            self.wfile.write(body)
            return
        for start in range(0, len(body), 8192):
            piece = body[start:start + 8192]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _html(self, status: int, title: str):
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        self._send(status, "text/html; charset=UTF-8", page.encode())

    def do_GET(self):
        archive = self.archive
        archive.requests.append(self.path)
        if not self.headers.get("User-Agent", "").strip():   # the robot defence (§3.5)
            self._send(403, "text/plain", b"Login Required: this client is not allowed\n")
            return
        split = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in split.path.split("/") if p]
        if not parts:
            self._send(302, "text/plain", b"", extra=[("Location", "/searchform")])
            return
        route, tokens = parts[0], parts[1:]
        handler = {"jsonsummary": self._summary, "jsonfilelist": self._summary,
                   "jsoncalmgr": self._calmgr, "file": self._file}.get(route)
        if handler is None:
            self._html(404, "404 Not Found")
            return
        handler(route, tokens, urllib.parse.parse_qs(split.query))

    def _authorised(self) -> bool:
        return f"gemini_archive_session={SESSION}" in (self.headers.get("Cookie") or "")

    def _summary(self, route, tokens, query):
        archive = self.archive
        sel, unknown = parse_selection(tokens)
        archive.unrecognised.extend(unknown)
        if route == "jsonsummary":
            sel.setdefault("canonical", True)
        rows = [r for r in archive.rows if matches(r, sel)]
        order = (query.get("orderby") or ["filename_asc"])[0]
        key = "ut_datetime" if order.startswith("ut_datetime") else "name"
        rows.sort(key=lambda r: r[key] or "", reverse=order.endswith("_desc"))
        rows = rows[:archive.open_limit if is_open(sel) else archive.closed_limit]
        authorised = self._authorised()
        out = []
        for row in rows:
            row = dict(row) if route == "jsonsummary" else {k: row[k] for k in KEYS[:16]}
            if route == "jsonsummary" and row["release"] > "2090" and not authorised:
                for hidden in ("ra", "dec", "azimuth", "elevation", "airmass", "object",
                               "cass_rotator_pa"):
                    row[hidden] = None
            out.append(row)
        if route == "jsonsummary" and out and is_open(sel):
            out[-1]["results_truncated"] = True
        self._send(200, "application/json", json.dumps(out, indent=4).encode(), stream=True)

    def _cal(self, row, base):
        return {"label": row["data_label"], "name": row["name"], "md5": row["file_md5"],
                "url": f"{base}/file/{row['filename']}" if row["present"] else None}

    def _matches_for(self, science, caltype):
        when = dt.datetime.fromisoformat(science["ut_datetime"])
        same = ("instrument", "detector_binning", "detector_readspeed_setting",
                "detector_gain_setting", "detector_roi_setting")
        if caltype == "bias":
            want = lambda r: r["observation_type"] == "BIAS" and r["reduction"] == "RAW"  # noqa
            window, count = 90, 50
        elif caltype == "flat":
            same = (*same, "filter_name")
            want = lambda r: (r["observation_type"] == "OBJECT" and r["object"] == "Twilight"  # noqa
                              and r["observation_class"] == "dayCal" and r["reduction"] == "RAW")
            window, count = 180, 20
        else:
            return []      # no processed calibrations or other types in this store
        found = []
        for row in self.archive.rows:
            if not (row["canonical"] and row["qa_state"] != "Fail" and want(row)):
                continue
            if any(row[k] != science[k] for k in same):
                continue
            delta = abs((dt.datetime.fromisoformat(row["ut_datetime"]) - when).total_seconds())
            if delta <= window * 86400:
                found.append((delta, row["entrytime"], row))
        found.sort(key=lambda item: (item[0], item[1]))
        return [row for _, _, row in found[:count]]

    def _calmgr(self, route, tokens, query):
        sel, _unknown = parse_selection(tokens)
        if is_open(sel):
            self._send(406, "text/plain", b"<!-- Open queries are not allowed -->\n")
            return
        caltype = sel.pop("caltype", None)
        sel.setdefault("canonical", True)
        sel["qa_state"] = "NotFail"
        science = sorted((r for r in self.archive.rows if matches(r, sel)),
                         key=lambda r: r["ut_datetime"], reverse=True)
        host = (self.headers.get("Host") or "localhost").split(":")[0]   # the port is dropped
        base = f"http://{host}"
        out = []
        for row in science:
            info = [{"error": False, "type": t,
                     "cals": [self._cal(c, base) for c in self._matches_for(row, t)]}
                    for t in ([caltype] if caltype else CALTYPES)]
            out.append({"label": row["data_label"], "filename": row["name"],
                        "md5": row["data_md5"], "cal_info": info})
        self._send(200, "text/plain", json.dumps(out, indent=4).encode(), stream=True)

    def _file(self, route, tokens, query):
        archive = self.archive
        requested = tokens[-1] if tokens else ""
        stored = requested if requested in archive.files else (
            requested[:-4] if requested.endswith(".bz2") else requested + ".bz2")
        if stored not in archive.files:
            self._send(404, "text/plain", b"")
            return
        row = next(r for r in archive.rows if r["filename"] == stored and r["present"])
        if row["release"] > "2090" and not self._authorised():
            self._html(403, "Forbidden")
            return
        body = archive.files[stored]
        if not requested.endswith(".bz2"):
            body = bz2.decompress(body)
        self._send(200, "application/fits", body,
                   extra=[("Content-Disposition", f'attachment; filename="{requested}"')])


class FakeArchive:
    """The fake archive server over an :class:`ArchiveStore`; a context manager.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT``.
    rows : list of dict
        The summary rows served (edit them to make the archive say odd things).
    requests : list of str
        Paths requested, in order.
    unrecognised : list of str
        Tokens the selection parser did not recognise (the real archive ignores them).
    """

    def __init__(self, store: ArchiveStore, *, open_limit: int = 500, closed_limit: int = 2000,
                 lifetime: float = 300.0, max_requests: int = 5000):
        self.rows = [dict(r) for r in store.rows]
        self.files = dict(store.files)
        self.open_limit, self.closed_limit = open_limit, closed_limit
        self.requests, self.unrecognised = [], []
        handler = type("Handler", (_Handler,), {"archive": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.timeout = 0.2
        self._stop = threading.Event()
        self._lifetime, self._max = lifetime, max_requests
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def row(self, name: str | None = None) -> dict:
        """The current (canonical) row of a file, or of the first file."""
        return next(r for r in self.rows if r["canonical"] and name in (None, r["name"]))

    def _serve(self):
        end = time.monotonic() + self._lifetime
        while not self._stop.is_set() and time.monotonic() < end and len(self.requests) < self._max:
            self._httpd.handle_request()
        self._httpd.server_close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


#: A small selection of the tutorial's files: enough for each kind, quick to compress.
SMALL = ("N20170613S0180.fits", "N20170613S0181.fits", "N20170613S0182.fits",
         "N20170702S0178.fits", "N20170702S0179.fits", "N20170614S0201.fits",
         "N20170614S0202.fits", "N20170614S0205.fits")
PROPRIETARY = "N20170614S0205.fits"


@pytest.fixture(scope="session")
def archive_store(tutorial4):
    """Part of the simulated tutorial dataset (4x4) as the archive holds it; one frame proprietary."""
    return ArchiveStore(tutorial4.directory, names=SMALL, proprietary={PROPRIETARY})


@pytest.fixture
def fake_archive(archive_store):
    """A running fake archive on 127.0.0.1 (stops by itself after 5 minutes at most)."""
    with FakeArchive(archive_store) as archive:
        yield archive
