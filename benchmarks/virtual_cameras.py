"""Held-out virtual cameras: does a checkpoint still lift well away from the four Human3.6M cameras?

A model trained with camera augmentation (``DataConfig.camera_augmentation``) must not depend on the
studio cameras that ``prepare mocap`` placed every motion in front of. This benchmark scores checkpoints on
the same test frames seen four ways:

- Human3.6M camera ``--camera`` (54138969): the dataset's own 2D, ``det`` (detector-like) and ``gt`` (its
  projection includes that camera's lens distortion; the virtual cameras have none).
- M virtual cameras, no 2D noise: the world 3D of every test take (rebuilt from its ``--camera`` view with
  ``augment.world_pose``, as camera augmentation does) rendered with ``augment.render_window``.
- The same M virtual cameras with detector-like noise (``DetectorNoise``, scaled to the subject's size in
  pixels as in training).

Data: the CMU-derived test split (S9, S11, split by motion; one view per take), the first ``--frames``
frames of each take. Cameras: camera m is one draw of ``augment.VirtualCameraSampler`` (the training
distribution) from ``default_rng([--camera-seed, m])``: image size, focal length, principal point, aim (the
pixel where the subject's centre appears), azimuth, elevation, roll and distance. Every take is seen by the
same M cameras, each placed relative to the take's centre (the root's mean over the clip, as the sampler
does): same intrinsics and orientation, at the drawn distance, or further back along the same direction
when the take's whole clip would not fit the image there (the shortest distance that fits, with the
sampler's margin and minimum depth; counted as ``pushed back``). The noise of (take s, camera m) comes from
``default_rng([--camera-seed, 1, m, s])``. Cameras and noise depend only on the seed, so every checkpoint
sees the same 2D; every camera's intrinsics and extrinsics (per take) are in the JSON.

Scoring: ``inference.sample_sequences`` as ``evaluate.predict_sequences`` calls it (windows of the model's
length, stride = length, overlaps averaged; ``--batch-size`` 16 windows per call: 64, evaluate's default,
ran 2.3x slower per frame on this machine), H / K / flip from
``lift.FAST_SAMPLING`` (H=1, K=1, flip) unless overridden, the model's eta, sampler seed ``--seed`` per
condition; P-Agg (``aggregate.pose_aggregate``) of the root-relative output; MPJPE and P-MPJPE
(``posediffusion.metrics``) in mm, pooled over frames. Kinds of a virtual camera: landscape / portrait /
square image; focal short / long (focal / image width below / above the middle of the sampler's
``focal_ratio`` range); elevation low / high (below / above the middle of its ``elevation_deg`` range).

Outputs (``--out-dir``): ``<name>.json`` (settings, cameras, per-view errors, machine, command) and
``<name>.md`` (checkpoint x condition table, per-kind and per-camera breakdowns).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/virtual_cameras.py --data-dir /work/data_cmu \\
        --checkpoint src/posediffusion/assets/cmu_small:bundled --checkpoint PATH/last:augmented
    python benchmarks/virtual_cameras.py --smoke --out-dir /tmp/vc     # seconds; <name>_smoke.*
    python benchmarks/virtual_cameras.py --report-only                 # rebuild the .md from the JSON
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

H36M_CAMERA = "54138969"
#: Condition key -> table label, in table order.
CONDITIONS = {"h36m_gt": "H36M cam, GT 2D", "h36m_det": "H36M cam, det 2D",
              "virtual_clean": "virtual, no noise", "virtual_det": "virtual, det noise"}
VIRTUAL = ("virtual_clean", "virtual_det")
#: Kind axis -> its labels, in table order.
KINDS = {"image": ("landscape", "portrait", "square"), "focal": ("short", "long"),
         "elevation": ("low", "high")}
METRICS = ("mpjpe", "p_mpjpe")
#: What --smoke overrides: a seconds-long run of the whole path.
SMOKE = {"cameras": 2, "frames": 27, "max_sequences": 2, "hypotheses": 1, "steps": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_lift_benchmark_arguments(p, name="virtual_cameras", smoke=SMOKE)
    p.add_argument("--camera", default=H36M_CAMERA, help="the Human3.6M reference camera (and world source)")
    p.add_argument("--cameras", type=int, default=12, help="M virtual cameras")
    p.add_argument("--camera-seed", type=int, default=0, help="seed of the virtual cameras and their noise")
    p.add_argument("--eta", type=float, default=None, help="DDIM eta (default: the checkpoint's)")
    args = common.parse_lift_benchmark_arguments(p, argv, SMOKE)
    if args.cameras < 1:
        p.error("--cameras must be >= 1")
    return args


# ------------------------------------------------------------------------------------------- the views


@dataclass
class View:
    """One 2D input to lift and its ground truth: a take seen by one camera."""

    sequence: int
    camera: int | None  # virtual camera index; None = the Human3.6M camera
    keypoints: np.ndarray  # (F, J, 2) normalised screen coordinates
    pose_3d: np.ndarray  # (F, J, 3) camera-frame root-relative metres
    valid: np.ndarray  # (F,) bool


def load_takes(args: argparse.Namespace) -> dict[str, list]:
    """Test takes seen by ``--camera``, per 2D input (``gt``, ``det``), cut to their first ``--frames``."""
    return {keypoints: common.camera_takes(args, keypoints) for keypoints in ("gt", "det")}


def camera_kinds(camera: Any, sampler: Any) -> dict[str, str]:
    """The kind of a virtual camera on each axis of :data:`KINDS`."""
    image = ("landscape" if camera.width > camera.height else
             "portrait" if camera.height > camera.width else "square")
    focal_split, elevation_split = np.mean(sampler.focal_ratio), np.mean(sampler.elevation_deg)
    return {"image": image, "focal": "long" if camera.focal / camera.width >= focal_split else "short",
            "elevation": "high" if camera.elevation_deg >= elevation_split else "low"}


def camera_record(camera: Any) -> dict[str, Any]:
    """JSON of a ``VirtualCamera``: intrinsics, extrinsics (``X_cam = R^T (X_world - T)``), image size."""
    out = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in asdict(camera).items()}
    out["focal_ratio"] = camera.focal / camera.width
    return out


def fits(camera: Any, world: np.ndarray, sampler: Any) -> bool:
    """Whether every joint of ``world`` (F, J, 3) lies ``sampler.min_depth_m`` in front of ``camera`` and
    projects inside its image, ``sampler.margin`` x the shorter side from each border."""
    points = camera.to_camera_frame(world)  # (F, J, 3)
    if points[..., 2].min() < sampler.min_depth_m:
        return False
    pixels = camera.project(points).reshape(-1, 2)  # (F * J, 2)
    margin = sampler.margin * min(camera.width, camera.height)
    return bool((pixels.min(0) >= margin).all() and pixels[:, 0].max() <= camera.width - margin
                and pixels[:, 1].max() <= camera.height - margin)


def place_camera(nominal: Any, world: np.ndarray, sampler: Any) -> Any:
    """``nominal`` (drawn around the origin) moved to look at ``world`` (F, J, 3) from the same direction and
    distance, or from the shortest distance beyond it at which the clip fits (bisection to 1 mm).

    Moving the camera back along its direction keeps the subject's centre on the same pixel, and every
    constraint of :func:`fits` holds from some distance on (``VirtualCameraSampler.min_distance``).
    """
    centre = world[:, 0].mean(axis=0)  # (3,) the sampler's subject centre
    towards = nominal.T / nominal.distance_m  # (3,) unit vector from the centre to the camera

    def at(distance: float) -> Any:
        return replace(nominal, T=centre + distance * towards, distance_m=float(distance))

    near = far = nominal.distance_m
    while not fits(at(far), world, sampler):
        near, far = far, 2 * far
    while far - near > 1e-3:
        middle = 0.5 * (near + far)
        near, far = (near, middle) if fits(at(middle), world, sampler) else (middle, far)
    return at(far)


def virtual_cameras(args: argparse.Namespace, worlds: list[np.ndarray], sampler: Any
                    ) -> tuple[list, list[list]]:
    """(camera m as drawn around the origin, camera m placed for each take [m][take])."""
    # a single point at the origin fits every draw, so this is the first draw of camera m's generator
    nominal = [sampler.sample(np.zeros((1, 1, 3)), np.random.default_rng([args.camera_seed, m]))
               for m in range(args.cameras)]
    return nominal, [[place_camera(camera, world.astype(np.float64), sampler) for world in worlds]
                     for camera in nominal]


def build_views(args: argparse.Namespace, takes: dict[str, list], cameras: list[list]) -> dict[str, list]:
    """Condition -> the views to lift (:data:`CONDITIONS`)."""
    from posediffusion.data.augment import render_window, world_pose
    from posediffusion.data.mocap import DetectorNoise

    views: dict[str, list[View]] = {}
    for keypoints in ("gt", "det"):
        views[f"h36m_{keypoints}"] = [
            View(s, None, seq.keypoints_2d, seq.pose_3d, np.asarray(seq.valid, bool))
            for s, seq in enumerate(takes[keypoints])]
    noise = DetectorNoise()
    views["virtual_clean"], views["virtual_det"] = [], []
    for m, per_take in enumerate(cameras):
        for s, (seq, camera) in enumerate(zip(takes["det"], per_take, strict=True)):
            world, valid = world_pose(seq).astype(np.float64), np.asarray(seq.valid, bool)  # (F, J, 3)
            x2d, x3d = render_window(world, camera)
            views["virtual_clean"].append(View(s, m, x2d, x3d, valid))
            rng = np.random.default_rng([args.camera_seed, 1, m, s])
            x2d, x3d = render_window(world, camera, noise, rng)
            views["virtual_det"].append(View(s, m, x2d, x3d, valid))
    return views


# -------------------------------------------------------------------------------------- lift and score


def lift_p_agg(model: Any, views: list[View], args: argparse.Namespace, eta: float) -> list[np.ndarray]:
    """P-Agg (F, J, 3) metres of every view, the evaluation path of ``evaluate.predict_sequences``."""
    return common.p_agg_estimates(model, [v.keypoints for v in views], args, eta=eta)


def view_scores(estimate: np.ndarray, view: View) -> dict[str, Any]:
    """Frames scored and MPJPE / P-MPJPE (mm) averaged over them, for one view."""
    from posediffusion import metrics

    out: dict[str, Any] = {"sequence": view.sequence, "camera": view.camera, "frames": int(view.valid.sum())}
    for metric in METRICS:
        per_frame = np.asarray(getattr(metrics, metric)(estimate, view.pose_3d, reduction="none"))  # (F,)
        out[metric] = round(1000 * float(per_frame[view.valid].mean()), 3)
    return out


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Frame-weighted means of per-view scores: the errors pooled over all their frames."""
    frames = sum(r["frames"] for r in rows)
    out: dict[str, Any] = {"views": len(rows), "frames": frames}
    for metric in METRICS:
        out[metric] = round(sum(r[metric] * r["frames"] for r in rows) / max(frames, 1), 3)
    return out


def breakdowns(rows: list[dict[str, Any]], kinds: list[dict[str, str]]) -> dict[str, Any]:
    """Pooled scores of a virtual condition per kind (``kinds[m]``) and per camera."""
    by_kind = {}
    for axis, labels in KINDS.items():
        for label in labels:
            picked = [r for r in rows if kinds[r["camera"]][axis] == label]
            if picked:
                by_kind[f"{axis}:{label}"] = pooled(picked)
    by_camera = {str(m): pooled([r for r in rows if r["camera"] == m]) for m in range(len(kinds))}
    return {"by_kind": by_kind, "by_camera": by_camera}


def score_checkpoint(path: str, views: dict[str, list[View]], kinds: list[dict[str, str]],
                     args: argparse.Namespace) -> dict[str, Any]:
    """Every condition of one checkpoint: pooled scores, per-view rows, breakdowns, CPU seconds."""
    from posediffusion.checkpoint import load_model

    model, checkpoint = load_model(path)
    eta = float(model.config.diffusion.eta) if args.eta is None else args.eta
    data = checkpoint.run_config.get("data", {})
    out: dict[str, Any] = {
        "path": str(checkpoint.path), "preset": checkpoint.metadata.get("preset"),
        "weights": checkpoint.metadata.get("weights"), "eta": eta,
        "trained_steps": checkpoint.metadata.get("progress", {}).get("global_step"),
        "train_keypoints": data.get("keypoints"),
        "camera_augmentation": bool(data.get("camera_augmentation")),
        "augment_noise": data.get("augment_noise"), "conditions": {}}
    for condition, condition_views in views.items():
        cpu0 = time.process_time()
        estimates = lift_p_agg(model, condition_views, args, eta)
        rows = [view_scores(e, v) for e, v in zip(estimates, condition_views, strict=True)]
        result = {**pooled(rows), "cpu_seconds": round(time.process_time() - cpu0, 2), "rows": rows}
        if condition in VIRTUAL:
            result.update(breakdowns(rows, kinds))
        out["conditions"][condition] = result
        print(f"  {CONDITIONS[condition]:20s} MPJPE {result['mpjpe']:6.1f}  "
              f"P-MPJPE {result['p_mpjpe']:6.1f}  ({result['frames']} frames, "
              f"{result['cpu_seconds']:.1f} CPU-s)", flush=True)
    return out


# ---------------------------------------------------------------------------------------------- report


def markdown(payload: dict[str, Any]) -> str:
    """The tables: checkpoint x condition, then per kind and per camera (virtual cameras)."""
    s, results = payload["settings"], payload["checkpoints"]
    out = [f"# Virtual cameras ({payload['name']})\n",
           f"Test: CMU-derived S9+S11, {s['sequences']} takes, first {s['frames']} frames "
           f"({s['frames_per_camera']} frames per camera); {s['cameras']} virtual cameras "
           f"(VirtualCameraSampler, seed {s['camera_seed']}; {s['pushed_back_views']} of "
           f"{s['virtual_views']} views pushed back) vs Human3.6M camera {s['camera']}. H={s['hypotheses']}, "
           f"K={s['steps']}, flip={bool(s['flip'])}, sampler seed {s['seed']}; P-Agg; mm, pooled over "
           "frames. gap = virtual det - H36M det (MPJPE).\n",
           "| checkpoint | cam. aug. | " + " | ".join(f"{label} MPJPE / P-MPJPE" for label in
                                                      CONDITIONS.values()) + " | gap | x H36M det |",
           "|---|---|" + "---|" * (len(CONDITIONS) + 2)]
    for name, r in results.items():
        c = r["conditions"]
        cells = [f"{c[k]['mpjpe']:.1f} / {c[k]['p_mpjpe']:.1f}" for k in CONDITIONS]
        gap = c["virtual_det"]["mpjpe"] - c["h36m_det"]["mpjpe"]
        ratio = c["virtual_det"]["mpjpe"] / c["h36m_det"]["mpjpe"]
        out.append(f"| {name} | {'yes' if r['camera_augmentation'] else 'no'} | " + " | ".join(cells)
                   + f" | {gap:+.1f} | {ratio:.2f} |")
    out += ["\n## Per camera kind (virtual cameras)\n",
            "| checkpoint | kind | views | no noise MPJPE / P-MPJPE | det noise MPJPE / P-MPJPE |",
            "|---|---|---|---|---|"]
    for name, r in results.items():
        clean, det = r["conditions"]["virtual_clean"], r["conditions"]["virtual_det"]
        for kind in (f"{axis}:{label}" for axis, labels in KINDS.items() for label in labels):
            if kind in clean["by_kind"]:
                a, b = clean["by_kind"][kind], det["by_kind"][kind]
                out.append(f"| {name} | {kind} | {a['views']} | {a['mpjpe']:.1f} / {a['p_mpjpe']:.1f} "
                           f"| {b['mpjpe']:.1f} / {b['p_mpjpe']:.1f} |")
    out += ["\n## Per virtual camera (det noise MPJPE; the camera as drawn)\n",
            "| camera | image | focal/width | elevation | azimuth | roll | kinds "
            "| distance m (drawn; per take) | pushed back | " + " | ".join(results) + " |",
            "|---" * (9 + len(results)) + "|"]
    for m, cam in enumerate(payload["cameras"]):
        nominal = cam["nominal"]
        kinds = ", ".join(cam["kinds"].values())
        errors = " | ".join(f"{r['conditions']['virtual_det']['by_camera'][str(m)]['mpjpe']:.1f}"
                            for r in results.values())
        out.append(f"| {m} | {nominal['width']}x{nominal['height']} | {nominal['focal_ratio']:.2f} "
                   f"| {nominal['elevation_deg']:.0f} | {nominal['azimuth_deg']:.0f} "
                   f"| {nominal['roll_deg']:.0f} | {kinds} | {nominal['distance_m']:.1f}; "
                   f"{cam['distance_m'][0]:.1f}-{cam['distance_m'][1]:.1f} | {cam['pushed_back']} "
                   f"| {errors} |")
    cpu = sum(c["cpu_seconds"] for r in results.values() for c in r["conditions"].values())
    out.append(f"\nSampling CPU time: {cpu:.0f} s ({cpu / 60:.1f} min) for {len(results)} checkpoint(s), "
               f"one thread ({payload['machine']['cpu_model']}). Command: `{payload['command']}`\n")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ main


def camera_table(nominal: list, cameras: list[list], takes: list, kinds: list) -> list[dict[str, Any]]:
    """Per virtual camera: its draw (around the origin) and kinds, and its placement for every take."""
    out = []
    for m, per_take in enumerate(cameras):
        pushed = [c.distance_m > nominal[m].distance_m for c in per_take]
        distances = [c.distance_m for c in per_take]
        out.append({"nominal": camera_record(nominal[m]), "kinds": kinds[m], "pushed_back": int(sum(pushed)),
                    "distance_m": [min(distances), max(distances)],
                    "views": [{"take": seq.name, "pushed_back": p, **camera_record(c)}
                              for seq, c, p in zip(takes, per_take, pushed, strict=True)]})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    specs = common.start_lift_benchmark(args, markdown)
    if specs is None:
        return 0
    from posediffusion.data.augment import VirtualCameraSampler, world_pose

    takes = load_takes(args)
    sampler = VirtualCameraSampler()
    nominal, cameras = virtual_cameras(args, [world_pose(seq) for seq in takes["det"]], sampler)
    kinds = [camera_kinds(camera, sampler) for camera in nominal]
    views = build_views(args, takes, cameras)
    table = camera_table(nominal, cameras, takes["det"], kinds)
    payload: dict[str, Any] = {
        "name": args.name,
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("report_only", "name")},
                     "sequences": len(takes["det"]), "takes": [s.name for s in takes["det"]],
                     "frames_per_camera": sum(s.num_frames for s in takes["det"]),
                     "virtual_views": len(views["virtual_det"]),
                     "pushed_back_views": sum(c["pushed_back"] for c in table),
                     "sampler": asdict(sampler),
                     "noise": "DetectorNoise() defaults, scaled to the subject per render_window",
                     "kind_thresholds": {"focal_ratio": float(np.mean(sampler.focal_ratio)),
                                         "elevation_deg": float(np.mean(sampler.elevation_deg))}},
        "cameras": table, "checkpoints": {}, "machine": common.machine_info(),
        "command": common.command_line()}
    common.score_checkpoints(payload, specs, lambda path: score_checkpoint(path, views, kinds, args),
                             out_dir, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
