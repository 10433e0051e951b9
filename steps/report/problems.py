"""Which runs compare rank together: runs on one problem, whose final losses mean the same thing.

A problem is what :meth:`core.config.TrainConfig.problem_key` says makes two runs' losses
comparable: the same training rows (dataset, generator, target, split, scaling) and the same
loss (MSE for relu and linear, the log loss for logistic; a test function and its kappa). What a comparison
compares — the optimizer, the rate, the penalty, the network's width — is not part of it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from core.config import TEST_FUNCTIONS, TrainConfig, unused_options
from steps.run.story import dataset_name


@dataclass
class Problem:
    key: tuple
    label: str  # "rosenbrock", "seed · MSE", "diabetes · MSE · split 0.2"
    runs: list = field(default_factory=list)  # its runs (mlflow.entities.Run), newest first

    @property
    def slug(self) -> str:
        """The label as a folder name."""
        return re.sub(r"[^A-Za-z0-9]+", "-", self.label.replace("·", " ")).strip("-").lower() or "runs"


def config_of(params: dict) -> TrainConfig | None:
    """The config a run's logged params describe, or None (another tool's run)."""
    try:
        unused = unused_options(params)
        return TrainConfig.from_params({k: v for k, v in params.items() if k not in unused})
    except (TypeError, ValueError):
        return None


def label_of(cfg: TrainConfig | None, params: dict) -> str:
    if cfg is None:
        return f"{dataset_name(str(params.get('dataset', 'unknown')))} (params not gdlab's)"
    parts = [dataset_name(cfg.dataset)]
    if cfg.dataset in TEST_FUNCTIONS:
        if cfg.dataset == "ill_conditioned":
            parts.append(f"κ={cfg.condition_number:g}")
    else:
        parts.append("log loss" if cfg.model == "logistic" else "MSE")
        if cfg.validation_fraction:
            parts.append(f"split {cfg.validation_fraction:g}")
        if cfg.standardize:
            parts.append("standardized")
    return " · ".join(parts)


def group(runs: list) -> list[Problem]:
    """The runs by problem, in the order each problem's newest run comes (``runs`` are newest
    first); two problems that would read the same get a number."""
    problems: dict[tuple, Problem] = {}
    for run in runs:
        params = run.data.params
        cfg = config_of(params)
        key = cfg.problem_key() if cfg is not None else ("unreadable", str(params.get("dataset")))
        if key not in problems:
            problems[key] = Problem(key, label_of(cfg, params))
        problems[key].runs.append(run)
    seen: dict[str, int] = {}
    for p in problems.values():
        seen[p.label] = seen.get(p.label, 0) + 1
        if seen[p.label] > 1:
            p.label = f"{p.label} #{seen[p.label]}"
    return list(problems.values())


def data_stamp(cfg: TrainConfig) -> tuple | None:
    """What a cache of a config's data is kept by besides the config: a local file's size and
    modification time (the same config on a file edited since reads it again), else None."""
    try:
        st = os.stat(cfg.dataset.removeprefix("file://"))
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns)
