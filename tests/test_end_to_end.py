"""prepare mocap -> train (tiny) -> evaluate -> JSON report (+ render), through the command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posediffusion.cli import main

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CMU = SHARED_DATA / "mocap" / "cmu_h36m17_50hz.npz"
REAL_MOTIONS = "002_01_cc,002_02_cc,002_03_cc,003_01_cc,003_02_cc,007_01_cc,007_02_cc,007_03_cc,backflip_asf"

TEMPLATE_MM = np.array([
    [0, 0, 900], [-100, 0, 900], [-100, 0, 480], [-100, 0, 80], [100, 0, 900], [100, 0, 480], [100, 0, 80],
    [0, 0, 1130], [0, 0, 1380], [0, 0, 1480], [0, 0, 1600], [170, 0, 1350], [170, 0, 1080], [170, 0, 830],
    [-170, 0, 1350], [-170, 0, 1080], [-170, 0, 830]], dtype=np.float64)


def write_synthetic_mocap(path: Path, motions: int = 10, frames: int = 48) -> None:
    """A mocap npz in the shared layout (motion -> (F, 17, 3) mm, world, Z up) with swinging limbs."""
    t = np.arange(frames)[:, None] / 50.0
    out = {}
    for i in range(motions):
        pose = np.repeat(TEMPLATE_MM[None], frames, axis=0)
        swing = (100 + 20 * i) * np.sin(2 * np.pi * (0.5 + 0.2 * i) * t)
        pose[:, [13, 6], 1] += swing
        pose[:, [16, 3], 1] -= swing
        pose[:, :, 0] += (300 + 100 * i) * t
        out[f"{i:03d}_01_cc"] = pose.astype(np.float32)
    np.savez(path, **out)


def prepare(tmp_path: Path, mocap: Path, motions: str | None = None) -> dict:
    """`prepare mocap` into tmp_path/data as dataset "e2e"; returns the split record."""
    data = tmp_path / "data"
    command = ["prepare", "mocap", "--input", str(mocap), "--out", str(data), "--name", "e2e"]
    assert main(command + (["--motions", motions] if motions else [])) == 0
    return json.loads((data / "split_e2e.json").read_text())


def train_and_evaluate(tmp_path: Path, train_flags: list[str], eval_flags: list[str]) -> dict:
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["train", "--preset", "tiny", "-d", "e2e", "--data-dir", str(data), "-c", str(run),
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


def test_synthetic_mocap_pipeline_learns_and_renders(tmp_path):
    write_synthetic_mocap(tmp_path / "syn.npz")
    split = prepare(tmp_path, tmp_path / "syn.npz")
    report = train_and_evaluate(
        tmp_path, ["-e", "3", "-b", "16", "-lr", "2e-3", "--max-frames-per-sequence", "27"],
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
    prepare(tmp_path, CMU, REAL_MOTIONS)
    report = train_and_evaluate(
        tmp_path, ["-k", "det", "--max-steps", "12", "-b", "16", "--max-frames-per-sequence", "90"],
        ["-k", "det", "--max-frames-per-sequence", "60", "--per-action"])
    check_report(report)
    assert report["settings"]["data"]["keypoints"] == "det"
    assert report["settings"]["trained_steps"] == 12


def test_torchrun_two_processes_gloo(tmp_path):
    write_synthetic_mocap(tmp_path / "syn.npz", motions=10, frames=30)
    data = tmp_path / "data"
    assert main(["prepare", "mocap", "--input", str(tmp_path / "syn.npz"), "--out", str(data), "--name",
                 "syn"]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "posediffusion.cli", "train", "--preset", "tiny", "-d", "syn", "--data-dir", str(data),
               "-c", str(tmp_path / "run"), "-b", "4", "--max-steps", "3", "--device", "cpu", "--nolog"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metadata = json.loads((tmp_path / "run" / "last" / "metadata.json").read_text())
    assert metadata["world_size"] == 2 and metadata["progress"]["global_step"] == 3
    assert proc.stdout.count("trained 0 epoch(s), 3 steps") == 1  # rank 0 reports
