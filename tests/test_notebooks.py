"""The notebooks execute top to bottom on small sizes (nbclient, the venv's python3 kernel)
and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SMALL = {
    "RELEASESIM_NB_NODES": "30",
    "RELEASESIM_NB_REPLICATIONS": "4",
    "RELEASESIM_NB_EXECUTOR": "serial",
    "RELEASESIM_NB_THRESHOLDS": "2..4",
    "RELEASESIM_NB_SAMPLES": "4",  # Morris trajectories; Sobol N = 8, 40 LHS points
}
NAMES = ("explore_blast_radius.ipynb", "threshold_tuning.ipynb",
         "what_drives_the_blast_radius.ipynb")
# files a notebook must leave in its working directory (and nowhere else)
WRITES = {"what_drives_the_blast_radius.ipynb": ("explorations/*/report.html", 3)}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "RELEASESIM_NB_NODES" in code[0].source  # the parameter cell comes first


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(book, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook shows its figures"
    if name in WRITES:
        pattern, count = WRITES[name]
        assert len(list(tmp_path.glob(pattern))) == count
