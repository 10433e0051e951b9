"""Fingerprints that decide whether an earlier run can stand in for a new one (`main --reuse`).

A run is reused only when its entry point, its *resolved* configuration, the code
and the data are all the same. Comparing resolved, typed values (not the strings
MLflow logged) means ``-P learning_rate=1e-2`` and ``0.01`` match; hashing the
source files (not only the git commit) means uncommitted edits do not.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from core.config import TrainConfig
from core.data import Dataset

ROOT = Path(__file__).resolve().parents[2]  # the checkout: steps/run/fingerprint.py
CODE_GLOBS = ("core/**/*.py", "steps/**/*.py", "MLproject", "python_env.yaml")  # subfolders too

TAG_CONFIG, TAG_CODE, TAG_DATA = "gdlab.config_sha", "gdlab.code_sha", "gdlab.data_sha"


def _sha(chunks) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
        h.update(b"\0")
    return h.hexdigest()[:16]


def config_sha(cfg: TrainConfig) -> str:
    return _sha([json.dumps(cfg.params(), sort_keys=True).encode()])


def code_files(root: Path = ROOT) -> list[Path]:
    """The files whose bytes decide the code's fingerprint."""
    return sorted({p for g in CODE_GLOBS for p in root.glob(g) if p.is_file() and "__pycache__" not in p.parts})


def code_sha(root: Path = ROOT) -> str:
    return _sha(c for p in code_files(root) for c in (str(p.relative_to(root)).encode(), p.read_bytes()))


def data_sha(data: Dataset) -> str:
    arrays = [data.X_train, data.y_train, data.X_val, data.y_val]
    chunks = [np.ascontiguousarray(a).tobytes() if a is not None else b"-" for a in arrays]
    if data.classes is not None:  # the same 0/1 may stand for other labels
        chunks.append(json.dumps(data.classes).encode())
    return _sha([*chunks, json.dumps(data.feature_names).encode()])


def tags(cfg: TrainConfig, data: Dataset) -> dict[str, str]:
    return {TAG_CONFIG: config_sha(cfg), TAG_CODE: code_sha(), TAG_DATA: data_sha(data)}
