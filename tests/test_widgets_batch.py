"""BatchPanel: the groups of a batch and their status, redrawn from the batch's events."""
import pytest

pytest.importorskip("ipywidgets")

from gmoswidgets import caldb  # noqa: E402
from gmoswidgets.batch import Batch  # noqa: E402
from gmoswidgets.data import make_tutorial_dataset  # noqa: E402
from gmoswidgets.widgets import BatchPanel  # noqa: E402



@pytest.mark.slow
def test_panel_follows_the_batch(tmp_path):
    raw = make_tutorial_dataset(tmp_path / "raw", binning=4, seed=3,
                                groups=("bias", "flat")).directory
    for extra in sorted(raw.glob("N20170615*.fits")) + sorted(raw.glob("N20170613S018[34]*")):
        extra.unlink()  # 3 biases are enough
    service = caldb.CalibrationService(database_dir=tmp_path)
    service.init()
    batch = Batch(raw, workdir=tmp_path / "out", service=service, scheduler="sync")
    panel = BatchPanel(batch)
    seen = []
    batch.subscribe(lambda event: seen.append(panel.grid.value))
    assert panel.grid.value.count("<b>planned</b>") == 2
    assert "2 planned" in panel.summary.value
    panel.run(background=False)
    assert "<b>running</b>" in seen[0]  # redrawn while the batch ran
    assert panel.grid.value.count("<b>done</b>") == 2
    assert "N20170613S0180_bias.fits" in panel.grid.value
    assert "N20170702S0178_flat.fits" in panel.grid.value
    assert "2 done" in panel.summary.value and not panel.run_button.disabled
    assert len(panel.table) == 2
