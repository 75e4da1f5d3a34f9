"""Speed-accuracy trade-off of sampling: P-Agg MPJPE against frames per CPU-second over H, K, flip and eta.

Every setting lifts the same test frames with the project's evaluation path (``inference.sample_sequences``,
as ``evaluate.predict_sequences`` calls it: windows of the model's length, stride = the window length unless
``--stride``, all windows of all sequences batched together, overlaps averaged) and the same seed, then takes
P-Agg (``aggregate.pose_aggregate``: the mean of the H hypotheses) of the model's root-relative output.

- Data: the CMU-derived dataset (``common.ensure_dataset``), test subjects S9+S11 (``--split validation``: the
  validation takes ``train`` holds out of S1-S8 by default, to choose a setting without the test split; no
  TCN point there), camera ``--camera`` only,
  ``--keypoints`` 2D (``det`` = detector-like; ``det,gt`` adds GT 2D), the first ``--frames`` frames of every
  test sequence (cut before windowing, as ``max_frames_per_sequence`` does for ``posediffusion evaluate``).
- Grid: H in ``--hypotheses`` x K in ``--steps`` x flip on/off at the checkpoint's eta; plus the eta study:
  H=``--eta-hypotheses``, flip on, K in ``--eta-steps``, eta in ``--etas``; plus the per-step error
  (``return_all_steps``) at K=``--per-step-steps``, for each eta of ``--etas`` (an extra, untimed pass).
- Speed: frames per CPU-second (``time.process_time`` of this 1-thread process) of the sampling alone: the
  windowing, the sampler calls (flip included), the merge and P-Agg; data and model loading excluded. Wall
  seconds are recorded too (other jobs on the cores stretch them, not the CPU time). One warm-up call first;
  a pass shorter than ``--min-cpu-seconds`` is repeated and the passes pooled. Per network evaluation the
  sampler is slower in large calls (windows x H x 2 rows with flip), so the rate depends on how many
  windows share a call (``--batch-size``; the number of windows is recorded).
- Scores (mm): MPJPE and P-MPJPE as ``posediffusion evaluate`` reports them (``ProtocolAccumulator``: per
  action, takes merged, then the mean over actions), and MPJPE pooled over frames.
- TCN reference: the VideoPose3D-style TCN (``tcn_reference.py``, RF 27, 256 channels, det 2D, the longest-
  trained point of ``--tcn-json``): its MPJPE and frames/CPU-s as recorded in that JSON (first 240 frames of
  the same sequences; speed on whole sequences), and, when its checkpoint is on disk, re-scored and re-timed
  here on the same frames as the diffusion settings. Speed ratios use the JSON's frames/CPU-s.

Outputs (``--out-dir``): ``<name>.json`` (every row, settings, machine, command; rewritten after every
setting, so ``--resume`` continues an interrupted sweep), ``<name>.md`` (the table and the answers) and
``<name>.png`` (MPJPE against frames/CPU-s, log x, the Pareto front of the diffusion settings, the TCN).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/speed_accuracy.py --data-dir /work/data_cmu --frames 27 \
        --extra-seeds 1,2                                  # the recorded run, ~20 CPU-min
    python benchmarks/speed_accuracy.py --only 5:5:1:1 --frames 27 --out-dir /tmp/sa   # size one setting
    python benchmarks/speed_accuracy.py --report-only       # rebuild .md and .png from the JSON
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TCN_JSON = common.RESULTS_DIR / "tcn" / "tcn_rf27_c256_det.json"
METRICS = ("mpjpe", "p_mpjpe")


@dataclass(frozen=True)
class Setting:
    """One sampler setting: H hypotheses, K DDIM steps, flip TTA, DDIM eta."""

    hypotheses: int
    steps: int
    flip: bool
    eta: float

    @property
    def key(self) -> str:
        return f"H{self.hypotheses}-K{self.steps}-{'flip' if self.flip else 'noflip'}-eta{self.eta:g}"


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--data-dir", default="/work/data_cmu", help="CMU-derived dataset (prepared when absent)")
    p.add_argument("--keypoints", default="det", help="comma-separated 2D inputs: det, gt")
    p.add_argument("--camera", default="54138969")
    p.add_argument("--frames", type=int, default=27, help="first N frames of every sequence")
    p.add_argument("--split", choices=("test", "validation"), default="test",
                   help="test takes (S9, S11) or the validation takes of the training subjects (to choose a "
                        "setting without the test split)")
    p.add_argument("--hypotheses", default="1,5,20", help="H values of the grid")
    p.add_argument("--steps", default="1,2,5,10", help="K values of the grid")
    p.add_argument("--flips", default="1,0", help="flip values of the grid (1 on, 0 off)")
    p.add_argument("--eta-hypotheses", type=int, default=5, help="H of the eta study (flip on)")
    p.add_argument("--eta-steps", default="2,5,10", help="K values of the eta study")
    p.add_argument("--etas", default="0,1", help="eta values of the eta study and the per-step curves")
    p.add_argument("--per-step-steps", type=int, default=10, help="K of the per-step curves (0: none)")
    p.add_argument("--only", default=None, metavar="H:K:FLIP:ETA[,...]",
                   help="run just these settings (sizing); no eta study or per-step curves")
    p.add_argument("--stride", type=int, default=None, help="window stride (default: the window length)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per sampler call (evaluate's default)")
    p.add_argument("--min-cpu-seconds", type=float, default=3.0,
                   help="repeat a setting's timed pass until the passes take this much CPU time")
    p.add_argument("--antithetic", choices=("model", "on", "off"), default="model",
                   help="hypotheses' noise in antithetic pairs for every setting (model: its config's)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed, the same for every setting")
    p.add_argument("--extra-seeds", default=None, metavar="SEED[,SEED]",
                   help="repeat the eta study (with its K=1 partner) and the per-step curves with these "
                        "seeds, on the first 2D input: the seed-to-seed spread of the step/eta differences")
    p.add_argument("--tolerance", type=float, default=0.05, help="accuracy target: MPJPE within this of best")
    p.add_argument("--tcn-json", default=str(TCN_JSON), help="TCN reference run (its longest point is used)")
    p.add_argument("--tcn-repeats", type=int, default=20, help="timed passes of the TCN over the frames")
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    p.add_argument("--name", default="speed_accuracy", help="output file stem")
    p.add_argument("--resume", action="store_true", help="keep the rows of an existing JSON with equal data")
    p.add_argument("--report-only", action="store_true", help="only rebuild the .md and .png from the JSON")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------- settings


def windows_total(sequences: list, frames: int, stride: int | None) -> int:
    """Windows the sampler lifts for ``sequences`` (``data.windows.window_starts``)."""
    from posediffusion.data.windows import window_starts

    return sum(len(window_starts(s.num_frames, frames, stride)) for s in sequences)


def grid(args: argparse.Namespace, model_eta: float) -> list[tuple[Setting, list[str]]]:
    """Every setting to time, once, with the studies it belongs to (``grid``, ``eta``)."""
    if args.only:
        out = []
        for item in args.only.split(","):
            h, k, flip, eta = item.split(":")
            out.append((Setting(int(h), int(k), flip not in ("0", "off", "false"), float(eta)), ["only"]))
        return out
    tags: dict[Setting, list[str]] = {}
    for h in parse_ints(args.hypotheses):
        for k in parse_ints(args.steps):
            for flip in parse_ints(args.flips):
                tags.setdefault(Setting(h, k, bool(flip), model_eta), []).append("grid")
    for k in parse_ints(args.eta_steps):
        for eta in (float(v) for v in args.etas.split(",") if v.strip()):
            tags.setdefault(Setting(args.eta_hypotheses, k, True, eta), []).append("eta")
    return list(tags.items())


# ----------------------------------------------------------------------------------------- data, model


def load_test(args: argparse.Namespace, keypoints: str) -> list:
    """Sequences of ``--split`` seen by ``--camera``, cut to their first ``--frames`` frames: the test takes,
    or the validation takes ``train`` holds out of the training subjects by default (``val_fraction`` 0.1,
    seed 0: the bundled model's)."""
    if args.split == "validation":
        return common.camera_takes(argparse.Namespace(**{**vars(args), "max_sequences": None}), keypoints,
                                   split="validation")
    from posediffusion.config import DataConfig
    from posediffusion.data.selection import load_sequences

    data = DataConfig(dataset=common.DATASET_NAME, data_dir=args.data_dir, keypoints=keypoints,
                      max_frames_per_sequence=args.frames).with_default_subjects()
    sequences = load_sequences(data, "test", camera_ids=(args.camera,))
    return [s for s in sequences if str(s.camera_id) == args.camera]


# ------------------------------------------------------------------------------------ sample and score


def sample_p_agg(model, sequences: list, setting: Setting, args: argparse.Namespace, seed: int,
                 all_steps: bool = False, antithetic: bool | None = None) -> tuple[list, float, float]:
    """Lift every sequence with ``setting``; P-Agg per sequence, (F, J, 3) or (K, F, J, 3) with ``all_steps``;
    ``antithetic`` overrides the model's hypothesis pairing (``None``: its config's).

    Returns (estimates, CPU seconds, wall seconds) of the sampling, windowing, merge and aggregation.
    """
    import torch

    from posediffusion.aggregate import pose_aggregate
    from posediffusion.inference import sample_sequences

    generator = torch.Generator().manual_seed(seed)
    estimates: list = [None] * len(sequences)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, merged in sample_sequences(model, [s.keypoints_2d for s in sequences],
                                      hypotheses=setting.hypotheses, steps=setting.steps, flip=setting.flip,
                                      generator=generator, stride=args.stride, batch_size=args.batch_size,
                                      eta=setting.eta, return_all_steps=all_steps, antithetic=antithetic):
        samples = merged.result("samples")  # (F, H, J, 3) | (F, K, H, J, 3)
        hyps = samples.permute(1, 2, 0, 3, 4) if all_steps else samples.permute(1, 0, 2, 3)
        estimates[i] = pose_aggregate(hyps)  # (H, F, J, 3) -> (F, J, 3); (K, H, F, ...) -> (K, F, J, 3)
    return estimates, time.process_time() - cpu0, time.perf_counter() - wall0


def score(estimates: list, sequences: list) -> dict[str, Any]:
    """MPJPE / P-MPJPE (mm) as ``posediffusion evaluate`` reports them, per step, and MPJPE pooled."""
    import torch

    from posediffusion.evaluate import ProtocolAccumulator

    accumulator = ProtocolAccumulator(METRICS)
    pooled, frames = 0.0, 0
    for est, seq in zip(estimates, sequences, strict=True):
        pred = est if est.dim() == 4 else est[None]  # (K, F, J, 3)
        gt = torch.from_numpy(seq.pose_3d).to(pred)
        valid = torch.from_numpy(np.asarray(seq.valid, dtype=bool))
        accumulator.add("P-Agg", seq.action_group, pred, gt, valid)
        error = torch.linalg.vector_norm(pred[-1] - gt, dim=-1).mean(-1)  # (F,) metres
        pooled, frames = pooled + float(error[valid].sum()), frames + int(valid.sum())
    results = accumulator.results()["P-Agg"]
    out = {metric: round(results[metric]["final"], 3) for metric in METRICS}
    out["mpjpe_pooled"] = round(1000 * pooled / max(frames, 1), 3)
    out["frames"] = frames
    if estimates and estimates[0].dim() == 4:
        out["per_step"] = {metric: [round(v, 3) for v in results[metric]["per_step"]] for metric in METRICS}
    return out


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run_setting(model, sequences: list, setting: Setting, args: argparse.Namespace, seed: int,
                min_cpu_seconds: float) -> dict[str, Any]:
    """Time and score one setting; a pass under ``min_cpu_seconds`` is repeated (same seed, same output)
    until the passes add up to it, and the rate is the total over all passes."""
    load_before = load()
    estimates, cpu, wall = sample_p_agg(model, sequences, setting, args, seed)
    passes = 1
    while cpu < min_cpu_seconds:
        _, more_cpu, more_wall = sample_p_agg(model, sequences, setting, args, seed)
        cpu, wall, passes = cpu + more_cpu, wall + more_wall, passes + 1
    frames = passes * sum(s.num_frames for s in sequences)
    row = {**asdict(setting), "key": setting.key, **score(estimates, sequences), "timed_passes": passes,
           "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
           "frames_per_cpu_second": round(frames / cpu, 3), "frames_per_wall_second": round(frames / wall, 3),
           "network_evals_per_window": setting.hypotheses * setting.steps * (2 if setting.flip else 1),
           "load_1min_before_after": [load_before, load()]}
    return row


def per_step_curve(model, sequences: list, setting: Setting, args: argparse.Namespace, seed: int,
                   final: dict[str, Any] | None) -> dict[str, Any]:
    """Every step's P-Agg error of ``setting`` (``return_all_steps``); checks the last step against the timed
    run's score."""
    estimates, cpu, wall = sample_p_agg(model, sequences, setting, args, seed, all_steps=True)
    out = {**asdict(setting), "key": setting.key, **score(estimates, sequences),
           "cpu_seconds_all_steps_pass": round(cpu, 3)}
    if final is not None:
        out["last_step_minus_timed_mpjpe_mm"] = round(out["mpjpe"] - final["mpjpe"], 6)
    return out


# -------------------------------------------------------------------------------------------- the TCN


def tcn_point(args: argparse.Namespace, sequences: list) -> dict[str, Any] | None:
    """The TCN's longest point from ``--tcn-json``, re-scored and re-timed on ``sequences`` when possible."""
    path = Path(args.tcn_json)
    if not path.is_file():
        return None
    run = common.read_json(path)
    point = max(run["points"], key=lambda p: p["budget_cpu_min"])
    first = point["scores"]["first240"]
    out: dict[str, Any] = {
        "json": str(path), "run": run["run"], "receptive_field": run["model"]["receptive_field"],
        "channels": run["model"]["channels"], "keypoints": run["data"]["keypoints"],
        "budget_cpu_min": point["budget_cpu_min"], "steps": point["steps"], "epochs": point["epochs"],
        "from_json": {"scope": "first240 (first 240 frames of the same 20 sequences)",
                      "mpjpe": first["mean_over_actions"]["mpjpe"],
                      "p_mpjpe": first["mean_over_actions"]["p_mpjpe"],
                      "mpjpe_pooled": first["pooled_frames_mpjpe"], "frames": first["frames"],
                      "frames_per_cpu_second": point["inference"]["frames_per_cpu_second"],
                      "speed_scope": f"{point['inference']['frames']} frames: whole cam54138969 sequences, "
                                     f"{point['inference']['batch']}"},
        "speed_source": "from_json"}
    checkpoint = Path(point["checkpoint"])
    if checkpoint.is_file():
        out["same_frames"] = tcn_same_frames(checkpoint, sequences, args.tcn_repeats)
    return out


def tcn_same_frames(checkpoint: Path, sequences: list, repeats: int) -> dict[str, Any]:
    """Score and time the TCN checkpoint on ``sequences`` (edge-padded per sequence, flip TTA, 1 thread)."""
    import torch

    import tcn_reference

    saved = torch.load(checkpoint, weights_only=False)
    weights = saved["model"]
    blocks = sum(1 for k in weights if k.startswith("layers_conv.") and k.endswith("weight")) // 2
    model = tcn_reference.TemporalLifter(filter_widths=(3,) * (1 + blocks),
                                         channels=int(weights["expand_conv.weight"].shape[0]))
    model.load_state_dict(weights)
    model.eval()
    estimates = [tcn_reference.predict_sequence(model, s.keypoints_2d) for s in sequences]  # also warm-up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        for seq in sequences:
            tcn_reference.predict_sequence(model, seq.keypoints_2d)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    frames = repeats * sum(s.num_frames for s in sequences)
    return {"checkpoint": str(checkpoint), **score(estimates, sequences), "repeats": repeats,
            "cpu_seconds": round(cpu, 4), "wall_seconds": round(wall, 4),
            "frames_per_cpu_second": round(frames / cpu, 1),
            "frames_per_wall_second": round(frames / wall, 1),
            "batch": "one sequence + its mirror (2 x (F + RF - 1) frames), as tcn_reference.inference_speed"}


# ------------------------------------------------------------------------------------------- analysis


def pareto_front(rows: list[dict[str, Any]]) -> list[str]:
    """Keys of the rows no other row beats on both MPJPE and frames/CPU-s."""
    front = []
    for r in rows:
        point = (r["mpjpe"], r["frames_per_cpu_second"])
        dominated = any(o["mpjpe"] <= point[0] and o["frames_per_cpu_second"] >= point[1]
                        and (o["mpjpe"], o["frames_per_cpu_second"]) != point for o in rows)
        if not dominated:
            front.append(r["key"])
    return front


def analyse(rows: list[dict[str, Any]], tcn_fps: float | None, tolerance: float) -> dict[str, Any]:
    """Best setting, fastest within ``tolerance`` of it, its ratio to the TCN, K > 1 against K = 1."""
    best = min(rows, key=lambda r: r["mpjpe"])
    near = [r for r in rows if r["mpjpe"] <= (1 + tolerance) * best["mpjpe"]]
    fast = max(near, key=lambda r: r["frames_per_cpu_second"])
    out: dict[str, Any] = {"best": best["key"], "best_mpjpe": best["mpjpe"],
                           "fastest_within_tolerance": fast["key"], "tolerance": tolerance,
                           "fast_mpjpe": fast["mpjpe"],
                           "fast_frames_per_cpu_second": fast["frames_per_cpu_second"],
                           "fast_mpjpe_ratio_to_best": round(fast["mpjpe"] / best["mpjpe"], 4),
                           "pareto_front": pareto_front(rows)}
    if tcn_fps:
        out["tcn_frames_per_cpu_second"] = tcn_fps
        out["fast_slowdown_vs_tcn"] = round(tcn_fps / fast["frames_per_cpu_second"], 1)
        out["meets_5x_speed_target"] = bool(tcn_fps / fast["frames_per_cpu_second"] <= 5)
    by = {(r["hypotheses"], r["steps"], r["flip"], r["eta"]): r for r in rows}
    steps_vs_one = []
    for (h, k, flip, eta), r in sorted(by.items()):
        one = by.get((h, 1, flip, eta)) or next((v for (h1, k1, f1, _), v in by.items()
                                                 if (h1, k1, f1) == (h, 1, flip)), None)
        if k > 1 and one is not None:
            steps_vs_one.append({"key": r["key"], "mpjpe": r["mpjpe"], "k1_mpjpe": one["mpjpe"],
                                 "difference_mm": round(r["mpjpe"] - one["mpjpe"], 3)})
    out["k_vs_k1"] = steps_vs_one
    return out


# ------------------------------------------------------------------------------------------- reporting


#: ``--split`` -> (name, where its takes come from), for the report.
SPLIT_WORDS = {"test": ("test", "S9, S11"), "validation": ("validation", "takes train holds out of S1-S8")}


def ratio_text(value: float) -> str:
    return f"{value:.2g}" if value >= 0.1 else f"1/{1 / value:,.0f}"


def markdown(payload: dict[str, Any]) -> str:
    """The table per 2D input, the TCN rows and the answers."""
    s = payload["settings"]
    tcn = payload.get("tcn_reference_fps")
    split, where = SPLIT_WORDS[s.get("split", "test")]  # JSONs from before --split are the test split's
    out = [f"P-Agg of checkpoint `{s['checkpoint']}`, camera {s['camera']}, first {s['frames']} frames of "
           f"each of the {s['sequences']} {split} sequences ({where}; {s['frames_total']} frames), window "
           f"stride {s['stride']}, {calls(s)}, seed {s['seed']}, 1 thread, hypotheses "
           f"{'in antithetic pairs' if s.get('antithetic') else 'independent'}. Errors in mm (mean over "
           "actions, as `posediffusion evaluate`); frames/CPU-s of the sampling (windowing, flip, merge, "
           "P-Agg); `MPJPE / best` = MPJPE over the lowest MPJPE of the input"
           + (f"; `speed / TCN` = frames/CPU-s over the TCN's ({tcn:,.0f}, from its JSON)." if tcn else "."),
           ""]
    for keypoints, part in payload["inputs"].items():
        rows, analysis = part["rows"], part["analysis"]
        best = analysis["best_mpjpe"]
        out += [f"**{keypoints} 2D**", "",
                "| H | K | flip | eta | MPJPE | P-MPJPE | frames/CPU-s | frames/wall-s | MPJPE / best "
                "| speed / TCN | Pareto |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        front = set(analysis["pareto_front"])
        for r in sorted(rows, key=lambda r: (r["hypotheses"], r["steps"], not r["flip"], r["eta"])):
            speed = ratio_text(r["frames_per_cpu_second"] / tcn) if tcn else "-"
            out.append(f"| {r['hypotheses']} | {r['steps']} | {'on' if r['flip'] else 'off'} | {r['eta']:g} "
                       f"| {r['mpjpe']:.1f} | {r['p_mpjpe']:.1f} | {r['frames_per_cpu_second']:,.1f} "
                       f"| {r['frames_per_wall_second']:,.1f} | {r['mpjpe'] / best:.3f} | {speed} "
                       f"| {'*' if r['key'] in front else ''} |")
        out.append("")
        out += answers(part) + [""]
        for curve in part.get("per_step", []):
            values = ", ".join(f"{v:.1f}" for v in curve["per_step"]["mpjpe"])
            out.append(f"- per-step P-Agg MPJPE, H={curve['hypotheses']}, K={curve['steps']}, flip, "
                       f"eta={curve['eta']:g} (k=1..{curve['steps']}): {values}")
        out.append("")
    tcn = payload.get("tcn")
    if tcn:
        j = tcn["from_json"]
        out.append(f"TCN reference ({tcn['run']}, RF {tcn['receptive_field']}, C {tcn['channels']}, "
                   f"{tcn['keypoints']} 2D, {tcn['budget_cpu_min']:g} CPU-min point, {tcn['epochs']:.0f} "
                   f"epochs): from its JSON, first 240 frames MPJPE {j['mpjpe']:.1f}, P-MPJPE "
                   f"{j['p_mpjpe']:.1f}, {j['frames_per_cpu_second']:,.0f} frames/CPU-s "
                   f"({j['speed_scope']}).")
        same = tcn.get("same_frames")
        if same:
            out.append(f"Re-scored here on the same {same['frames']} frames: MPJPE {same['mpjpe']:.1f}, "
                       f"P-MPJPE {same['p_mpjpe']:.1f}, {same['frames_per_cpu_second']:,.0f} frames/CPU-s "
                       f"(short sequences: {s['frames']} frames + {tcn['receptive_field'] - 1} padding "
                       "each).")
    return "\n".join(out + [""] + study_table(payload) + [""] + seed_mean_table(payload)).strip() + "\n"


def seed_mean_table(payload: dict[str, Any]) -> list[str]:
    """The settings run with every seed: MPJPE per seed, mean, and the fast choice on the means."""
    sm = payload.get("seed_mean")
    if not sm:
        return []
    tcn = payload.get("tcn_reference_fps")
    lines = [f"Seed check (seeds {', '.join(sm['seeds'])}, same frames; speed: the main seed's timing):",
             "", "| setting | " + " | ".join(f"seed {s}" for s in sm["seeds"])
             + " | mean | std | mean / best mean | frames/CPU-s | speed / TCN |",
             "|---|" + "---|" * (len(sm["seeds"]) + 5)]
    for r in sorted(sm["rows"], key=lambda r: r["mpjpe_mean"]):
        speed = ratio_text(r["frames_per_cpu_second"] / tcn) if tcn else "-"
        lines.append(f"| {r['key']} | " + " | ".join(f"{v:.1f}" for v in r["mpjpe_per_seed"])
                     + f" | {r['mpjpe_mean']:.1f} | {r['mpjpe_spread']:.1f} "
                     f"| {r['mpjpe_mean'] / sm['best_mpjpe_mean']:.3f} | {r['frames_per_cpu_second']:,.1f} "
                     f"| {speed} |")
    lines += ["", f"- on the seed means: best {sm['best']} ({sm['best_mpjpe_mean']:.1f} mm); fastest within "
              f"{100 * payload['settings']['tolerance']:.0f} %: {sm['fastest_within_tolerance']} "
              f"({sm['fast_mpjpe_mean']:.1f} mm, {sm['fast_frames_per_cpu_second']:,.1f} frames/CPU-s"
              + (f", {sm['fast_slowdown_vs_tcn']:,.0f}x slower than the TCN)" if tcn else ")")]
    return lines


def calls(s: dict[str, Any]) -> str:
    """How the windows were batched (frames/s depends on it: larger calls are slower per evaluation)."""
    if "windows_total" not in s:
        return f"up to {s['batch_size']} windows per sampler call"
    return f"{s['windows_total']} windows in calls of up to {s['batch_size']}"


def study_table(payload: dict[str, Any]) -> list[str]:
    """Steps x eta at the eta study's H (flip on), MPJPE per seed: the main run and ``--extra-seeds``."""
    keypoints = next(iter(payload["inputs"]))
    runs = {payload["settings"]["seed"]: payload["inputs"][keypoints]}
    runs.update({int(seed): part for seed, part in payload.get("seed_replicates", {}).items()})
    study = [r for r in runs[payload["settings"]["seed"]]["rows"] if "eta" in r.get("studies", [])]
    if not study:
        return []
    h = study[0]["hypotheses"]
    etas = sorted({r["eta"] for r in study}, reverse=True)
    columns = [(seed, eta) for seed in runs for eta in etas]
    lines = [f"Steps and eta ({keypoints} 2D, H={h}, flip on; P-Agg MPJPE mm; K=1 has no eta):", "",
             "| K | " + " | ".join(f"seed {seed}, eta {eta:g}" for seed, eta in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for k in sorted({r["steps"] for r in study} | {1}):
        cells = []
        for seed, eta in columns:
            match = [r for r in runs[seed]["rows"] if (r["hypotheses"], r["steps"], r["flip"]) == (h, k, True)
                     and (k == 1 or r["eta"] == eta)]
            cells.append(f"{match[0]['mpjpe']:.1f}" if match else "-")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")
    for seed, part in runs.items():
        for curve in part.get("per_step", []):
            values = ", ".join(f"{v:.1f}" for v in curve["per_step"]["mpjpe"])
            lines.append(f"- per-step MPJPE, seed {seed}, K={curve['steps']}, eta {curve['eta']:g} "
                         f"(k=1..{curve['steps']}): {values}")
    return lines


def answers(part: dict[str, Any]) -> list[str]:
    """The fast setting and the steps/eta answer in a few lines."""
    a = part["analysis"]
    lines = [f"- best: {a['best']} ({a['best_mpjpe']:.1f} mm); fastest within {100 * a['tolerance']:.0f} %: "
             f"{a['fastest_within_tolerance']} ({a['fast_mpjpe']:.1f} mm, "
             f"x{a['fast_mpjpe_ratio_to_best']:.3f}, {a['fast_frames_per_cpu_second']:,.1f} frames/CPU-s)"]
    if "fast_slowdown_vs_tcn" in a:
        lines[0] += (f", {a['fast_slowdown_vs_tcn']:,.0f}x slower than the TCN (target: 5x; "
                     f"{'met' if a['meets_5x_speed_target'] else 'not met'})")
    worse = [c for c in a["k_vs_k1"] if c["difference_mm"] > 0]
    lines.append(f"- K > 1 against K = 1 (same H, flip, eta): worse in {len(worse)} of {len(a['k_vs_k1'])} "
                 "settings; differences (mm): " + ", ".join(f"{c['key']} {c['difference_mm']:+.1f}"
                                                            for c in a["k_vs_k1"]))
    return lines


def plot(payload: dict[str, Any], path: Path) -> None:
    """MPJPE against frames/CPU-s (log x), per 2D input: with the TCN (left) and zoomed on the diffusion
    settings (right); one marker per setting, the Pareto front of the diffusion settings dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posediffusion.io_utils import atomic_path

    inputs = list(payload["inputs"])
    fig, axes = plt.subplots(len(inputs), 2, figsize=(16, 6.2 * len(inputs)), squeeze=False)
    s = payload["settings"]
    for (full, zoom), keypoints in zip(axes, inputs, strict=True):
        part = payload["inputs"][keypoints]
        for ax in (full, zoom):
            draw_settings(ax, part["rows"], set(part["analysis"]["pareto_front"]))
            limit = (1 + payload["settings"]["tolerance"]) * part["analysis"]["best_mpjpe"]
            ax.axhline(limit, color="gray", ls=":", lw=1,
                       label=f"best + {100 * payload['settings']['tolerance']:.0f} % (seed {s['seed']})")
        tcn = payload.get("tcn")
        if tcn and keypoints == tcn["keypoints"]:
            same = tcn.get("same_frames")
            label = (f"TCN RF {tcn['receptive_field']} C {tcn['channels']}, {tcn['budget_cpu_min']:g} "
                     f"CPU-min: speed from its JSON, MPJPE {'on these frames' if same else 'first240'}")
            full.scatter(payload["tcn_reference_fps"], (same or tcn["from_json"])["mpjpe"], marker="*", s=260,
                         color="tab:red", zorder=4, label=label)
            if same:
                full.scatter(same["frames_per_cpu_second"], same["mpjpe"], marker="*", s=200, zorder=4,
                             facecolors="none", edgecolors="tab:red",
                             label="TCN timed here on these short sequences (padding overhead)")
        full.set_title(f"{keypoints} 2D, {s['frames_total']} test frames, with the TCN", fontsize=10)
        zoom.set_title(f"{keypoints} 2D: the diffusion settings (marker size ~ K)", fontsize=10)
        full.legend(fontsize=7, loc="center left")
        zoom.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def draw_settings(ax, rows: list[dict[str, Any]], front: set[str]) -> None:
    """One marker per setting (colour H, shape flip, hollow eta 0, size K), the Pareto front, axes."""
    colours = {1: "tab:blue", 5: "tab:orange", 20: "tab:green"}
    for r in rows:
        colour = colours.get(r["hypotheses"], "tab:gray")
        hollow = r["eta"] == 0
        ax.scatter(r["frames_per_cpu_second"], r["mpjpe"], s=30 + 12 * r["steps"],
                   marker="o" if r["flip"] else "s", facecolors="none" if hollow else colour,
                   edgecolors=colour, linewidths=1.5, zorder=3)
        ax.annotate(f"K{r['steps']}" + (" eta0" if hollow else ""), (r["frames_per_cpu_second"], r["mpjpe"]),
                    textcoords="offset points", xytext=(5, 3), fontsize=7)
    points = sorted((r["frames_per_cpu_second"], r["mpjpe"]) for r in rows if r["key"] in front)
    ax.plot(*zip(*points, strict=True), color="black", lw=1.2, ls="--", zorder=2,
            label="Pareto front (diffusion settings)")
    for h, colour in colours.items():
        ax.scatter([], [], color=colour, label=f"H={h}")
    ax.scatter([], [], marker="o", color="gray", label="flip on")
    ax.scatter([], [], marker="s", color="gray", label="flip off")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="gray", label="eta 0 (else eta 1)")
    ax.set_xscale("log")
    ax.set_xlabel("frames per CPU-second (1 thread, log)")
    ax.set_ylabel("P-Agg MPJPE (mm)")
    ax.grid(True, which="both", alpha=0.3)


def write_outputs(payload: dict[str, Any], out_dir: Path, name: str) -> None:
    from posediffusion.io_utils import write_text_atomic

    for part in payload["inputs"].values():
        if part["rows"]:
            part["analysis"] = analyse(part["rows"], payload.get("tcn_reference_fps"),
                                       payload["settings"]["tolerance"])
    payload["seed_mean"] = seed_means(payload)
    common.write_json(out_dir / f"{name}.json", payload)
    if all(part["rows"] for part in payload["inputs"].values()):
        text = markdown(payload)
        write_text_atomic(out_dir / f"{name}.md", text)
        plot(payload, out_dir / f"{name}.png")
        print(text, flush=True)


# ------------------------------------------------------------------------------------------------ main


def sweep(model, sequences: list, settings: list[tuple[Setting, list[str]]], curves: list[Setting],
          seed: int, part: dict[str, Any], label: str, args: argparse.Namespace, save,
          min_cpu_seconds: float) -> None:
    """Time and score every setting missing from ``part["rows"]``, then every missing per-step curve."""
    done = {r["key"] for r in part["rows"]}
    for setting, tags in settings:
        if setting.key in done:
            continue
        row = {**run_setting(model, sequences, setting, args, seed, min_cpu_seconds), "studies": tags,
               "seed": seed}
        part["rows"].append(row)
        print(f"[{label}] {setting.key}: MPJPE {row['mpjpe']:.2f} P-MPJPE {row['p_mpjpe']:.2f} mm, "
              f"{row['frames_per_cpu_second']:.1f} frames/CPU-s ({row['cpu_seconds']:.1f} CPU-s, "
              f"{row['wall_seconds']:.1f} s wall, {row['timed_passes']} pass(es))", flush=True)
        save()
    done = {c["key"] for c in part["per_step"]}
    for setting in curves:
        if setting.key in done:
            continue
        timed = next((r for r in part["rows"] if r["key"] == setting.key), None)
        curve = {**per_step_curve(model, sequences, setting, args, seed, timed), "seed": seed}
        part["per_step"].append(curve)
        print(f"[{label}] per step {setting.key}: {curve['per_step']['mpjpe']}", flush=True)
        save()


def replicate_settings(args: argparse.Namespace, settings: list[tuple[Setting, list[str]]],
                       rows: list[dict[str, Any]]) -> list[tuple[Setting, list[str]]]:
    """What ``--extra-seeds`` repeats: the eta study with its K = 1 partner, then the candidates of the fast
    choice: every setting of ``rows`` (the main seed's) at least as fast as the best one and within twice
    ``--tolerance`` of its MPJPE."""
    eta = [(s, tags) for s, tags in settings if "eta" in tags]
    partner = [(s, tags) for s, tags in settings
               if "grid" in tags and s.steps == 1 and s.flip and s.hypotheses == args.eta_hypotheses]
    best = min(rows, key=lambda r: r["mpjpe"])
    near = {r["key"] for r in rows if r["frames_per_cpu_second"] >= best["frames_per_cpu_second"]
            and r["mpjpe"] <= (1 + 2 * args.tolerance) * best["mpjpe"]}
    chosen = {s.key for s, _ in partner + eta}
    candidates = [(s, [*tags, "fast-check"]) for s, tags in settings if s.key in near and s.key not in chosen]
    return partner + eta + candidates


def seed_means(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Settings run with every seed: MPJPE per seed and mean, the best mean and the fastest setting within
    ``tolerance`` of it (speed from the main seed's timing)."""
    keypoints = next(iter(payload["inputs"]))
    main_rows = {r["key"]: r for r in payload["inputs"][keypoints]["rows"]}
    replicates = {seed: {r["key"]: r for r in part["rows"]}
                  for seed, part in payload.get("seed_replicates", {}).items()}
    if not replicates:
        return None
    seeds = [str(payload["settings"]["seed"]), *replicates]
    rows = []
    for key, row in main_rows.items():
        if all(key in per_seed for per_seed in replicates.values()):
            values = [row["mpjpe"]] + [per_seed[key]["mpjpe"] for per_seed in replicates.values()]
            rows.append({"key": key, "mpjpe_per_seed": values, "mpjpe_mean": round(float(np.mean(values)), 3),
                         "mpjpe_spread": round(float(np.std(values, ddof=1)), 3),
                         "frames_per_cpu_second": row["frames_per_cpu_second"]})
    best = min(rows, key=lambda r: r["mpjpe_mean"])
    tolerance = payload["settings"]["tolerance"]
    near = [r for r in rows if r["mpjpe_mean"] <= (1 + tolerance) * best["mpjpe_mean"]]
    fast = max(near, key=lambda r: r["frames_per_cpu_second"])
    out = {"seeds": seeds, "rows": rows, "best": best["key"], "best_mpjpe_mean": best["mpjpe_mean"],
           "fastest_within_tolerance": fast["key"], "fast_mpjpe_mean": fast["mpjpe_mean"],
           "fast_frames_per_cpu_second": fast["frames_per_cpu_second"],
           "note": "only settings run with every seed; the best over them (the grid's best is among them)"}
    if payload.get("tcn_reference_fps"):
        out["fast_slowdown_vs_tcn"] = round(payload["tcn_reference_fps"] / fast["frames_per_cpu_second"], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    json_path = out_dir / f"{args.name}.json"
    if args.report_only:
        write_outputs(common.read_json(json_path), out_dir, args.name)
        return 0
    common.pin_threads(1)
    import torch

    from posediffusion.lift import load_lifter

    common.ensure_dataset(args.data_dir, seed=0)
    model, source = load_lifter(args.checkpoint)
    model.eval()
    if args.antithetic != "model":
        model.config = model.config.with_overrides(antithetic=args.antithetic == "on")
    model_eta = float(model.config.diffusion.eta)
    settings = grid(args, model_eta)
    etas = [float(v) for v in args.etas.split(",") if v.strip()]
    curves = [] if args.only or not args.per_step_steps else [
        Setting(args.eta_hypotheses, args.per_step_steps, True, eta) for eta in etas]
    keypoint_inputs = [k for k in args.keypoints.split(",") if k]
    sequences = {k: load_test(args, k) for k in keypoint_inputs}
    first = sequences[keypoint_inputs[0]]
    data_settings = {"checkpoint": source, "data_dir": args.data_dir, "split": args.split,
                     "camera": args.camera, "frames": args.frames, "seed": args.seed,
                     "batch_size": args.batch_size,
                     "stride": args.stride or model.config.model.frames, "keypoints": keypoint_inputs,
                     "antithetic": bool(model.config.diffusion.antithetic)}
    payload: dict[str, Any] = {}
    if args.resume and json_path.is_file():
        old = common.read_json(json_path)
        if {k: old["settings"].get(k) for k in data_settings} == data_settings:
            payload = old
            if "invocations" not in old and "run_seconds" in old:  # a run from before the list existed
                old["invocations"] = [{"command": old["command"], **old["run_seconds"],
                                       "started_utc": old["machine"]["date_utc"]}]
            print(f"resuming: {sum(len(p['rows']) for p in old['inputs'].values())} rows kept", flush=True)
    payload.setdefault("inputs", {k: {"rows": [], "per_step": []} for k in keypoint_inputs})
    payload.setdefault("seed_replicates", {})
    payload["settings"] = {**data_settings, "tolerance": args.tolerance, "model_eta": model_eta,
                           "window_frames": model.config.model.frames, "sequences": len(first),
                           "frames_total": sum(s.num_frames for s in first),
                           "windows_total": windows_total(first, model.config.model.frames, args.stride),
                           "sequence_names": [s.name for s in first], "threads": torch.get_num_threads(),
                           "studies": {s.key: tags for s, tags in settings},
                           "per_step_curves": [c.key for c in curves], "extra_seeds": args.extra_seeds}
    payload["machine"] = common.machine_info()
    payload["command"] = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    payload["timing"] = ("time.process_time / time.perf_counter around inference.sample_sequences + P-Agg "
                         "(data and model loading excluded), one warm-up call before the first setting")
    start, cpu_start = time.monotonic(), time.process_time()
    # the TCN's recorded scores are the test split's: no reference point on validation takes
    tcn = tcn_point(args, sequences["det"]) if "det" in sequences and args.split == "test" else None
    if tcn:
        payload["tcn"], payload["tcn_reference_fps"] = tcn, tcn["from_json"]["frames_per_cpu_second"]
        print(f"TCN: {tcn.get('same_frames', tcn['from_json'])}", flush=True)
    sample_p_agg(model, first[:2], Setting(1, 1, True, model_eta), args, args.seed)  # warm-up (unrecorded)

    def save() -> None:
        common.write_json(json_path, payload)

    for keypoints in keypoint_inputs:
        sweep(model, sequences[keypoints], settings, curves, args.seed, payload["inputs"][keypoints],
              keypoints, args, save, args.min_cpu_seconds)
    main_rows = payload["inputs"][keypoint_inputs[0]]["rows"]
    for seed in (int(v) for v in (args.extra_seeds or "").split(",") if v.strip()):
        part = payload["seed_replicates"].setdefault(str(seed), {"rows": [], "per_step": []})
        # accuracy only: the speed of a setting is the main seed's timing, so no repeated passes
        sweep(model, first, replicate_settings(args, settings, main_rows), curves, seed, part,
              f"{keypoint_inputs[0]} seed {seed}", args, save, 0.0)
    seconds = {"wall": round(time.monotonic() - start, 1), "cpu": round(time.process_time() - cpu_start, 1)}
    payload.setdefault("invocations", []).append({"command": payload["command"], **seconds,
                                                   "started_utc": payload["machine"]["date_utc"]})
    payload["run_seconds"] = {k: round(sum(i[k] for i in payload["invocations"]), 1) for k in seconds}
    write_outputs(payload, out_dir, args.name)
    print(f"speed-accuracy sweep: {seconds['wall']:.0f} s wall, {seconds['cpu']:.0f} CPU-s "
          f"(all invocations: {payload['run_seconds']['wall']:.0f} s, {payload['run_seconds']['cpu']:.0f} "
          "CPU-s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
