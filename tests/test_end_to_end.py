"""prepare mocap -> train (tiny) -> evaluate -> JSON report (+ render), through the command line."""

import json
from pathlib import Path

import numpy as np
import pytest

from posediffusion.cli import main
from tests.helpers import CMU_MOCAP as CMU
from tests.helpers import prepare_dataset

REAL_MOTIONS = "002_01_cc,002_02_cc,002_03_cc,003_01_cc,003_02_cc,007_01_cc,007_02_cc,007_03_cc,backflip_asf"

def split_record(data: Path, name: str) -> dict:
    """The split that `prepare mocap` wrote for dataset ``name``."""
    return json.loads((data / f"split_{name}.json").read_text())


def train_and_evaluate(tmp_path: Path, data: Path, name: str, train_flags: list[str],
                       eval_flags: list[str]) -> dict:
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "-d", name, "--data-dir", str(data), "-c", str(run),
                 "--nolog", *train_flags]) == 0
    assert main(["evaluate", "-c", str(run), "-num_proposals", "2", "-sampling_timesteps", "2", "--p2",
                 "--out", str(tmp_path / "eval"), *eval_flags]) == 0
    return json.loads((tmp_path / "eval" / "report.json").read_text())


def check_report(report: dict) -> None:
    settings = report["settings"]
    for key in ("checkpoint", "preset", "hypotheses", "steps", "eta", "flip", "root_sources", "data",
                "selection_split", "select_on_test"):
        assert key in settings, key
    assert settings["preset"] == "tiny" and settings["hypotheses"] == 2 and settings["steps"] == 2
    assert settings["selection_split"] == "validation" and settings["select_on_test"] is False
    assert settings["data"]["subjects_test"] == ["S9", "S11"]
    assert "J-Best (ORACLE)" in report["results"] and "P-Best (ORACLE)" in report["results"]
    for label, metrics in report["results"].items():
        for name in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"):
            values = metrics[name]["per_step"]
            assert len(values) == 2 and all(np.isfinite(values)) and all(0 < v < 3000 for v in values), label
        # protocol: the reported value is the mean of the per-action values
        per_action = metrics["mpjpe"]["per_action"]
        assert metrics["mpjpe"]["final"] == pytest.approx(np.mean([v[-1] for v in per_action.values()]))
    results = report["results"]
    assert results["J-Best (ORACLE)"]["mpjpe"]["final"] <= results["P-Agg"]["mpjpe"]["final"] + 1e-6
    assert results["P-Agg"]["p_mpjpe"]["final"] <= results["P-Agg"]["mpjpe"]["final"]


def test_synthetic_mocap_pipeline_learns_and_renders(tmp_path, synthetic_dataset):
    data, name = synthetic_dataset  # prepared by `posediffusion prepare mocap` (tests/conftest.py)
    split = split_record(data, name)
    report = train_and_evaluate(
        tmp_path, data, name, ["-e", "3", "-b", "16", "-lr", "2e-3", "--max-frames-per-sequence", "27"],
        ["--root-source", "estimated,ground_truth", "--render", "--viz-subject", "S9",
         "--viz-action", next(m for m, s in split["motions"].items() if s == "S9"), "--viz-limit", "4"])
    check_report(report)
    assert set(report["results"]["P-Agg"]["mpjpe"]["per_action"]) == {
        m for m, s in split["motions"].items() if s in ("S9", "S11")}
    assert "J-Agg (GT root)" in report["results"]
    assert Path(report["render"]).is_file() and Path(report["render"]).stat().st_size > 0
    # the seed's inference form: `train -c RUN --evaluate NAME ...`
    assert main(["train", "-c", str(tmp_path / "run"), "--evaluate", "last", "-num_proposals", "1",
                 "-sampling_timesteps", "1", "--aggregations", "p-agg", "--out", str(tmp_path / "ev2")]) == 0
    again = json.loads((tmp_path / "ev2" / "report.json").read_text())
    assert again["settings"]["checkpoint_kind"] == "last" and list(again["results"]) == ["P-Agg"]
    # three epochs at a high learning rate: validation error must fall
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    scores = [float(r.split(",")[5]) for r in rows]
    assert len(scores) == 3 and scores[-1] < 0.8 * scores[0]


@pytest.mark.skipif(not CMU.is_file(), reason="../shared/data (CMU mocap) not present")
def test_real_cmu_motions_pipeline(tmp_path):
    data = prepare_dataset(CMU, tmp_path / "data", "e2e", REAL_MOTIONS)
    report = train_and_evaluate(
        tmp_path, data, "e2e", ["-k", "det", "--max-steps", "12", "-b", "16", "--max-frames-per-sequence",
                                "90"],
        ["-k", "det", "--max-frames-per-sequence", "60", "--per-action"])
    check_report(report)
    assert report["settings"]["data"]["keypoints"] == "det"
    assert report["settings"]["trained_steps"] == 12

