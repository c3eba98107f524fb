"""gmoswidgets.archive against the local fake archive (tests/fake_archive.py) and a real archive answer."""
import datetime as dt
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fake_archive import PROPRIETARY, SESSION, parse_selection

from gmoswidgets import archive
from gmoswidgets.archive import ArchiveError
from gmoswidgets.archive.client import get_json
from gmoswidgets.archive.search import summary_table
from gmoswidgets.frame import read_headers
from gmoswidgets.gmos.tags import tags_of

DATA = Path(__file__).parent / "data"
SCIENCE = dict(program="GN-2017A-SV-151", date="2017-06-14", obsclass="science", filter="i",
               instrument="GMOS-N")


def _json_value(table, i, name):
    value = table[name][i]
    if np.ma.is_masked(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def test_search_returns_the_science_frames_typed(fake_archive):
    table = archive.search(**SCIENCE, server=fake_archive.url)
    assert list(table["name"]) == ["N20170614S0201.fits", "N20170614S0202.fits", PROPRIETARY]
    assert table.colnames[:12] == list(archive.SUMMARY_COLUMNS[:12])
    assert table["exposure_time"].dtype.kind == "f" and table["file_size"].dtype.kind == "i"
    assert set(table["filter_name"]) == {"i"} and set(table["detector_binning"]) == {"4x4"}
    assert not table.meta["truncated"] and not table.meta["marker"]      # a closed query
    # a proprietary frame's object is hidden without the cookie, shown with it
    assert np.ma.is_masked(table["object"][2]) and table["object"][0] == "starfield"
    with_cookie = archive.search(**SCIENCE, server=fake_archive.url, cookie=SESSION)
    assert with_cookie["object"][2] == "starfield"
    assert fake_archive.unrecognised == []          # every token we sent means something


def test_superseded_versions_stay_out_of_the_search(fake_archive):
    name = fake_archive.row()["name"]
    listed = get_json(f"{fake_archive.url}/jsonfilelist/{name}")     # not forced canonical
    assert [row["canonical"] for row in listed] == [False, True]
    table = archive.search(file=name, server=fake_archive.url)
    assert len(table) == 1 and table["canonical"][0] and table["present"][0]


def test_server_from_the_environment(fake_archive, monkeypatch):
    monkeypatch.setenv(archive.ARCHIVE_URL_ENV, fake_archive.url + "/")
    assert archive.archive_url() == fake_archive.url
    assert len(archive.search(obstype="BIAS", date="20170613")) == 3
    monkeypatch.delenv(archive.ARCHIVE_URL_ENV)
    assert archive.archive_url() == archive.DEFAULT_ARCHIVE_URL == "https://archive.gemini.edu"


def test_bad_criteria_are_refused_not_sent(fake_archive):
    for bad, match in ((dict(binning="3x3"), "not a binning"), (dict(date="2017"), "not a date"),
                       (dict(obsclass="sciance"), "unknown observation class"),
                       (dict(instrument="ACAM"), "unknown instrument"),
                       (dict(date="20171345"), "not a date")):
        with pytest.raises(ArchiveError, match=match):
            archive.search(**bad, server=fake_archive.url)
    assert fake_archive.requests == []


def _pad(fake, count, **changes):
    template = fake.row()
    for i in range(count):
        fake.rows.append({**template, "name": f"N20170614S{9000 - i:04d}x.fits",
                          "filename": f"N20170614S{9000 - i:04d}x.fits.bz2", **changes})


def test_open_query_marker_is_not_truncation(fake_archive):
    table = archive.search(object="starfield", server=fake_archive.url, cookie=SESSION)
    assert len(table) == 3 and table.meta["marker"] and not table.meta["truncated"]


def test_truncated_results_say_so_in_one_line(fake_archive, caplog):
    _pad(fake_archive, 600)
    table = archive.search(obstype="BIAS", server=fake_archive.url)          # open: 500 rows
    assert len(table) == 500 and table.meta["truncated"] and table.meta["marker"]
    note = table.meta["note"]
    assert "first 500 results" in note and "narrow the query" in note and "\n" not in note
    assert note in caplog.text
    _pad(fake_archive, 1500)
    table = archive.search(obstype="BIAS", date="20170613", server=fake_archive.url)  # closed
    assert len(table) == 2000 and table.meta["truncated"] and not table.meta["marker"]


def test_a_real_archive_answer_parses_without_loss():
    rows = json.loads((DATA / "astroquery_gemini_m101.json").read_text())
    table = summary_table(rows, limit=500)
    keys = {k for row in rows for k in row} - {"results_truncated"}
    assert set(table.colnames) == keys and len(table) == len(rows) == 250
    for i, row in enumerate(rows):
        for key in keys:
            assert _json_value(table, i, key) == row.get(key), (i, key)
    assert table.meta["marker"] and not table.meta["truncated"]
    assert table["exposure_time"].dtype.kind == "f" and table["mdready"].dtype == bool


def test_astroquery_builds_the_same_selection(fake_archive):
    """astroquery.gemini's query_criteria and ours select the same (the archive's parser decides)."""
    gemini = pytest.importorskip("astroquery.gemini")
    from astroquery.gemini.urlhelper import URLHelper

    class Capture(gemini.ObservationsClass):
        url_helper = URLHelper(fake_archive.url)

        def query_raw(self, *args, **kwargs):
            return self.url_helper.build_url(*args, **kwargs)

    theirs = Capture().query_criteria(program_id="GN-2017A-SV-151", instrument="GMOS-N",
                                      utc_date=(dt.date(2017, 6, 1), dt.date(2017, 6, 30)),
                                      observation_class="science", observation_type="OBJECT",
                                      filter="i")
    ours = archive.search(program="GN-2017A-SV-151", instrument="GMOS-N",
                          date="20170601-20170630", obsclass="science", obstype="OBJECT",
                          filter="i", server=fake_archive.url).meta["url"]
    def tokens(url):
        return url.split("/jsonsummary/")[1].split("/")
    assert parse_selection(tokens(theirs)) == parse_selection(tokens(ours))
    # astroquery's own parser keeps every value as a string, and drops the truncation marker
    from astroquery.gemini.core import _gemini_json_to_table
    rows = json.loads((DATA / "astroquery_gemini_m101.json").read_text())
    assert _gemini_json_to_table(rows)["exposure_time"].dtype.kind == "U"


def test_calibrations_for_the_science_frames(fake_archive):
    science = archive.search(**SCIENCE, server=fake_archive.url)
    cals = archive.calibrations_for(science[:2], caltypes=("bias", "flat"),
                                    server=fake_archive.url)
    assert set(cals["science"]) == {"N20170614S0201.fits", "N20170614S0202.fits"}
    biases = cals[(cals["science"] == "N20170614S0201.fits") & (cals["caltype"] == "bias")]
    # best first: the biases of the 13th, closest in time last taken first
    assert list(biases["name"]) == ["N20170613S0182.fits", "N20170613S0181.fits",
                                    "N20170613S0180.fits"]
    assert list(biases["rank"]) == [1, 2, 3]
    flats = cals[cals["caltype"] == "flat"]
    assert set(flats["name"]) == {"N20170702S0178.fits", "N20170702S0179.fits"}
    # the archive writes its host without the port: the URL is rebuilt on the configured server
    assert all(u.startswith(fake_archive.url + "/file/") for u in cals["url"])
    stored = {r["name"]: r["file_md5"] for r in fake_archive.rows}
    assert all(stored[n] == m for n, m in zip(cals["name"], cals["file_md5"]))
    top = archive.calibrations_for(["N20170614S0201.fits"], caltypes=["bias"], count=1,
                                   server=fake_archive.url)
    assert list(top["name"]) == ["N20170613S0182.fits"]
    processed = archive.calibrations_for("N20170614S0201.fits", processed=True,
                                         server=fake_archive.url)
    assert len(processed) == 0 and processed.meta["caltypes"] == ["processed_bias",
                                                                  "processed_flat"]
    assert "N20170614S0201.fits: no processed_bias found" in processed.meta["problems"]
    with pytest.raises(ArchiveError, match="unknown calibration type 'twilight'"):
        archive.calibrations_for("N20170614S0201.fits", caltypes=["twilight"])
    unknown = archive.calibrations_for("N20990101S0001.fits", server=fake_archive.url)
    assert len(unknown) == 0 and "does not know" in unknown.meta["problems"][0]


def test_download_checks_md5s_and_skips_what_is_there(fake_archive, tmp_path, archive_store):
    table = archive.search(obstype="BIAS", date="20170613", server=fake_archive.url)
    result = archive.download_files(table, tmp_path / "playdata", server=fake_archive.url,
                                    progress=False)
    assert [p.name for p in result.paths] == [f"N20170613S018{i}.fits" for i in range(3)]
    assert result.failed == [] and len(result.fetched) == 3
    rows = {r["name"]: r for r in fake_archive.rows}
    import hashlib
    for path in result.paths:
        assert hashlib.md5(path.read_bytes()).hexdigest() == rows[path.name]["data_md5"]
    assert sorted(p.name for p in (tmp_path / "playdata").iterdir()) == [p.name for p in
                                                                         result.paths]
    again = archive.download_files(table, tmp_path / "playdata", server=fake_archive.url,
                                   progress=False)
    assert again.fetched == [] and len(again.paths) == 3


def test_a_leftover_part_is_not_trusted_when_the_archive_ignores_range(fake_archive, tmp_path):
    """The archive has no Range support: a resumed download starts again from byte 0."""
    table = archive.search(file="N20170613S0180.fits", server=fake_archive.url)
    (tmp_path / "N20170613S0180.fits.bz2.part").write_bytes(b"junk from another day" * 100)
    result = archive.download_files(table, tmp_path, server=fake_archive.url, progress=False)
    assert result.failed == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "N20170613S0180.fits"]
    assert fake_archive.requests[-1] == "/file/N20170613S0180.fits.bz2"


def test_tags_from_the_summary_are_those_of_the_downloaded_files(fake_archive, tmp_path):
    table = archive.search(date="20170601-20170731", server=fake_archive.url)
    table = table[[n != PROPRIETARY for n in table["name"]]]
    kinds = {archive.row_tags(row) & {"BIAS", "FLAT", "TWILIGHT", "IMAGE"} for row in table}
    assert len(kinds) == 3                               # biases, twilights, science
    result = archive.download_files(table, tmp_path, server=fake_archive.url, progress=False)
    for row, path in zip(table, result.paths):
        assert archive.row_tags(row) == tags_of(read_headers(path)), path.name


def test_proprietary_file_needs_the_cookie(fake_archive, tmp_path):
    table = archive.search(file=PROPRIETARY, server=fake_archive.url)
    result = archive.download_files(table, tmp_path, server=fake_archive.url, progress=False)
    assert result.paths == [] and len(result.failed) == 1
    message = result.failed[0][1]
    assert "HTTP 403" in message and "GEMINI_ARCHIVE_COOKIE" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []
    result = archive.download_files(table, tmp_path, server=fake_archive.url, cookie=SESSION,
                                    progress=False)
    assert [p.name for p in result.paths] == [PROPRIETARY]


def test_hostile_file_name_in_a_search_answer_is_refused(fake_archive, tmp_path):
    fake_archive.row()["filename"] = "../../x.fits.bz2"
    table = archive.search(obstype="BIAS", date="20170613", server=fake_archive.url)
    target = tmp_path / "a" / "b"
    result = archive.download_files(table, target, server=fake_archive.url, progress=False)
    assert result.failed[0][0] == "../../x.fits.bz2" and "refusing" in result.failed[0][1]
    assert not (tmp_path / "x.fits.bz2").exists() and not (tmp_path / "x.fits").exists()
    assert len(result.paths) == 2


def test_error_pages_and_no_network_are_one_line(fake_archive):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ArchiveError, match="cannot reach the archive") as err:
        archive.search(date="20170614", server=f"http://127.0.0.1:{port}")
    assert "\n" not in str(err.value)
    with pytest.raises(ArchiveError, match="HTTP 404 .*404 Not Found"):
        archive.search(date="20170614", server=fake_archive.url + "/nothere")
    bare = urllib.request.Request(fake_archive.url + "/jsonsummary/20170614",
                                  headers={"User-Agent": ""})
    with pytest.raises(urllib.error.HTTPError, match="403"):   # we always send a User-Agent
        urllib.request.urlopen(bare, timeout=10)
    with pytest.raises(ArchiveError, match="HTTP 406 .*Open queries are not allowed"):
        get_json(fake_archive.url + "/jsoncalmgr/bias/GMOS-N")     # an open calmgr query
    with pytest.raises(ArchiveError, match="HTTP 404 Not Found for .*/file/N20990101S0001"):
        get_json(fake_archive.url + "/file/N20990101S0001.fits")   # 404 with an empty body
