"""VideoPose3D-style temporal-convolution reference lifter (Pavllo et al. 2019), trained on a CPU-time budget.

A benchmark reference, not package API. It uses the project's data, split and scoring unchanged:

- data: the CMU-derived dataset of ``posediffusion prepare mocap`` (``benchmarks/common.ensure_dataset``),
  loaded with ``posediffusion.data.selection.load_sequences`` (train S1,S5,S6,S7,S8 / test S9,S11, all
  4 cameras for training), validation carved with ``split_validation`` (``--val-fraction``, default 0 as in
  ``benchmarks/accuracy.py``); input = ``Sequence.keypoints_2d`` (normalised 2D, ``det`` or ``gt``).
- model: dilated temporal convolutions (filter widths 3,3,3 -> receptive field 27; 3,3,3,3 -> 81;
  3,3,3,3,3 -> 243; dilations 3^i), ``--channels`` wide, batch norm, ReLU, dropout 0.25, residual blocks,
  regressing the centre frame's root-relative 3D joints. Trained with the paper's "optimised" single-frame
  scheme (strided convolutions, one output frame per sample), evaluated with the equivalent dilated model
  on whole edge-padded sequences (same weights).
- recipe: MPJPE loss, Adam (amsgrad, as VideoPose3D's code) lr 1e-3, x0.95 per epoch, batch 1024 frames,
  flip augmentation (every (frame, flip) pair once per epoch, as VideoPose3D's generator), flip test-time
  augmentation.
- scoring: ``posediffusion.evaluate.ProtocolAccumulator`` (per action, then mean over actions) with
  ``posediffusion.metrics``; scopes ``first240`` (camera 54138969, first 240 frames of every test sequence:
  the frames of ``benchmarks/RESULTS.md``), ``cam54138969`` (every frame of those sequences) and
  ``all_cameras`` (every test frame of all 4 cameras).

Learning curve: the model is scored and saved at ``--points`` CPU-minutes of training (``time.process_time``
of this 1-thread process, evaluation excluded). Results go to ``benchmarks/results/tcn/<run>.json``
(rewritten after every point), checkpoints to ``benchmarks/runs/tcn/<run>/`` (git-ignored).

    python benchmarks/tcn_reference.py --data-dir /work/data_cmu --keypoints det --receptive-field 27
    python benchmarks/tcn_reference.py ... --resume           # continue an interrupted run
    python benchmarks/tcn_reference.py --throughput            # training steps per CPU-second by width
    python benchmarks/tcn_reference.py --report                # results table of TCN_REFERENCE.md
    python benchmarks/tcn_reference.py --evaluate runs/.../cpu5min.pt --keypoints gt --name NAME
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

FILTER_WIDTHS = {27: (3, 3, 3), 81: (3, 3, 3, 3), 243: (3, 3, 3, 3, 3)}
EVAL_CAMERA = "54138969"
EVAL_FRAMES = 240
METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")
LABEL = "TCN"


# ------------------------------------------------------------------------------------------------ model


class TemporalLifter(nn.Module):
    """VideoPose3D ``TemporalModel`` / ``TemporalModelOptimized1f`` in one module (shared weights).

    ``forward(x, strided=True)`` is the optimised training model: convolution strides equal the filter
    widths, so a receptive-field window gives exactly one output frame. ``strided=False`` is the general
    model with dilations 3^i: a sequence of F + RF - 1 frames gives F output frames.
    """

    def __init__(self, joints: int = 17, filter_widths: tuple[int, ...] = (3, 3, 3), channels: int = 1024,
                 dropout: float = 0.25, bn_momentum: float = 0.1) -> None:
        super().__init__()
        if any(w % 2 == 0 for w in filter_widths):
            raise ValueError(f"filter widths must be odd, got {filter_widths}")
        self.joints, self.filter_widths = joints, tuple(filter_widths)
        self.expand_conv = nn.Conv1d(joints * 2, channels, filter_widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=bn_momentum)
        convs, bns, dilations = [], [], []
        dilation = filter_widths[0]
        for width in filter_widths[1:]:
            convs += [nn.Conv1d(channels, channels, width, bias=False), nn.Conv1d(channels, channels, 1,
                                                                                  bias=False)]
            bns += [nn.BatchNorm1d(channels, momentum=bn_momentum), nn.BatchNorm1d(channels,
                                                                                   momentum=bn_momentum)]
            dilations.append(dilation)
            dilation *= width
        self.layers_conv, self.layers_bn = nn.ModuleList(convs), nn.ModuleList(bns)
        self.dilations = tuple(dilations)
        self.drop = nn.Dropout(dropout)
        self.shrink = nn.Conv1d(channels, joints * 3, 1)

    @property
    def receptive_field(self) -> int:
        return 1 + sum((w - 1) * math.prod(self.filter_widths[:i]) for i, w in enumerate(self.filter_widths))

    def forward(self, x: torch.Tensor, strided: bool = False) -> torch.Tensor:
        """x (B, T, J, 2) normalised 2D -> (B, T - RF + 1, J, 3) metres (root joint not yet zeroed)."""
        b, t = x.shape[:2]
        h = x.reshape(b, t, -1).transpose(1, 2)  # (B, 2J, T)
        stride = self.filter_widths[0] if strided else 1
        h = F.conv1d(h, self.expand_conv.weight, stride=stride)  # (B, C, T1)
        h = self.drop(F.relu(self.expand_bn(h)))
        for i, width in enumerate(self.filter_widths[1:]):
            conv, point = self.layers_conv[2 * i], self.layers_conv[2 * i + 1]
            if strided:
                res = h[:, :, width // 2 :: width]  # (B, C, T1 / w)
                y = F.conv1d(h, conv.weight, stride=width)
            else:
                pad = (width - 1) * self.dilations[i] // 2
                res = h[:, :, pad : h.shape[2] - pad]  # (B, C, T1 - 2 pad)
                y = F.conv1d(h, conv.weight, dilation=self.dilations[i])
            y = self.drop(F.relu(self.layers_bn[2 * i](y)))
            h = res + self.drop(F.relu(self.layers_bn[2 * i + 1](point(y))))
        out = self.shrink(h)  # (B, 3J, T_out)
        return out.transpose(1, 2).reshape(b, -1, self.joints, 3)


def zero_root(pose: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) -> root joint (0) set to zero (the project's convention: root-relative output)."""
    from posediffusion.skeleton import zero_root as _zero_root

    return _zero_root(pose)


# ------------------------------------------------------------------------------------------------- data


class FrameSampler:
    """Receptive-field windows centred on training frames, edge-padded at sequence ends (VideoPose3D).

    All sequences are padded by RF//2 replicated edge frames and concatenated; a training item is
    (frame index, flip flag), and an epoch visits every (frame, flip) pair once in a random order.
    """

    def __init__(self, sequences: list, receptive_field: int) -> None:
        pad = receptive_field // 2
        padded, poses, starts, offset = [], [], [], 0
        for seq in sequences:
            kp = np.asarray(seq.keypoints_2d, dtype=np.float32)  # (F, J, 2)
            padded.append(np.concatenate([np.repeat(kp[:1], pad, 0), kp, np.repeat(kp[-1:], pad, 0)]))
            poses.append(np.asarray(seq.pose_3d, dtype=np.float32))  # (F, J, 3)
            starts.append(offset + np.arange(len(kp)))  # window of frame f starts at padded index f
            offset += len(kp) + 2 * pad
        self.x2d = torch.from_numpy(np.concatenate(padded))  # (sum F + 2 pad, J, 2)
        self.x3d = torch.from_numpy(np.concatenate(poses))  # (N, J, 3)
        self.starts = torch.from_numpy(np.concatenate(starts))  # (N,)
        self.offsets = torch.arange(receptive_field)  # (RF,)
        from posediffusion.skeleton import H36M_17

        self.perm = torch.from_numpy(H36M_17.flip_permutation())

    def __len__(self) -> int:
        return 2 * len(self.starts)

    def batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """items (B,) in [0, 2N): frame item % N, flipped if item >= N -> x2d (B, RF, J, 2), x3d (B, J, 3)."""
        from posediffusion.skeleton import flip_pose

        n = len(self.starts)
        frames, flipped = items % n, items >= n
        x2d = self.x2d[self.starts[frames, None] + self.offsets]  # (B, RF, J, 2)
        x3d = self.x3d[frames]  # (B, J, 3)
        if bool(flipped.any()):
            x2d[flipped] = flip_pose(x2d[flipped], self.perm)
            x3d[flipped] = flip_pose(x3d[flipped], self.perm)
        return x2d, x3d


def data_config(args: argparse.Namespace, max_frames: int | None = None) -> Any:
    from posediffusion.config import DataConfig

    config = DataConfig(dataset=common.DATASET_NAME, data_dir=args.data_dir, keypoints=args.keypoints,
                        val_fraction=args.val_fraction, max_frames_per_sequence=max_frames)
    return config.with_default_subjects()


def load_data(args: argparse.Namespace) -> tuple[list, list, dict[str, list]]:
    """(train, validation, test scopes) with the project's loaders, split and evaluation subsets."""
    from posediffusion.data.selection import load_sequences, split_validation

    train, val = split_validation(load_sequences(data_config(args), "train"), args.val_fraction, args.seed)
    test_all = load_sequences(data_config(args), "test")
    test_240 = load_sequences(data_config(args, EVAL_FRAMES), "test")
    scopes = {"first240": [s for s in test_240 if str(s.camera_id) == EVAL_CAMERA],
              "cam54138969": [s for s in test_all if str(s.camera_id) == EVAL_CAMERA],
              "all_cameras": test_all}
    if args.smoke:
        scopes = {"first240": scopes["first240"][:4]}
    return train, val, scopes


# ------------------------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def predict_sequence(model: TemporalLifter, keypoints: np.ndarray, flip: bool = True) -> torch.Tensor:
    """keypoints (F, J, 2) -> (F, J, 3) root-relative metres; flip TTA averages the mirrored prediction."""
    from posediffusion.skeleton import H36M_17, flip_pose

    pad = model.receptive_field // 2
    kp = torch.from_numpy(np.asarray(keypoints, dtype=np.float32))
    x = torch.cat([kp[:1].expand(pad, -1, -1), kp, kp[-1:].expand(pad, -1, -1)])  # (F + RF - 1, J, 2)
    perm = torch.from_numpy(H36M_17.flip_permutation())
    batch = torch.stack([x, flip_pose(x, perm)]) if flip else x[None]  # (2 | 1, F + RF - 1, J, 2)
    out = model(batch, strided=False)  # (2 | 1, F, J, 3)
    pred = 0.5 * (out[0] + flip_pose(out[1], perm)) if flip else out[0]
    return zero_root(pred)


def evaluate_scope(model: TemporalLifter, sequences: list) -> dict[str, Any]:
    """Protocol scores (mm; per action, then mean over actions) of one scope, plus pooled-frame MPJPE."""
    from posediffusion.evaluate import ProtocolAccumulator

    model.eval()
    accumulator = ProtocolAccumulator(METRICS)
    pooled, frames = 0.0, 0
    for seq in sequences:
        pred = predict_sequence(model, seq.keypoints_2d)  # (F, J, 3)
        gt = torch.from_numpy(seq.pose_3d).to(pred)
        valid = torch.from_numpy(np.asarray(seq.valid, dtype=bool))
        accumulator.add(LABEL, seq.action_group, pred[None], gt, valid)
        pooled += float(torch.linalg.vector_norm(pred - gt, dim=-1).mean(-1)[valid].sum())
        frames += int(valid.sum())
    results = accumulator.results()[LABEL]
    model.train()
    return {"mean_over_actions": {m: round(results[m]["final"], 3) for m in METRICS},
            "per_action_mpjpe": {a: round(v[-1], 2) for a, v in results["mpjpe"]["per_action"].items()},
            "pooled_frames_mpjpe": round(1000 * pooled / max(frames, 1), 3),
            "sequences": len(sequences), "frames": frames}


@torch.inference_mode()
def inference_speed(model: TemporalLifter, sequences: list) -> dict[str, Any]:
    """Frames per CPU-second of lifting whole sequences (one sequence + its mirror per batch), this thread."""
    model.eval()
    predict_sequence(model, sequences[0].keypoints_2d)  # warm-up
    frames, cpu0, wall0 = 0, time.process_time(), time.monotonic()
    for seq in sequences:
        predict_sequence(model, seq.keypoints_2d)
        frames += seq.num_frames
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    model.train()
    return {"frames": frames, "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
            "frames_per_cpu_second": round(frames / cpu, 1), "flip": True, "threads": torch.get_num_threads(),
            "batch": "one whole sequence + its mirror (2 x (F + RF - 1) frames)"}


# ---------------------------------------------------------------------------------------------- training


def machine_facts() -> dict[str, Any]:
    def run(cmd: str) -> str:
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "unavailable"

    # GNU nproc honours OMP_NUM_THREADS (1 here): ask without it, and for every CPU.
    return {**common.machine_info(), "nproc_cmd": run("env -u OMP_NUM_THREADS nproc"),
            "nproc_all": run("nproc --all"),
            "lscpu_head": run("lscpu | head").splitlines(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def run_name(args: argparse.Namespace) -> str:
    return args.name or f"tcn_rf{args.receptive_field}_c{args.channels}_{args.keypoints}"


def save_state(path: Path, model: TemporalLifter, optimizer: torch.optim.Optimizer, state: dict[str, Any]
               ) -> None:
    from posediffusion.io_utils import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, tmp)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train on the CPU-time budget, scoring and saving at every point; returns the final JSON payload."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    name = run_name(args)
    run_dir, out_path = Path(args.runs_dir) / name, Path(args.out_dir) / f"{name}.json"
    run_dir.mkdir(parents=True, exist_ok=True)
    common.ensure_dataset(args.data_dir, seed=0)
    train_seqs, val_seqs, scopes = load_data(args)
    sampler = FrameSampler(train_seqs, args.receptive_field)
    model = TemporalLifter(filter_widths=FILTER_WIDTHS[args.receptive_field], channels=args.channels,
                           dropout=args.dropout)
    assert model.receptive_field == args.receptive_field
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, amsgrad=True)
    rng = np.random.default_rng(args.seed)
    state: dict[str, Any] = {"train_cpu_seconds": 0.0, "steps": 0, "epoch": 0, "position": 0,
                             "order": rng.permutation(len(sampler)), "lr": args.lr, "losses": [],
                             "points_done": []}
    payload: dict[str, Any] = {
        "run": name, "reference": "VideoPose3D temporal convolutions (Pavllo et al. 2019), optimised 1-frame "
        "training", "settings": {k: v for k, v in vars(args).items()},
        "model": {"receptive_field": model.receptive_field, "filter_widths": list(model.filter_widths),
                  "dilations": [1, *model.dilations], "channels": args.channels, "dropout": args.dropout,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "data": {"dataset": common.DATASET_NAME, "keypoints": args.keypoints,
                 "train_sequences": len(train_seqs), "train_frames": len(sampler.starts),
                 "samples_per_epoch": len(sampler), "val_sequences": len(val_seqs),
                 "val_fraction": args.val_fraction,
                 "scopes": {k: {"sequences": len(v), "frames": int(sum(s.num_frames for s in v))}
                            for k, v in scopes.items()}},
        "machine": machine_facts(), "points": [], "started_utc": time.strftime("%Y-%m-%d %H:%M:%SZ",
                                                                                 time.gmtime())}
    last = run_dir / "last.pt"
    if args.resume and last.is_file():
        saved = torch.load(last, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        rng = np.random.default_rng([args.seed, state["epoch"], state["steps"]])
        previous = common.read_json(out_path) if out_path.is_file() else {}
        payload["points"] = previous.get("points", [])
        payload["resumed"] = [*previous.get("resumed", []), {"at_cpu_seconds": state["train_cpu_seconds"],
                                                             "steps": state["steps"],
                                                             "utc": time.strftime("%Y-%m-%d %H:%M:%SZ")}]
        print(f"[{name}] resumed at {state['train_cpu_seconds']:.0f} CPU-s, step {state['steps']}",
              flush=True)
    for group in optimizer.param_groups:
        group["lr"] = state["lr"]
    points = [p for p in args.points if p not in state["points_done"]]
    next_save = state["train_cpu_seconds"] + args.save_every_min * 60
    model.train()
    print(f"[{name}] {payload['model']['parameters']:,} parameters, {len(sampler):,} samples/epoch, "
          f"points {points} CPU-min", flush=True)
    while points:
        if state["position"] >= len(state["order"]):  # epoch end: VideoPose3D's lr decay
            state["epoch"] += 1
            state["position"] = 0
            state["order"] = rng.permutation(len(sampler))
            state["lr"] *= args.lr_decay
            for group in optimizer.param_groups:
                group["lr"] = state["lr"]
        cpu0 = time.process_time()
        items = torch.from_numpy(state["order"][state["position"] : state["position"] + args.batch_size])
        x2d, x3d = sampler.batch(items)  # (B, RF, J, 2), (B, J, 3)
        pred = zero_root(model(x2d, strided=True)[:, 0])  # (B, J, 3)
        loss = torch.linalg.vector_norm(pred - x3d, dim=-1).mean()  # MPJPE, metres
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["position"] += len(items)
        state["steps"] += 1
        state["train_cpu_seconds"] += time.process_time() - cpu0
        state["losses"].append(float(loss.detach()))
        if state["steps"] % 50 == 0:
            print(f"[{name}] step {state['steps']} epoch {state['epoch']} "
                  f"cpu {state['train_cpu_seconds']:.0f}s "
                  f"loss {1000 * np.mean(state['losses'][-50:]):.1f} mm lr {state['lr']:.2e}", flush=True)
        if state["train_cpu_seconds"] >= points[0] * 60:
            point = points.pop(0)
            payload["points"].append(score_point(args, model, optimizer, state, run_dir, point, val_seqs,
                                                 scopes))
            state["points_done"].append(point)
            payload["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
            payload["complete"] = not points
            common.write_json(out_path, payload)
            save_state(last, model, optimizer, state)
            next_save = state["train_cpu_seconds"] + args.save_every_min * 60
        elif state["train_cpu_seconds"] >= next_save:
            save_state(last, model, optimizer, state)
            next_save = state["train_cpu_seconds"] + args.save_every_min * 60
    return payload


def score_point(args: argparse.Namespace, model: TemporalLifter, optimizer: torch.optim.Optimizer,
                state: dict[str, Any], run_dir: Path, point: float, val_seqs: list, scopes: dict[str, list]
                ) -> dict[str, Any]:
    """Save the checkpoint of a budget point and score it (this CPU time is not training time)."""
    wall0, cpu0 = time.monotonic(), time.process_time()
    path = run_dir / f"cpu{point:g}min.pt"
    save_state(path, model, optimizer, state)
    entry: dict[str, Any] = {
        "budget_cpu_min": point, "train_cpu_seconds": round(state["train_cpu_seconds"], 1),
        "steps": state["steps"], "epochs": round(state["epoch"] + state["position"] / len(state["order"]), 3),
        "samples_seen": state["steps"] * args.batch_size, "lr": state["lr"],
        "train_loss_mm_last50": round(1000 * float(np.mean(state["losses"][-50:])), 2),
        "checkpoint": str(path), "utc": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "scores": {scope: evaluate_scope(model, seqs) for scope, seqs in scopes.items()},
    }
    if val_seqs:
        entry["validation"] = evaluate_scope(model, val_seqs)
    first = next(iter(scopes))
    entry["inference"] = inference_speed(model, scopes.get("cam54138969", scopes[first]))
    entry["eval_wall_seconds"] = round(time.monotonic() - wall0, 1)
    entry["eval_cpu_seconds"] = round(time.process_time() - cpu0, 1)
    s = entry["scores"][first]["mean_over_actions"]
    print(f"[{run_name(args)}] point {point:g} CPU-min: steps {state['steps']} epochs {entry['epochs']} "
          f"{first} MPJPE {s['mpjpe']:.1f} P-MPJPE {s['p_mpjpe']:.1f} mm; "
          f"{entry['inference']['frames_per_cpu_second']:.0f} frames/CPU-s", flush=True)
    return entry


# -------------------------------------------------------------------------------------------- throughput


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Training steps and samples per CPU-second (1 thread) by width and receptive field, random data."""
    torch.set_num_threads(args.threads)
    rows = []
    for rf in args.throughput_rf:
        for channels in args.throughput_channels:
            model = TemporalLifter(filter_widths=FILTER_WIDTHS[rf], channels=channels)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
            x2d, x3d = torch.randn(args.batch_size, rf, 17, 2), torch.randn(args.batch_size, 17, 3)
            steps, cpu0 = 0, 0.0
            while True:
                if steps == 1:
                    cpu0 = time.process_time()
                loss = torch.linalg.vector_norm(model(x2d, strided=True)[:, 0] - x3d, dim=-1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                steps += 1
                if steps > 1 and time.process_time() - cpu0 > args.throughput_seconds:
                    break
            cpu = time.process_time() - cpu0
            row = {"receptive_field": rf, "channels": channels,
                   "parameters": sum(p.numel() for p in model.parameters()),
                   "seconds_per_step": round(cpu / (steps - 1), 4),
                   "samples_per_cpu_second": round((steps - 1) * args.batch_size / cpu, 1)}
            print(row, flush=True)
            rows.append(row)
    payload = {"batch_size": args.batch_size, "rows": rows, "machine": machine_facts()}
    common.write_json(Path(args.out_dir) / "throughput.json", payload)
    return payload


# ------------------------------------------------------------------------------------------ re-evaluation


def evaluate_checkpoints(args: argparse.Namespace) -> dict[str, Any]:
    """Score saved budget-point checkpoints on ``--keypoints`` 2D (e.g. the det-trained model on GT 2D)."""
    torch.set_num_threads(args.threads)
    _, _, scopes = load_data(args)
    rows = []
    for path in map(Path, args.evaluate):
        saved = torch.load(path, weights_only=False)
        weights = saved["model"]
        channels = int(weights["expand_conv.weight"].shape[0])
        blocks = sum(1 for k in weights if k.startswith("layers_conv.") and k.endswith("weight")) // 2
        widths = (3,) * (1 + blocks)
        model = TemporalLifter(filter_widths=widths, channels=channels)
        model.load_state_dict(weights)
        state = saved["state"]
        rows.append({"checkpoint": str(path), "receptive_field": model.receptive_field, "channels": channels,
                     "train_cpu_seconds": round(state["train_cpu_seconds"], 1), "steps": state["steps"],
                     "scores": {scope: evaluate_scope(model, seqs) for scope, seqs in scopes.items()}})
        print(path, {k: v["mean_over_actions"]["mpjpe"] for k, v in rows[-1]["scores"].items()}, flush=True)
    payload = {"test_keypoints": args.keypoints, "rows": rows, "machine": machine_facts(),
               "note": "saved checkpoints re-scored on another 2D input (scoring as in the training runs)"}
    name = args.name or f"reeval_on_{args.keypoints}"
    common.write_json(Path(args.out_dir) / f"{name}.json", payload)
    return payload


# ------------------------------------------------------------------------------------------------ report

REPORT_START, REPORT_END = "<!-- tcn-table:start -->", "<!-- tcn-table:end -->"


def report_table(out_dir: Path) -> str:
    """Markdown table of every point of every ``tcn_*.json`` in ``out_dir`` (mm; mean over actions)."""
    lines = ["| run | 2D | RF | C | CPU-min | steps | epochs | MPJPE | P-MPJPE | MPJVE | pooled MPJPE "
             "| cam 54138969 all frames MPJPE / P-MPJPE | 4 cameras MPJPE / P-MPJPE | frames/CPU-s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(out_dir.glob("tcn_*.json")):
        run = common.read_json(path)
        model = run["model"]
        for point in run["points"]:
            sc = point["scores"]
            first = sc["first240"]["mean_over_actions"]
            means = {k: v["mean_over_actions"] for k, v in sc.items()}
            other = [f"{means[k]['mpjpe']:.1f} / {means[k]['p_mpjpe']:.1f}" if k in means else "-"
                     for k in ("cam54138969", "all_cameras")]
            lines.append(f"| {run['run']} | {run['data']['keypoints']} | {model['receptive_field']} "
                         f"| {model['channels']} | {point['budget_cpu_min']:g} "
                         f"({point['train_cpu_seconds'] / 60:.1f}) | {point['steps']} "
                         f"| {point['epochs']:.2f} "
                         f"| {first['mpjpe']:.1f} | {first['p_mpjpe']:.1f} | {first['mpjve']:.2f} "
                         f"| {sc['first240']['pooled_frames_mpjpe']:.1f} | {other[0]} | {other[1]} "
                         f"| {point['inference']['frames_per_cpu_second']:.0f} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, markdown: Path) -> None:
    """Print the table and put it between the markers of ``markdown`` (when the file has them)."""
    from posediffusion.io_utils import write_text_atomic

    table = report_table(out_dir)
    print(table)
    if markdown.is_file():
        text = markdown.read_text()
        if REPORT_START in text and REPORT_END in text:
            head, rest = text.split(REPORT_START, 1)
            tail = rest.split(REPORT_END, 1)[1]
            write_text_atomic(markdown, f"{head}{REPORT_START}\n{table}{REPORT_END}{tail}")


# -------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="/work/data_cmu", help="CMU-derived dataset (prepared when absent)")
    p.add_argument("--keypoints", default="det", choices=("det", "gt"), help="2D input (train and test)")
    p.add_argument("--receptive-field", type=int, default=27, choices=sorted(FILTER_WIDTHS))
    p.add_argument("--channels", type=int, default=1024, help="convolution width (paper: 1024)")
    p.add_argument("--dropout", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=1024, help="frames (samples) per step (paper: 1024)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-decay", type=float, default=0.95, help="per epoch")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="validation carved by split_validation (0 as in benchmarks/accuracy.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--points", type=float, nargs="+", default=[5, 15, 45, 120],
                   help="CPU-minutes of training at which to score and save")
    p.add_argument("--save-every-min", type=float, default=3.0, help="resume checkpoint every N CPU-min")
    p.add_argument("--resume", action="store_true", help="continue from runs/tcn/<run>/last.pt")
    p.add_argument("--name", default=None, help="run name (default tcn_rf<RF>_c<C>_<keypoints>)")
    p.add_argument("--runs-dir", default=str(common.BENCH_DIR / "runs" / "tcn"))
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR / "tcn"))
    p.add_argument("--smoke", action="store_true", help="4 test sequences, first240 scope only")
    p.add_argument("--throughput", action="store_true", help="only measure training speed by width")
    p.add_argument("--evaluate", nargs="+", default=None, metavar="CHECKPOINT",
                   help="only score these saved cpu<N>min.pt checkpoints on --keypoints 2D")
    p.add_argument("--report", action="store_true",
                   help="only rebuild the results table of benchmarks/TCN_REFERENCE.md from --out-dir")
    p.add_argument("--throughput-channels", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--throughput-rf", type=int, nargs="+", default=[27, 81])
    p.add_argument("--throughput-seconds", type=float, default=8.0)
    args = p.parse_args(argv)
    args.points = sorted(args.points)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        write_report(Path(args.out_dir), common.BENCH_DIR / "TCN_REFERENCE.md")
    elif args.evaluate:
        evaluate_checkpoints(args)
    elif args.throughput:
        throughput(args)
    else:
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
