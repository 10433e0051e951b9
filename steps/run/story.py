"""What a run says about itself: its name, its description in the MLflow UI, and the lines the
terminal prints when it ends.

A standalone run is named for what it is (``adam lr=0.05 rosenbrock``), not for the command
that made it; its description (the ``mlflow.note.content`` tag, which the UI shows on the run's
page) says what it trains and how, and for the lesson's four entry points what the lesson
teaches with them.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from core.config import TEST_FUNCTIONS, TrainConfig
from core.data import printable

NOTE_TAG = "mlflow.note.content"
DEFAULT_STORE = "sqlite:///mlflow.db"  # MLflow 3's default tracking URI, what `mlflow ui` opens

# What the lesson says of each of its four techniques, and for l1/l2 what gdlab changed.
LESSON = {
    "sgd": "The lesson's plain gradient descent: w <- w - lr * grad, the full batch each epoch.",
    "adam": (
        "The lesson's Adam: each weight's step is scaled by running averages of its gradient (beta1) "
        "and squared gradient (beta2), so every weight moves at about lr per step whatever the scale "
        "of its gradient."
    ),
    "l1": (
        "The lesson's L1 penalty, lambda * sum|w|, which pulls weights to exactly zero. The lesson added it "
        "to the logged loss only, never to the gradient, so its weights were plain SGD's; gdlab minimizes the "
        "objective it logs (by default a proximal step after each update)."
    ),
    "l2": (
        "The lesson's L2 penalty, lambda * sum w^2, which shrinks every weight toward zero. The lesson added it "
        "to the logged loss only, never to the gradient, so its weights were plain SGD's; gdlab adds 2 * lambda "
        "* w to every gradient."
    ),
}


def dataset_name(dataset: str) -> str:
    """A dataset as a run's name shows it: a file's stem (``diabetes``), else the name itself."""
    if dataset in ("seed", "synthetic", *TEST_FUNCTIONS):
        return dataset
    return printable(PurePosixPath(dataset.split("?")[0].rstrip("/")).stem or dataset, 40)


def run_name(cfg: TrainConfig, technique: str) -> str:
    """``adam lr=0.05 rosenbrock``, ``l1 λ=0.01 lr=0.01 seed``, ``adamw l2 λ=0.1 lr=0.001 diabetes 16,8``."""
    what = cfg.optimizer if technique == "train" else technique
    parts = [what]
    if cfg.penalty != "none":
        parts += ([cfg.penalty] if cfg.penalty != technique else []) + [f"λ={cfg.lam:g}"]
    parts += [f"lr={cfg.learning_rate:g}", dataset_name(cfg.dataset)]
    if cfg.hidden:
        parts.append(",".join(map(str, cfg.hidden)))
    return " ".join(parts)


def description(cfg: TrainConfig, technique: str) -> str:
    """The run's page in the MLflow UI: what it trains, on what, how; the lesson's words for its four."""
    if cfg.dataset in TEST_FUNCTIONS:
        subject = f"the point (x, y) on the test function {cfg.dataset}"
    else:
        model = {"relu": "ReLU neuron", "linear": "linear model", "logistic": "logistic neuron"}[cfg.model]
        if cfg.hidden:
            model = f"network ({','.join(map(str, cfg.hidden))} hidden ReLU units) ending in a {model}"
        subject = f"a {model} on {dataset_name(cfg.dataset)}"
    penalty = "" if cfg.penalty == "none" else f", penalty {cfg.penalty} (lambda {cfg.lam:g})"
    schedule = "" if cfg.lr_schedule == "constant" else f" ({cfg.lr_schedule} schedule)"
    batches = "full batch" if cfg.batch_size == 0 else f"mini-batches of {cfg.batch_size}"
    text = (
        f"Trains {subject} with {cfg.optimizer} at learning rate {cfg.learning_rate:g}{schedule}{penalty}, "
        f"{cfg.epochs} epochs, {batches}."
    )
    lesson = LESSON.get(technique)
    return f"{lesson}\n\n{text}" if lesson else text


def summary(final: dict, epochs_run: int) -> str:
    """One line of the final numbers: ``loss 0.1278 · val_loss 0.13 · accuracy 0.95 after 100 epochs``."""
    shown = [(k.removeprefix("final_"), v) for k, v in final.items()]
    order = ("loss", "val_loss", "objective", "accuracy", "val_accuracy")
    numbers = [f"{k} {v:.4g}" for k in order for name, v in shown if name == k]
    return " · ".join(numbers) + f" after {epochs_run} epochs"


def where(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where to see a run: its page on a tracking server, or how to open one on a local store."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{page}"
    ui = "mlflow ui" if tracking_uri == DEFAULT_STORE else f"mlflow ui --backend-store-uri {tracking_uri}"
    return f"run `{ui}`, then open http://127.0.0.1:5000/{page}"
