"""Association rules: truth table, nearest in time, SQL == Python, user calibrations."""
import datetime as dt
import random
import time

import pytest

from gmoswidgets.caldb import (CalEntry, CalibrationService, UserCalibrations, get_calibration,
                               properties_of)
from gmoswidgets.caldb import service as caldb_service
from gmoswidgets.caldb.testing import make_headers, write_calibration
from gmoswidgets.errors import FileProblem, ParameterError

SCIENCE_DATE = "2017-06-14T06:00:00"
KIND = {"processed_bias": "bias", "processed_flat": "flat", "processed_fringe": "fringe",
        "processed_bpm": "bpm"}


def _shift(days):
    when = dt.datetime.fromisoformat(SCIENCE_DATE) + dt.timedelta(days=days)
    return when.isoformat()


@pytest.fixture
def service(tmp_path):
    svc = CalibrationService(database_dir=tmp_path / "db")
    svc.init()
    yield svc
    svc.close()


def _store(svc, tmp_path, name, caltype, ingest=None, **kwargs):
    """Store a calibration entry built from headers (the file is an empty placeholder)."""
    path = tmp_path / name
    path.touch()
    props = properties_of(make_headers(KIND[caltype], **kwargs))
    svc.db.upsert(CalEntry(name, path, caltype, props, time.time() if ingest is None else ingest))
    return path


SCIENCE = make_headers("science", date=SCIENCE_DATE, filename="N20170614S0201.fits")

# (caltype, change from a perfectly matching calibration, rules expected to fail)
TRUTH_TABLE = [
    (ct, {}, set()) for ct in ("processed_bias", "processed_flat", "processed_fringe")
] + [
    ("processed_bias", {"binning": (1, 1)}, {"binning"}),
    ("processed_flat", {"binning": (4, 2)}, {"binning"}),
    ("processed_fringe", {"binning": (2, 4)}, {"binning"}),
    ("processed_bias", {"read_speed": "fast"}, {"read speed"}),
    ("processed_flat", {"read_speed": "fast"}, {"read speed"}),
    ("processed_fringe", {"read_speed": "fast"}, set()),      # the archive ignores read mode
    ("processed_bias", {"gain": "high"}, {"gain setting"}),
    ("processed_flat", {"gain": "high"}, {"gain setting"}),
    ("processed_fringe", {"gain": "high"}, set()),
    ("processed_bias", {"roi": "Central Spectrum"}, {"ROI"}),
    ("processed_flat", {"roi": "Central Spectrum"}, {"ROI"}),
    ("processed_fringe", {"roi": "Central Stamp"}, {"ROI"}),
    ("processed_bias", {"filter_name": "g"}, set()),          # a bias has no filter
    ("processed_flat", {"filter_name": "g"}, {"filter"}),
    ("processed_fringe", {"filter_name": "z"}, {"filter"}),
    # another detector also means other amplifiers: the read area differs too
    ("processed_bias", {"dettype": "SDSU II e2v DD CCD42-90"}, {"detector", "ROI"}),
    ("processed_flat", {"dettype": "SDSU II e2v DD CCD42-90"}, {"detector", "ROI"}),
    ("processed_bias", {"instrument": "GMOS-S", "dettype": "S10892"},
     {"instrument", "detector", "ROI"}),
    ("processed_fringe", {"instrument": "GMOS-S", "dettype": "S10892"},
     {"instrument", "detector", "ROI"}),
    ("processed_bias", {"date": _shift(89)}, set()),
    ("processed_bias", {"date": _shift(-91)}, {"time window"}),
    ("processed_flat", {"date": _shift(-100)}, set()),
    ("processed_flat", {"date": _shift(181)}, {"time window"}),
    ("processed_fringe", {"date": _shift(300)}, set()),
    ("processed_fringe", {"date": _shift(-366)}, {"time window"}),
]


@pytest.mark.parametrize("caltype, change, failing", TRUTH_TABLE,
                         ids=[f"{c}-{'+'.join(ch) or 'same'}" for c, ch, _ in TRUTH_TABLE])
def test_truth_table(service, tmp_path, caltype, change, failing):
    kwargs = {"date": SCIENCE_DATE, **change}
    path = _store(service, tmp_path, "candidate.fits", caltype, **kwargs)
    match = service.get_calibration(SCIENCE, caltype)
    [report] = service.explain(SCIENCE, caltype)
    failed = {name for name, ok, _ in report.checks if not ok}
    assert failed == failing
    if failing:
        assert match.path is None and not report.chosen
        assert "candidate.fits" not in match.reason and caltype in match.reason
        for name in failing:
            assert name in match.reason            # the summary names the rejecting rules
        assert report.reasons == [d for _, ok, d in report.checks if not ok]
    else:
        assert match.path == path and match.found and report.chosen
        assert "nearest in time" in match.reason


def test_reason_wording(service, tmp_path):
    _store(service, tmp_path, "b11.fits", "processed_bias", binning=(1, 1), date=SCIENCE_DATE)
    _store(service, tmp_path, "old.fits", "processed_bias", date=_shift(-120))
    reports = {r.filename: r for r in service.explain(SCIENCE, "processed_bias")}
    assert reports["b11.fits"].reasons == ["binning 1x1 != 2x2"]
    assert reports["old.fits"].reasons == ["Δt -120.00 d outside ±90 d"]
    match = service.get_calibration(SCIENCE, "processed_bias")
    assert match.path is None
    assert "none of the 2 processed_bias" in match.reason and "N20170614S0201.fits" in match.reason


def test_custom_roi_is_contained(service, tmp_path):
    """A frame read with another ROI (here CCD2) takes a calibration whose read area contains its own."""
    sci = make_headers("science", roi="CCD2", date=SCIENCE_DATE)
    assert properties_of(sci).roi == "CCD2" and len(sci.ext_headers) == 4
    full = _store(service, tmp_path, "full.fits", "processed_bias", date=SCIENCE_DATE)
    _store(service, tmp_path, "cs.fits", "processed_bias", roi="Central Spectrum", date=SCIENCE_DATE)
    assert service.get_calibration(sci, "processed_bias").path == full
    reasons = {r.filename: r.reasons for r in service.explain(sci, "processed_bias")}
    assert reasons["cs.fits"] == ["ROI Central Spectrum does not contain the frame's CCD2 read area"]


def test_overscan_state_checked_only_for_prepared_frames(service, tmp_path):
    unprocessed = _store(service, tmp_path, "raw_like.fits", "processed_bias", processed=False,
                         date=SCIENCE_DATE)
    prepared = make_headers("science", processed=True, date=SCIENCE_DATE)
    assert service.get_calibration(SCIENCE, "processed_bias").path == unprocessed
    assert service.get_calibration(prepared, "processed_bias").path is None
    [report] = service.explain(prepared, "processed_bias")
    assert report.reasons == ["overscan subtracted no, trimmed no != subtracted yes, trimmed yes"]


def test_bpm_valid_from_its_date(service, tmp_path):
    before = _store(service, tmp_path, "bpm_2017.fits", "processed_bpm", date="2017-01-01T00:00:00")
    _store(service, tmp_path, "bpm_2018.fits", "processed_bpm", date="2018-01-01T00:00:00")
    _store(service, tmp_path, "bpm_1x1.fits", "processed_bpm", binning=(1, 1), date=SCIENCE_DATE)
    match = service.get_calibration(SCIENCE, "processed_bpm")
    assert match.path == before
    reasons = {r.filename: r.reasons for r in service.explain(SCIENCE, "processed_bpm")}
    assert reasons["bpm_2018.fits"] == ["valid from 2018-01-01 00:00, after the frame "
                                        "(2017-06-14 06:00)"]


def test_nearest_in_time_wins(service, tmp_path):
    _store(service, tmp_path, "minus2.fits", "processed_bias", date=_shift(-2))
    plus1 = _store(service, tmp_path, "plus1.fits", "processed_bias", date=_shift(1))
    _store(service, tmp_path, "plus3.fits", "processed_bias", date=_shift(3))
    _store(service, tmp_path, "b11.fits", "processed_bias", binning=(1, 1), date=SCIENCE_DATE)
    assert service.get_calibration(SCIENCE, "processed_bias").path == plus1
    reports = service.explain(SCIENCE, "processed_bias")
    assert [r.filename for r in reports] == ["plus1.fits", "minus2.fits", "plus3.fits", "b11.fits"]
    assert [r.chosen for r in reports] == [True, False, False, False]
    assert "plus1.fits is nearer in time" in reports[1].reasons[0]


def test_ties_go_to_the_most_recently_added_then_to_the_name(service, tmp_path):
    _store(service, tmp_path, "before.fits", "processed_bias", date=_shift(-1), ingest=2000.0)
    after = _store(service, tmp_path, "after.fits", "processed_bias", date=_shift(1), ingest=1000.0)
    newer = _store(service, tmp_path, "z_newer.fits", "processed_bias", date=_shift(1), ingest=3000.0)
    assert service.get_calibration(SCIENCE, "processed_bias").path == newer
    service.remove_cal("z_newer.fits")
    assert service.get_calibration(SCIENCE, "processed_bias").path == tmp_path / "before.fits"
    _store(service, tmp_path, "a_same.fits", "processed_bias", date=_shift(-1), ingest=2000.0)
    assert service.get_calibration(SCIENCE, "processed_bias").path == tmp_path / "a_same.fits"
    assert after.exists()


def test_sql_lookup_agrees_with_python_explain(service, tmp_path):
    """The fast SQL path and the explain() path choose the same calibration."""
    rng = random.Random(3)
    choices = {"binning": [(1, 1), (2, 2), (4, 4)], "read_speed": ["slow", "fast"],
               "gain": ["low", "high"], "roi": ["Full Frame", "Central Spectrum"],
               "filter_name": ["g", "i"]}

    def random_kwargs():
        kwargs = {key: rng.choice(values) for key, values in choices.items()}
        kwargs["date"] = _shift(rng.uniform(-400, 400))
        return kwargs

    for index in range(150):
        caltype = rng.choice(["processed_bias", "processed_flat", "processed_fringe"])
        _store(service, tmp_path, f"c{index:03d}.fits", caltype, ingest=float(rng.randint(0, 5)),
               **random_kwargs())
    found = 0
    for _ in range(40):
        sci = make_headers("science", **random_kwargs())
        for caltype in ("processed_bias", "processed_flat", "processed_fringe"):
            match = service.get_calibration(sci, caltype)
            reports = service.explain(sci, caltype)
            chosen = [r.path for r in reports if r.chosen]
            assert chosen == ([match.path] if match.path else [])
            found += match.path is not None
            # the per-rule rejection counts of the "nothing matched" reason, SQL vs Python
            python_counts = {}
            for report in reports:
                for name, ok, _ in report.checks:
                    python_counts[name] = python_counts.get(name, 0) + (not ok)
            total, rejected = service.db.rejections(caltype, properties_of(sci))
            assert total == len(reports)
            assert rejected == {name: n for name, n in python_counts.items() if n}
    assert found > 10          # the comparison covered real matches, not only misses


def test_missing_file_is_reported(service, tmp_path):
    path = _store(service, tmp_path, "gone_bias.fits", "processed_bias", date=SCIENCE_DATE)
    path.unlink()
    match = service.get_calibration(SCIENCE, "processed_bias")
    assert match.path == path and match.missing and not match.found
    assert "missing" in match.reason and "caldb remove gone_bias.fits" in match.reason
    [report] = service.explain(SCIENCE, "processed_bias")
    assert report.chosen and report.missing
    assert any("missing from disk" in r for r in report.reasons)


# -- user calibrations -------------------------------------------------------------

@pytest.fixture
def user_files(tmp_path):
    return {
        "good": write_calibration(tmp_path / "user_bias.fits", "bias", date=SCIENCE_DATE),
        "b11": write_calibration(tmp_path / "user_b11_bias.fits", "bias", binning=(1, 1)),
        "flat": write_calibration(tmp_path / "user_flat.fits", "flat", filter_name="g"),
    }


def test_user_cal_beats_the_database(service, tmp_path, user_files):
    stored = _store(service, tmp_path, "db_bias.fits", "processed_bias", date=SCIENCE_DATE)
    ucal = UserCalibrations.parse([f"processed_bias:{user_files['good']}"])
    match = get_calibration(SCIENCE, "processed_bias", service=service, user_cals=ucal)
    assert (match.path, match.source, match.warnings) == (user_files["good"], "user", [])
    # no user flat given: the database answers
    assert get_calibration(SCIENCE, "processed_bias", service=service).path == stored
    assert ucal.get(SCIENCE, "processed_flat") is None


def test_mismatched_user_cal_warns(user_files):
    ucal = UserCalibrations({"processed_bias": user_files["b11"],
                             "processed_flat": user_files["flat"]})
    match = ucal.get(SCIENCE, "processed_bias")
    assert match.path == user_files["b11"]
    assert match.warnings == ["user processed_bias user_b11_bias.fits: binning 1x1 != 2x2"]
    flat = ucal.get(SCIENCE, "processed_flat")
    assert flat.warnings == ["user processed_flat user_flat.fits: filter g != i"]
    wrong = UserCalibrations({"processed_bias": user_files["flat"]}).get(SCIENCE, "processed_bias")
    assert wrong.warnings[0] == ("user processed_bias user_flat.fits: is a processed_flat, "
                                 "not a processed_bias")


def test_user_cal_missing_after_parse(user_files):
    ucal = UserCalibrations.parse([f"processed_bias:{user_files['good']}"])
    user_files["good"].unlink()
    match = ucal.get(SCIENCE, "processed_bias")
    assert match.missing and "missing" in match.reason


@pytest.mark.parametrize("spec, error", [
    ("processed_bias", ParameterError),                  # no file
    ("processed_bais:x.fits", ParameterError),           # typo in the type
    ("processed_bias:/no/such/file.fits", FileProblem),
])
def test_user_cal_parse_errors(spec, error):
    with pytest.raises(error):
        UserCalibrations.parse([spec])


def test_user_cal_type_given_twice(user_files):
    spec = f"processed_bias:{user_files['good']}"
    with pytest.raises(ParameterError, match="twice"):
        UserCalibrations.parse([spec, spec])


def test_no_service_no_user_cal(monkeypatch):
    monkeypatch.setitem(caldb_service._DEFAULT, "service", None)
    match = get_calibration(SCIENCE, "processed_bias", service=None)
    assert match.path is None and "set_calservice" in match.reason
