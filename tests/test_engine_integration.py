"""The engine with the real primitives on the simulated tutorial data (4x4 binning)."""
import pytest
from astropy.io import fits
from astropy.table import Table

from fakes import preserved_logger
from gmoswidgets.errors import CalibrationNotFoundError
from gmoswidgets.frame import read_headers
from gmoswidgets.gmos.tags import tags_of
from gmoswidgets.recipes import RECIPES
from gmoswidgets.reduce import Reduce
from gmoswidgets.reduction import DONE, FAILED, PENDING, Reduction

pytestmark = pytest.mark.slow  # whole reductions


@pytest.fixture(scope="module")
def master_bias(tutorial4, tmp_path_factory):
    """makeProcessedBias on the tutorial biases, through the seed's Reduce API."""
    workdir = tmp_path_factory.mktemp("bias")
    reduce_bias = Reduce(workdir=workdir)
    reduce_bias.files.extend(str(p) for p in tutorial4.bias)
    with preserved_logger():
        reduce_bias.runr()
    return reduce_bias, workdir


def test_make_processed_bias(master_bias, tutorial4):
    reduce_bias, workdir = master_bias
    out = workdir / "N20170613S0180_bias.fits"
    assert reduce_bias.output_filenames == [str(out)]
    assert (workdir / "calibrations" / "processed_bias" / out.name).exists()
    assert {"PROCESSED", "BIAS"} <= tags_of(read_headers(out))
    with fits.open(out) as hdul:
        phu = hdul[0].header
        for key in ("PREPARE", "ADDDQ", "ADDVAR", "SUBOVER", "TRIMOVER", "STACKFRM", "PROCBIAS",
                    "GEM-TLM"):
            assert key in phu, key
        names = [h.name for h in hdul]
        assert {"SCI", "VAR", "DQ"} <= set(names)
    history = Table.read(out, hdu="HISTORY")
    assert list(history["primitive"]) == [s.primitive for s in RECIPES["makeProcessedBias"].steps]
    provenance = Table.read(out, hdu="PROVENANCE")
    assert sorted(provenance["filename"]) == sorted(p.name for p in tutorial4.bias)


def test_flat_stops_at_missing_bias_then_resumes(master_bias, tutorial4, tmp_path):
    from gmoswidgets.caldb import CalibrationService
    service = CalibrationService(database_dir=tmp_path / "db")
    service.init()
    red = Reduction(tutorial4.flat, workdir=tmp_path, calservice=service)
    assert red.recipe.name == "makeProcessedFlat"
    with pytest.raises(CalibrationNotFoundError) as info:
        red.run_all()
    assert "no processed_bias for N20170702S0178" in str(info.value)
    assert info.value.caltype == "processed_bias"
    assert info.value.filename == "N20170702S0178_overscanCorrected.fits"
    index = red.step("biasCorrect").index
    assert [s.status for s in red.steps[:index]] == [DONE] * index
    assert red.steps[index].status == FAILED
    before = red.outputs(index - 1)
    service.add_cal(master_bias[0].output_filenames[0])
    red.run_all()
    assert red.outputs(index - 1) is before  # the earlier steps were not recomputed
    assert red.output_filenames == [str(tmp_path / "N20170702S0178_flat.fits")]
    assert all(s.status == DONE for s in red.steps) and red.steps[-1].status != PENDING
    assert (tmp_path / "calibrations" / "processed_flat" / "N20170702S0178_flat.fits").exists()
