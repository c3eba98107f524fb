"""The stepwise engine (gmoswidgets.reduction) on fake primitives and tiny fake files."""
import json
import logging
import threading

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from fakes import FAKE_CAL_RECIPE, expected_final, write_fake
from gmoswidgets.caldb import CalMatch
from gmoswidgets.caldb.lookup import CalibrationLookup, DefaultService
from gmoswidgets.errors import CalibrationNotFoundError, GmosError, ParameterError, RecipeError
from gmoswidgets.frame import read_frame
from gmoswidgets.logutils import show_info
from gmoswidgets.membudget import spill_budget
from gmoswidgets.reduction import DONE, FAILED, PENDING, SKIPPED, ReductionCancelled, parse_uparms


def _final_data(red, step=-1):
    return [ext.data for ext in red.outputs(step)[0]]


# -- steps and parameters ------------------------------------------------------------------
def test_steps_labels_and_parameter_sources(fake_env):
    red = fake_env.reduction(uparms=[("fakeAdd:value", 2.5)])
    assert [s.label for s in red.steps] == ["fakeAdd (1)", "fakeScale", "fakeAdd (2)",
                                            "fakeStack", "fakeStore"]
    assert all(s.status == PENDING for s in red.steps)
    # -p fakeAdd:value applies to every occurrence
    assert red.steps[0].values["value"] == red.steps[2].values["value"] == 2.5
    states = {p.name: p for p in red.step("fakeScale").parameter_states()}
    assert states["factor"].value == 3.0 and states["factor"].source == "recipe"
    assert states["fail"].source == "default" and states["fail"].value is False
    assert states["skip_primitive"].param.type is bool  # generic parameters are exposed
    assert red.step("fakeAdd (2)").source("value") == "user"
    with pytest.raises(ParameterError, match="occurs 2 times"):
        red.step("fakeAdd")
    with pytest.raises(ParameterError, match="no step 'nope'"):
        red.step("nope")


def test_parse_uparms_forms_and_errors(fake_env):
    table = fake_env.primitives
    assert parse_uparms([("fakeScale:factor", "4")], table) == [("fakeScale", "factor", 4.0)]
    assert parse_uparms({"fakeScale:fail": True}, table) == [("fakeScale", "fail", True)]
    assert parse_uparms(["fakeScale:fail=yes"], table) == [("fakeScale", "fail", True)]
    with pytest.raises(ParameterError, match="unknown primitive 'noSuch'.*fakeAdd"):
        parse_uparms([("noSuch:x", 1)], table)
    with pytest.raises(ParameterError, match="no parameter 'fctor'.*factor.*skip_primitive"):
        parse_uparms(["fakeScale:fctor=2"], table)
    with pytest.raises(ParameterError, match="fakeScale:factor"):
        parse_uparms(["fakeScale:factor=big"], table)
    with pytest.raises(ParameterError, match="below the minimum"):
        parse_uparms([("fakeScale:factor", -1)], table)
    with pytest.raises(ParameterError, match="PRIMITIVE:PARAMETER"):
        parse_uparms([("factor", 2)], table)
    with pytest.raises(ParameterError, match="PRIMITIVE:PARAMETER=VALUE"):
        parse_uparms(["fakeScale:factor"], table)


def test_user_value_overrides_recipe_value_with_warning(fake_env, caplog):
    with caplog.at_level("WARNING", logger="gmoswidgets"):
        red = fake_env.reduction(uparms={"fakeScale:factor": 1.0})
    assert red.step("fakeScale").params["factor"] == 1.0
    assert "overrides the value the recipe fakeBias sets (factor=3.0)" in caplog.text
    red.run_all()
    expected = expected_final(fake_env.biases, factor=1.0)
    for got, want in zip(_final_data(red), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_parameter_of_primitive_not_in_recipe_is_reported(fake_env, caplog):
    with caplog.at_level("WARNING", logger="gmoswidgets"):
        fake_env.reduction(uparms=[("fakeCal:skip_primitive", True)])
    assert "fakeCal is not a step of recipe fakeBias" in caplog.text


def test_mixing_biases_and_flats_is_refused(fake_env):
    with pytest.raises(RecipeError, match="cannot reduce N20170702S0178.fits .*FLAT.* together"):
        fake_env.reduction(fake_env.biases + [fake_env.flat])
    with pytest.raises(RecipeError, match="does not apply to N20170702S0178.fits"):
        fake_env.reduction([fake_env.flat])
    with pytest.raises(RecipeError, match="unknown recipe 'noRecipe'; valid recipes are: .*fakeB"):
        fake_env.reduction(recipe="noRecipe")
    with pytest.raises(GmosError, match="no input files"):
        fake_env.reduction([])


def test_recipe_by_name_or_default_from_the_given_book(fake_env):
    assert fake_env.reduction(recipe="fakeCalibrated").recipe is FAKE_CAL_RECIPE
    # the book's default for biases is the real makeProcessedBias, whose primitives
    # are not in the fake table: the engine looks them up only there
    with pytest.raises(ParameterError, match="unknown primitive 'prepare'; valid primitives are: "
                                             "fakeAdd, fakeCal, fakeScale, fakeStack, fakeStore"):
        fake_env.reduction(recipe=None)


# -- running -----------------------------------------------------------------------------------
def test_stepwise_equals_all_at_once_and_matches_independent_computation(fake_env, tmp_path):
    stepwise = fake_env.reduction(workdir=tmp_path / "a")
    assert stepwise.run_next().label == "fakeAdd (1)"
    assert stepwise.steps[0].status == DONE and stepwise.steps[1].status == PENDING
    stepwise.run_to("fakeStack")
    assert stepwise.next_index == 4 and not stepwise.output_filenames
    stepwise.run_next()
    assert stepwise.run_next() is None and stepwise.finished
    at_once = fake_env.reduction(workdir=tmp_path / "b")
    at_once.run_all()
    for got, other, want in zip(_final_data(stepwise), _final_data(at_once),
                                expected_final(fake_env.biases)):
        np.testing.assert_array_equal(got, other)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    a = fits.getdata(tmp_path / "a" / "N20170613S0180_fakebias.fits", 1)
    b = fits.getdata(tmp_path / "b" / "N20170613S0180_fakebias.fits", 1)
    np.testing.assert_array_equal(a, b)
    assert all(s.elapsed is not None and s.elapsed >= 0 for s in at_once.steps)


def test_rerun_from_recomputes_only_later_steps(fake_env):
    red = fake_env.reduction()
    red.run_all()
    assert dict(fake_env.calls) == {"fakeAdd": 2, "fakeScale": 1, "fakeStack": 1, "fakeStore": 1}
    first = red.outputs(0)
    red.rerun_from("fakeScale", factor=5.0)
    assert dict(fake_env.calls) == {"fakeAdd": 3, "fakeScale": 2, "fakeStack": 2, "fakeStore": 2}
    assert red.outputs(0) is first  # step 0 untouched
    assert red.step("fakeScale").source("factor") == "user"
    for got, want in zip(_final_data(red), expected_final(fake_env.biases, factor=5.0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # set_param only invalidates; rerun_from(until=...) stops early
    red.set_param("fakeAdd (2)", "value", "0")
    assert [s.status for s in red.steps] == [DONE, DONE, PENDING, PENDING, PENDING]
    assert red.output_filenames == []
    with pytest.raises(GmosError, match="step fakeAdd \\(2\\) is pending: run it first"):
        red.outputs(2)
    red.rerun_from(2, until=2)
    assert [s.status for s in red.steps] == [DONE, DONE, DONE, PENDING, PENDING]
    assert fake_env.calls["fakeScale"] == 2


def test_failure_keeps_earlier_steps(fake_env):
    events = []
    red = fake_env.reduction(uparms=["fakeScale:fail=True"])
    red.subscribe(events.append)
    with pytest.raises(ValueError, match="told to fail"):
        red.run_all()
    assert [s.status for s in red.steps] == [DONE, FAILED, PENDING, PENDING, PENDING]
    assert isinstance(red.steps[1].error, ValueError)
    assert red.has_outputs(0) and not red.has_outputs(1)
    np.testing.assert_allclose(red.outputs(0)[0][0].data,
                               fits.getdata(fake_env.biases[0], 1) + 1.0)
    failed = [e for e in events if e.kind == "step_failed"]
    assert len(failed) == 1 and failed[0].step_index == 1 and "told to fail" in failed[0].message
    assert "failed" in red.summary() and "ValueError" in red.summary()
    red.rerun_from(1, fail=False)  # fix the parameter and go on: step 0 is not rerun
    assert fake_env.calls["fakeAdd"] == 1 and fake_env.calls["fakeScale"] == 2
    assert red.steps[1].status == DONE and red.steps[2].status == PENDING


def test_events_progress_and_log_records(fake_env):
    logger = logging.getLogger("gmoswidgets")
    assert logger.level == logging.NOTSET
    events = []
    red = fake_env.reduction()
    red.run_next()
    assert logger.level == logging.NOTSET  # the engine leaves the level to the front ends
    assert not any(e.kind == "log" and e.record.levelno < logging.WARNING for e in events)
    red.invalidate(0)
    show_info()  # what the step panel does: INFO messages reach its log box
    unsubscribe = red.subscribe(events.append)
    red.run_to(1)
    kinds = [(e.kind, e.step_index) for e in events if e.kind != "log"]
    assert kinds == [("step_started", 0), ("step_finished", 0), ("step_started", 1),
                     ("progress", 1), ("step_finished", 1)]
    progress = next(e for e in events if e.kind == "progress")
    assert progress.fraction == 0.5 and progress.message == "half way"
    assert any(e.kind == "log" and "fakeScale(factor=3.0)" in e.message for e in events)
    unsubscribe()
    red.run_next()
    assert not any(e.step_index == 2 for e in events)


def test_cancel_at_progress_and_between_steps(fake_env):
    red = fake_env.reduction()
    red.subscribe(lambda e: red.cancel() if e.kind == "progress" else None)
    with pytest.raises(ReductionCancelled):
        red.run_all()
    assert [s.status for s in red.steps[:3]] == [DONE, PENDING, PENDING]
    assert red.has_outputs(0)
    red2 = fake_env.reduction()
    red2.subscribe(lambda e: red2.cancel() if e.kind == "step_finished" else None)
    with pytest.raises(ReductionCancelled):
        red2.run_all()
    assert [s.status for s in red2.steps] == [DONE, PENDING, PENDING, PENDING, PENDING]


def test_background_thread_run(fake_env):
    red = fake_env.reduction()
    finished, refused = [], []

    def observer(event):
        if event.kind == "step_finished":
            finished.append(event.step_index)
        if event.kind == "step_started" and event.step_index == 0:
            for attempt in (red.run_next, lambda: red.set_param(1, "factor", 1.0)):
                try:  # a second run, or a change, while one is going is refused
                    attempt()
                except GmosError as exc:
                    refused.append(str(exc))

    red.subscribe(observer)
    worker = threading.Thread(target=red.run_all)
    worker.start()
    worker.join(30)
    assert finished == [0, 1, 2, 3, 4]
    assert refused == ["this reduction is already running",
                       "cannot change the reduction while it is running; cancel() it first"]
    assert red.step(1).source("factor") == "recipe"  # the refused change left no trace
    assert red.output_filenames == ["N20170613S0180_fakebias.fits"]


def test_skip_primitive_and_write_outputs(fake_env):
    red = fake_env.reduction(uparms=["fakeScale:skip_primitive=True", "fakeAdd:write_outputs=True"])
    red.run_all()
    assert red.steps[1].status == SKIPPED and fake_env.calls["fakeScale"] == 0
    for got, want in zip(_final_data(red), expected_final(fake_env.biases, factor=1.0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    written = sorted(p.name for p in fake_env.workdir.glob("*_added.fits"))
    assert written == [f"N20170613S018{i}_added.fits" for i in range(3)]
    # second fakeAdd overwrote the first one's files; their pixels are 1 + 1 added
    np.testing.assert_allclose(fits.getdata(fake_env.workdir / written[0], 1),
                               fits.getdata(fake_env.biases[0], 1) + 2.0)


@pytest.mark.parametrize("keep", ["last", "spill", "stream"])
def test_memory_policies_give_the_same_result(fake_env, keep, tmp_path, monkeypatch):
    monkeypatch.setattr(spill_budget(), "limit", 0)   # 'spill': every step on disk (no budget)
    reference = fake_env.reduction(workdir=tmp_path / "ref")
    reference.run_all()
    red = fake_env.reduction(keep=keep, spill_dir=tmp_path / "spill",
                    workdir=tmp_path / keep)
    red.run_all()
    for got, want in zip(_final_data(red), _final_data(reference)):
        np.testing.assert_array_equal(got, want)
    calls = dict(fake_env.calls)
    if keep in ("last", "stream"):  # earlier steps forgotten (stream: the last one on disk)
        assert not red.has_outputs(1) and red.has_outputs(4)
        assert red.outputs(1)[0].filename == "N20170613S0180_scaled.fits"  # recomputed
        assert fake_env.calls["fakeScale"] == calls["fakeScale"] + 1
    else:
        spilled = list((tmp_path / "spill").rglob("step01_*.bin"))
        assert len(spilled) == 3
        again = red.outputs(1)  # read back from disk, not recomputed
        assert dict(fake_env.calls) == calls
        assert again[0].filename == "N20170613S0180_scaled.fits"
        np.testing.assert_allclose(again[0][0].data, reference.outputs(1)[0][0].data)
        red.invalidate(3)  # invalidated steps leave no spilled files behind
        assert len(list((tmp_path / "spill").rglob("step*.bin"))) == 9
        red.close()
        assert not list((tmp_path / "spill").rglob("step*.bin"))


# -- outputs: names, history, provenance, calibration copies --------------------------------
def test_final_output_history_provenance_and_calibration_copy(fake_env):
    red = fake_env.reduction()
    assert red.run_all() == ["N20170613S0180_fakebias.fits"]
    assert [s.describe() for s in red.steps][1] == "fakeScale(factor=3.0)"
    assert red.outputs(2)[1].filename == "N20170613S0181_added.fits"
    out = fake_env.workdir / "N20170613S0180_fakebias.fits"
    copy = fake_env.workdir / "calibrations" / "processed_bias" / out.name
    assert copy.read_bytes() == out.read_bytes()
    with fits.open(out) as hdul:
        phu = hdul[0].header
        assert phu["ORIGNAME"] == "N20170613S0180.fits"
        assert "GEM-TLM" in phu and "STACKFRM" not in phu
        history = Table(hdul["HISTORY"].data)
        provenance = Table(hdul["PROVENANCE"].data)
        assert any("fakeStore" in str(card) for card in phu["HISTORY"])
    assert list(history["primitive"]) == ["fakeAdd", "fakeScale", "fakeAdd", "fakeStack",
                                          "fakeStore"]
    assert json.loads(history["args"][1]) == {"factor": 3.0, "fail": False}
    assert all(a <= b for a, b in zip(history["timestamp_start"], history["timestamp_stop"]))
    assert sorted(provenance["filename"]) == [p.name for p in fake_env.biases]
    assert set(provenance["provenance_added_by"]) == {"fakeAdd"}
    assert all(len(m) == 32 for m in provenance["md5"])
    summary = red.summary()
    assert "fakeBias" in summary and summary.count("done") == 5 and repr(red) == summary


def test_user_suffix_renames_only_the_final_output(fake_env):
    red = fake_env.reduction(suffix="newsuffix")
    assert red.run_all() == ["N20170613S0180_newsuffix.fits"]
    assert (fake_env.workdir / "N20170613S0180_newsuffix.fits").exists()
    assert not (fake_env.workdir / "N20170613S0180_fakebias.fits").exists()
    assert red.outputs(3)[0].filename == "N20170613S0180_stacked.fits"


def test_calibration_lookup_and_its_provenance(fake_env):
    master = write_fake(fake_env.raw / "master_bias.fits", base=50.0)
    seen = []

    def lookup(frame, caltype):
        seen.append((frame.filename, caltype))
        return read_frame(master), master, "test"

    red = fake_env.reduction(recipe=FAKE_CAL_RECIPE, calibration_lookup=lookup)
    red.run_all()
    assert seen == [(p.name, "processed_bias") for p in fake_env.biases]
    got = red.outputs(-1)[0][0].data
    want = np.mean([fits.getdata(b, 1) for b in fake_env.biases], axis=0) - fits.getdata(master, 1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    provenance = red.outputs(-1)[0].tables["PROVENANCE"]
    rows = {(r["filename"], r["provenance_added_by"]) for r in provenance}
    assert ("master_bias.fits", "fakeCal") in rows


def test_each_output_lists_only_the_calibrations_of_its_own_input(fake_env):
    masters = {p.name: write_fake(fake_env.raw / f"master_for_{p.stem}.fits", base=10.0 + i)
               for i, p in enumerate(fake_env.biases)}

    def lookup(frame, caltype):  # a different master for each input, matched by name
        path = masters[frame.phu["ORIGNAME"]]
        return read_frame(path), path, "one per input"

    red = fake_env.reduction(recipe=FAKE_CAL_RECIPE, calibration_lookup=lookup)
    red.run_to(0)
    for frame, raw in zip(red.outputs(0), fake_env.biases):
        rows = {(r["filename"], r["provenance_added_by"]) for r in frame.tables["PROVENANCE"]}
        assert rows == {(raw.name, "fakeCal"), (masters[raw.name].name, "fakeCal")}
    red.run_all()  # the stack of all three lists every master
    names = set(red.outputs(-1)[0].tables["PROVENANCE"]["filename"])
    assert {p.name for p in masters.values()} <= names


def test_missing_calibration_error_names_type_and_file(fake_env, tmp_path):
    red = fake_env.reduction(recipe=FAKE_CAL_RECIPE)  # no service given: none is looked for
    with pytest.raises(CalibrationNotFoundError) as info:
        red.run_all()
    assert (info.value.caltype, info.value.filename) == ("processed_bias", "N20170613S0180.fits")
    assert "no calibration database in use" in str(info.value)
    assert "reduce @" not in str(info.value)  # how to make one is the front ends' wording
    assert red.steps[0].status == FAILED
    service = DefaultService(config_file=tmp_path / "no_rsys.cfg")
    red = fake_env.reduction(recipe=FAKE_CAL_RECIPE, calservice=service)
    with pytest.raises(CalibrationNotFoundError, match="no processed_bias for N20170613S0180.fits: "
                                                       "no calibration database .*no_rsys.cfg"):
        red.run_all()


class _Service:
    """A calibration service that always answers with one file, counting the questions."""

    def __init__(self, path):
        self.path, self.asked = path, []

    def get_calibration(self, frame, caltype):
        self.asked.append((frame.filename, caltype))
        return CalMatch(self.path, "nearest in time", caltype, "database")


def test_calibration_lookup_asks_the_service_caches_frames_and_logs(fake_env, caplog):
    master = write_fake(fake_env.raw / "N20170613S0200_bias.fits", base=40.0)
    service = _Service(master)
    lookup = CalibrationLookup(service=service)
    frame = read_frame(fake_env.biases[0])
    with caplog.at_level("INFO", logger="gmoswidgets"):
        first = lookup(frame, "processed_bias")
        second = lookup(frame, "processed_bias")
    assert first[0] is second[0] and first[1:] == (master, "nearest in time")
    assert service.asked == [("N20170613S0180.fits", "processed_bias")] * 2
    assert "using processed_bias N20170613S0200_bias.fits: nearest in time" in caplog.text
    lookup.release()
    assert lookup(frame, "processed_bias")[0] is not first[0]  # read again after release

