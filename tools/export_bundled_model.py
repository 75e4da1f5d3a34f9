"""Export a trained checkpoint as the package's bundled model (weights + config, no training state).

Reproduce the bundled model (docs/bundled-model.md; the input npz is the CMU-derived motion file, in this
project's development setup at ../shared/data/ beside the checkout, not shipped):

    posediffusion prepare mocap --input ../shared/data/mocap/cmu_h36m17_50hz.npz \
        --out DATA --name cmu --seed 0
    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m posediffusion.cli train -d cmu --data-dir DATA -k det \
        --preset small -c RUN -b 8 -e 100000 --model joint_mask=true --joint-dropout 0.2 \
        --camera-augmentation --max-steps 24000 --val-every-steps 1000 --save-every-steps 250 --nolog
    python tools/export_bundled_model.py RUN --name best --weights ema \
        --out src/posediffusion/assets/cmu_small
"""

from __future__ import annotations

import argparse
import json

from posediffusion.checkpoint import load_model, save_checkpoint

CREDIT = ("The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with "
          "funding from NSF EIA-0196217.")


def training_data(run_config: dict) -> str:
    """One line on the data the run trained on, from its config."""
    data, train = run_config.get("data", {}), run_config
    text = (f"CMU mocap (shared/data/mocap) via `posediffusion prepare mocap --seed 0`, train subjects "
            f"{','.join(data.get('subjects_train') or ['S1', 'S5', 'S6', 'S7', 'S8'])} (test motions S9,S11 "
            f"held out), 2D: {data.get('keypoints', 'det')}")
    if data.get("camera_augmentation"):
        text += ", camera augmentation (a virtual camera per window, detector-like noise)"
    if train.get("joint_dropout"):
        text += f", joint dropout {train['joint_dropout']}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder or checkpoint folder")
    parser.add_argument("--name", default=None, help="best or last (default: best if present)")
    parser.add_argument("--weights", choices=("ema", "raw"), default="raw")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model, checkpoint = load_model(args.run, args.name, ema=args.weights == "ema")
    metadata = {
        "kind": "bundled", "preset": checkpoint.metadata.get("preset"),
        "source_checkpoint": str(checkpoint.path), "weights": args.weights,
        "trained": {"progress": checkpoint.metadata.get("progress"),
                    "selection": checkpoint.metadata.get("selection")},
        "training_data": training_data(checkpoint.run_config),
        "credit": CREDIT,
    }
    save_checkpoint(args.out, model, run_config=checkpoint.run_config, metadata=metadata)
    print(json.dumps(metadata, indent=1))


if __name__ == "__main__":
    main()
