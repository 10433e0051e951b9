"""`compare`: the table equals the runs' metrics, the pictures are real images, the HTML
renders on its own in headless Chromium, and every way of getting it wrong ends in a clear
message (never a traceback)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from mlflow.entities import Metric, Param

from steps.adam import adam
from steps.cli import mlproject
from steps.compare import compare
from steps.l1 import l1
from steps.l2 import l2
from steps.main import main
from steps.report import compare_figures
from steps.report.compare_runs import gather, local_artifact_dir, search
from steps.report.compare_table import build_table
from steps.sgd import sgd
from steps.train import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LESSON = {"sgd": sgd, "adam": adam, "l1": l1, "l2": l2}
OUTPUTS = {"compare.csv", "compare.md", "compare.html", "loss_curves.png", "trajectories.png", "trajectories.gif",
           "internals.png"}  # fmt: skip


def invoke(command, args=(), env=None):
    return CliRunner().invoke(command, [str(a) for a in args], env=env)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def make_lesson_runs(client, experiment_id: str) -> SimpleNamespace:
    """The lesson's four runs, a diverged run, a run that never logged a metric, and a
    `main` run (which compare must skip)."""
    for name, command in LESSON.items():
        result = invoke(command)
        assert result.exit_code == 0, f"{name}: {result.output}"
    diverged = invoke(train, ["--model", "linear", "--learning-rate", "1000"])
    assert diverged.exit_code == 1, diverged.output
    bare = client.create_run(experiment_id, tags={"technique": "sgd"}).info.run_id
    client.log_param(bare, "learning_rate", "0.01")
    client.set_terminated(bare)
    main = client.create_run(experiment_id, tags={"technique": "main"}).info.run_id
    client.set_terminated(main)
    runs = {r.info.run_id: r for r in client.search_runs([experiment_id])}
    by_technique = {r.data.tags["technique"]: rid for rid, r in runs.items() if rid not in (bare, main)}
    return SimpleNamespace(runs=runs, bare=bare, main=main, failed=by_technique["train"], ids=by_technique)


@pytest.fixture(scope="module")
def lesson_store(tmp_path_factory, open_store):
    """One store with the lesson's runs and one compare over them, shared by the tests that
    only read it (conftest's `tracking` setup, kept for the whole module)."""
    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        store = open_store(root, mp)
        uri, experiment_id, client = store.uri, store.experiment_id, store.client
        made = make_lesson_runs(client, experiment_id)
        out = root / "out"
        result = invoke(compare, ["--output-dir", out])
        yield SimpleNamespace(
            uri=uri, root=root, experiment_id=experiment_id, client=client, out=out, result=result, **vars(made)
        )
        while mlflow.active_run():
            mlflow.end_run()


@pytest.fixture
def lesson(lesson_store, monkeypatch):
    """The shared store, made current again (other tests point MLflow elsewhere)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", lesson_store.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", lesson_store.experiment_id)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(lesson_store.root)
    mlflow.set_tracking_uri(lesson_store.uri)
    return lesson_store


def weights_json(client, run_id: str, dst: Path) -> dict:
    return json.loads(Path(client.download_artifacts(run_id, "weights.json", str(dst))).read_text())


def compare_runs(client, experiment_id):
    return [r for r in client.search_runs([experiment_id]) if r.data.tags.get("technique") == "compare"]


# --------------------------------------------------------------------------- the table


def test_compare_prints_the_table_and_writes_every_output(lesson):
    result = lesson.result
    assert result.exit_code == 0, result.output
    # ... and a hidden manifest of them (a later compare removes only files it wrote itself).
    assert {p.name for p in lesson.out.iterdir()} == OUTPUTS | {".gdlab-compare"}
    for name in ("adam", "sgd", "l1", "l2", "FAILED", "no final metrics logged", "diverged"):
        assert name in result.output
    assert "best final_objective first" in result.output
    assert "Unchanged hyperparameters" in result.output


def test_csv_numbers_equal_the_runs_metrics_exactly(lesson, tmp_path):
    rows = read_csv(lesson.out / "compare.csv")
    training = set(lesson.runs) - {lesson.main}
    assert [r["run_id"] for r in rows if r["run_id"] not in training] == []
    assert {r["run_id"] for r in rows} == training  # the main run is skipped
    for row in rows:
        run = lesson.runs[row["run_id"]]
        metrics = run.data.metrics
        for key in ("final_loss", "final_objective", "train_time_s"):
            if key in metrics:
                assert float(row[key]) == metrics[key], (row["technique"], key)
            else:
                assert row[key] == "", (row["technique"], key)
        assert row["final_val_loss"] == ""  # no validation split on the seed data
        if "zero_weights" in metrics:
            assert int(row["zero_weights"]) == metrics["zero_weights"]
        assert row["status"] == run.info.status
        assert row["technique"] == run.data.tags["technique"]
        if "learning_rate" in run.data.params:
            assert float(row["learning_rate"]) == float(run.data.params["learning_rate"])
        if row["weights"]:
            assert json.loads(row["weights"]) == weights_json(lesson.client, row["run_id"], tmp_path)["weights"]
    by_id = {r["run_id"]: r for r in rows}
    assert json.loads(by_id[lesson.ids["sgd"]]["weights"]) == [0.3644996182867053, 0.5455535728846579]
    assert float(by_id[lesson.ids["l1"]]["lambda"]) == 0.01


def test_rows_are_sorted_best_first_with_failed_and_empty_runs_marked_last(lesson):
    rows = read_csv(lesson.out / "compare.csv")
    finished = [r for r in rows if r["final_loss"]]
    assert [float(r["final_loss"]) for r in finished] == sorted(float(r["final_loss"]) for r in finished)
    assert [r["technique"] for r in finished] == ["adam", "sgd", "l2", "l1"]
    assert rows[: len(finished)] == finished
    tail = {r["run_id"]: r for r in rows[len(finished) :]}
    assert set(tail) == {lesson.failed, lesson.bare}
    assert tail[lesson.failed]["status"] == "FAILED"
    assert "diverged" in tail[lesson.failed]["note"]
    assert tail[lesson.bare]["note"] == "no final metrics logged"


def test_markdown_holds_the_table_and_links_the_pictures(lesson):
    md = (lesson.out / "compare.md").read_text()
    assert "| run_id | technique |" in md
    assert sum(line.startswith("|") for line in md.splitlines()) == 2 + 6  # header, rule, six runs
    assert "![loss_curves.png](loss_curves.png)" in md
    assert "![trajectories.png](trajectories.png)" in md
    assert "![internals.png](internals.png)" in md


def test_internals_equal_the_logged_metrics_and_each_panel_draws_them(lesson):
    """internals.csv (one artifact a run) holds exactly the lr, grad_norm, update_norm and
    zero_weights metrics the run logged; the panel draws those numbers."""
    runs, _, _ = search(lesson.client, lesson.experiment_id, "", 100)
    gathered = [g for g in gather(lesson.client, runs) if g.internals]
    assert {g.technique for g in gathered} >= {"sgd", "adam", "l1", "l2"}
    for g in gathered:
        for name in ("lr", "grad_norm", "update_norm", "zero_weights"):
            history = {m.step: m.value for m in lesson.client.get_metric_history(g.run_id, name)}
            logged = {int(e): v for e, v in zip(g.internals["epoch"], g.internals[name], strict=True) if v == v}
            if name == "zero_weights":  # the per-epoch count (L1 only); the final count ends that curve at
                history.pop(int(g.metrics.get("epochs_run", -1)), None)  # epochs_run, or without L1 is a summary
                if g.technique != "l1" and "zero_weights" in g.metrics:  # at step 0: MLflow's bar chart
                    assert history.pop(0) == g.metrics["zero_weights"]
                assert bool(logged) == (g.technique == "l1")
            assert logged == history, (g.technique, name)
    from steps.report.compare_table import build_table

    table = build_table(gathered)
    fig = compare_figures.internals(table, compare_figures.styles(table))
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert [t.split()[0] for t in titles] == ["learning", "gradient", "update", "weights"]
    grad_axes = fig.axes[1]
    for i, g in enumerate(table.gathered):
        (line,) = [ln for ln in grad_axes.get_lines() if ln.get_label() == compare_figures.styles(table)[i].label]
        np.testing.assert_array_equal(line.get_ydata(), g.internals["grad_norm"])


# --------------------------------------------------------------------------- pictures


@pytest.mark.parametrize("name", ["loss_curves.png", "trajectories.png", "internals.png"])
def test_pictures_are_real_non_blank_images(lesson, name):
    from PIL import Image

    path = lesson.out / name
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.width >= 800
        assert img.height >= 500
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 100  # lines, contours, text: not a blank canvas


def test_trajectory_curves_equal_the_logged_loss_metric(lesson):
    """compare reads loss curves from trajectory.csv instead of the (slow) metric history:
    the two hold the same numbers."""
    runs, _, _ = search(lesson.client, lesson.experiment_id, "", 100)
    for g in gather(lesson.client, runs):
        history = lesson.client.get_metric_history(g.run_id, "loss")
        if not history:
            assert g.loss is None
            continue
        assert g.curve_source == "trajectory.csv", g.technique
        history.sort(key=lambda m: m.step)
        assert g.epochs.tolist() == [m.step for m in history]
        assert g.loss.tolist() == [m.value for m in history]


def test_surface_data_is_rebuilt_from_params_and_unreadable_csv_is_skipped(tmp_path):
    def load(params):
        return compare_figures.load_surface_data(compare_figures.config_of(params))

    X, y = load({"dataset": "seed"})
    assert X.tolist() == [[0.1, 0.2], [0.4, 0.5]]
    assert y.tolist() == [0.3, 0.9]
    params = {"dataset": "synthetic", "n_samples": "50", "n_features": "2", "n_informative": "2", "noise": "0.1"}
    X, y = load({**params, "validation_fraction": "0.2", "seed": "0"})
    assert X.shape == (40, 2)
    assert y.shape == (40,)
    assert load({"dataset": str(tmp_path / "gone.csv")}) is None
    assert load({"dataset": "https://example.invalid/data.csv"}) is None
    # A standardized run trained on the z-scores: its surface is drawn over them, in a panel of its own.
    X, _ = load({"dataset": "seed", "standardize": "true"})
    np.testing.assert_allclose(X, [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-15)
    raw, std = {"dataset": "seed"}, {"dataset": "seed", "standardize": "true"}
    assert compare_figures._surface_key(raw) != compare_figures._surface_key(std)
    assert compare_figures._surface_key(raw) == compare_figures._surface_key({**raw, "standardize": "false"})
    assert "standardized" in compare_figures._panel_title(std)

    # The surface is the model's own loss (plus lambda * R(w) for a penalty), grid point by grid point.
    from core.config import TrainConfig
    from core.models import Model
    from core.penalties import Penalty
    from core.training import loss_surface

    X, y = load({"dataset": "seed"})
    w0, w1 = np.array([-0.5, 0.1, 1.0]), np.array([0.2, 1.0])
    pen = Penalty("l1", 0.01)
    for kind in ("relu", "linear", "logistic"):
        model = Model(kind, 2, fit_intercept=True)
        cfg = TrainConfig(model=kind, fit_intercept=True, penalty="l1", lam=0.01)
        W0, W1, Z = loss_surface(cfg, X, y, w0, w1, 0.25)
        for i, j in np.ndindex(Z.shape):
            w = np.array([W0[i, j], W1[i, j]])
            expected = model.loss(np.append(w, 0.25), X, y) + pen.value(w)
            assert Z[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_local_artifact_folders_are_recognised(tmp_path):
    assert local_artifact_dir(tmp_path.as_uri()) == tmp_path
    assert local_artifact_dir(str(tmp_path)) == tmp_path
    assert local_artifact_dir("s3://bucket/x") is None
    assert local_artifact_dir("mlflow-artifacts:/1/abc/artifacts") is None


# --------------------------------------------------------------------------- the HTML report


def chromium() -> str | None:
    return shutil.which("chromium") or (os.path.exists("/usr/bin/chromium") and "/usr/bin/chromium") or None


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=90, check=False)


def test_html_report_is_self_contained(lesson):
    html = (lesson.out / "compare.html").read_text()
    # The loss curves and the paths are drawn live (tests/test_report_interactive.py); the rest embedded.
    assert html.count('<img src="data:image/png;base64,') == 1
    for needle in ('src="http', "<link", "@import"):
        assert needle not in html
    assert html.count("<script") == 3  # the data, plotly.js, interactive.js: nothing fetched
    assert "default-src 'none'" in html  # ... and the page's policy lets it fetch nothing
    assert '<table id="runs">' in html
    # every picture has its title and caption (internals.png was headed by its file name, uncaptioned)
    from html import escape as html_escape

    from steps.report.report_files import DRAWN

    for picture in DRAWN:
        if not (lesson.out / picture.name).exists():  # (sensitivity.png: for three learning rates or more)
            continue
        if picture.name in ("loss_curves.png", "trajectories.png"):
            assert picture.name in html  # named as the pictures of the plots above
            continue
        assert f"<h2>{picture.title}</h2>" in html
        assert html_escape(picture.caption) in html
    md = (lesson.out / "compare.md").read_text()
    assert DRAWN[2].caption in md


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(lesson, tmp_path):
    from PIL import Image, ImageStat

    page = (lesson.out / "compare.html").as_uri()
    dom = run_chromium(["--dump-dom", page], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = dom.stdout.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr") == 6
    for technique in ("adam", "sgd", "l1", "l2", "FAILED"):
        assert f">{technique}<" in body
    assert dom.stdout.count("<img") == 1  # internals.png; the rest are plots (tests/test_report_interactive.py)
    assert 'class="main-svg"' in dom.stdout  # plotly drew them

    shot = tmp_path / "shot.png"
    res = run_chromium(["--screenshot=" + str(shot), "--window-size=1200,900", page], tmp_path / "profile-shot")
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.exists()
    with Image.open(shot) as img:
        assert img.size == (1200, 900)
        rgb = img.convert("RGB")
        assert max(ImageStat.Stat(rgb).stddev) > 20  # text, table and a picture, not a blank page
        top = rgb.crop((0, 0, 1200, 300)).getcolors(maxcolors=1 << 16)
        assert top is None or len(top) > 50


# --------------------------------------------------------------------------- the compare run


def test_outputs_are_logged_to_a_compare_run_that_later_compares_skip(lesson, tmp_path):
    runs = compare_runs(lesson.client, lesson.experiment_id)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in run.data.tags
    logged = {a.path for a in lesson.client.list_artifacts(run.info.run_id)}
    assert logged == OUTPUTS | {"compare.json"}
    assert run.data.metrics["runs_compared"] == 6
    assert run.data.metrics["runs_failed"] == 1  # the never-logging run ended FINISHED...
    assert run.data.metrics["runs_without_metrics"] == 2  # ...but has no metrics, like the diverged one
    assert run.data.params["max_runs"] == "1000"
    logged_csv = Path(lesson.client.download_artifacts(run.info.run_id, "compare.csv", str(tmp_path)))
    assert logged_csv.read_bytes() == (lesson.out / "compare.csv").read_bytes()

    again = invoke(compare, ["--output-dir", tmp_path / "again"])
    assert again.exit_code == 0, again.output
    assert len(read_csv(tmp_path / "again" / "compare.csv")) == 6  # the first compare run is not a row


def test_filter_selects_runs_like_main_does(lesson, tmp_path):
    ids = ", ".join(f"'{lesson.ids[t]}'" for t in ("sgd", "adam"))
    result = invoke(compare, ["--filter", f"attributes.run_id IN ({ids})", "--output-dir", tmp_path])
    assert result.exit_code == 0, result.output
    assert {r["technique"] for r in read_csv(tmp_path / "compare.csv")} == {"sgd", "adam"}


# --------------------------------------------------------------------------- clear errors


def test_empty_experiment_is_a_clear_error(tracking, tmp_path):
    result = invoke(compare, ["--output-dir", tmp_path / "out"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "nothing to compare" in result.output
    assert "gdlab-test" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--experiment-name", "no-such-experiment"], "no experiment named 'no-such-experiment'"),
        (["--experiment-id", "987654"], "no experiment with id '987654'"),
        (["--parent-run-id", "0123456789abcdef0123456789abcdef"], "--parent-run-id: no run with id"),
        (["--filter", "metrics.final_loss <"], "--filter"),
        (["--max-runs", "0"], "--max-runs"),
    ],
)
def test_bad_selections_are_usage_errors(tracking, tmp_path, args, needle):
    tracking.client.set_terminated(tracking.client.create_run(tracking.experiment_id).info.run_id)
    result = invoke(compare, [*args, "--output-dir", tmp_path / "out"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert needle in result.output
    assert "Traceback" not in result.output


def test_unknown_experiment_from_the_environment_is_a_clear_error(tracking, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "nowhere")
    result = invoke(compare, ["--output-dir", tmp_path / "out"])
    assert result.exit_code == 2
    assert "MLFLOW_EXPERIMENT_NAME='nowhere'" in result.output
    assert "gdlab-test" in result.output  # the experiments that do exist


def test_unreachable_tracking_server_is_a_clear_error(tracking, monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
    start = time.monotonic()
    try:
        result = invoke(compare, ["--output-dir", tmp_path / "out"])
    finally:
        mlflow.set_tracking_uri(tracking.uri)
    assert time.monotonic() - start < 15  # no minutes of HTTP retries
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}" in result.output


def test_runs_without_any_final_metrics_are_listed_then_refused(tracking, tmp_path):
    client = tracking.client
    for _ in range(2):
        rid = client.create_run(tracking.experiment_id, tags={"technique": "sgd"}).info.run_id
        client.set_terminated(rid, "FAILED")
    result = invoke(compare, ["--output-dir", tmp_path / "out"])
    assert result.exit_code == 1
    assert "FAILED" in result.output  # the rows are shown...
    assert "none of the 2 runs has final metrics" in result.output  # ...and why nothing was compared
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- nesting


def test_parent_run_id_compares_its_children_and_nests_the_compare_run(tracking, tmp_path):
    client = tracking.client
    for command in (sgd, adam, l1):
        assert invoke(command).exit_code == 0
    parent = client.create_run(tracking.experiment_id, tags={"technique": "main"}).info.run_id
    runs = {r.data.tags["technique"]: r.info.run_id for r in client.search_runs([tracking.experiment_id])}
    for technique in ("sgd", "adam"):
        client.set_tag(runs[technique], "mlflow.parentRunId", parent)

    with mlflow.start_run(run_id=parent):  # as `main` does: compare called inside the parent
        result = invoke(compare, ["--parent-run-id", parent, "--output-dir", tmp_path])
        assert result.exit_code == 0, result.output
        assert mlflow.active_run().info.run_id == parent  # the parent is still the active run
    assert {r["technique"] for r in read_csv(tmp_path / "compare.csv")} == {"sgd", "adam"}
    (run,) = compare_runs(client, tracking.experiment_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.info.status == "FINISHED"

    # And from outside any run (a plain script call): nested under the parent all the same.
    result = invoke(compare, ["--parent-run-id", parent, "--output-dir", tmp_path / "2"])
    assert result.exit_code == 0, result.output
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in compare_runs(client, tracking.experiment_id))


def test_mlflow_run_id_in_the_environment_is_resumed(tracking, tmp_path):
    """Under `mlflow run -e compare` the run already exists (MLFLOW_RUN_ID): compare logs to it."""
    client = tracking.client
    assert invoke(sgd).exit_code == 0
    own = client.create_run(tracking.experiment_id, tags={"mlflow.project.entryPoint": "compare"}).info.run_id
    result = invoke(compare, ["--output-dir", tmp_path], env={"MLFLOW_RUN_ID": own})
    assert result.exit_code == 0, result.output
    run = client.get_run(own)
    assert run.data.tags["technique"] == "compare"
    assert run.info.status == "FINISHED"
    assert "compare.csv" in {a.path for a in client.list_artifacts(own)}
    assert len(read_csv(tmp_path / "compare.csv")) == 1  # its own run is not compared
    assert len(compare_runs(client, tracking.experiment_id)) == 1


# --------------------------------------------------------------------------- many runs, other data


def test_many_runs_without_trajectories_use_the_metric_history(tracking, tmp_path):
    """Runs with more than 10 parameters write no trajectory.csv: their curves come from the
    metric history; beyond a dozen runs the figure colours by technique. No 2-weight paths:
    no trajectories.png (and a stale one from an earlier compare is removed)."""
    client = tracking.client
    ts = 1_700_000_000_000
    for k in range(14):
        technique = ("sgd", "adam")[k % 2]
        rid = client.create_run(tracking.experiment_id, tags={"technique": technique}).info.run_id
        losses = [1.0 / (e + 1 + k) for e in range(20)]
        metrics = [Metric("loss", v, ts, e) for e, v in enumerate(losses)]
        metrics += [Metric("final_loss", losses[-1] * 0.9, ts, 20), Metric("final_objective", losses[-1] * 0.9, ts, 20)]
        params = [Param("learning_rate", str(0.001 * (k + 1))), Param("optimizer", technique), Param("epochs", "20")]
        client.log_batch(rid, metrics=metrics, params=params)
        client.set_terminated(rid)
    out = tmp_path / "out"
    out.mkdir()
    (out / "trajectories.png").write_bytes(b"stale")  # written by an earlier compare, which says so:
    (out / "internals.png").write_bytes(b"stale")  # (runs without an internals.csv draw none)
    (out / ".gdlab-compare").write_text("compare.csv\ntrajectories.png\ninternals.png\n")
    result = invoke(compare, ["--output-dir", out])
    assert result.exit_code == 0, result.output
    assert not (out / "trajectories.png").exists()
    assert not (out / "internals.png").exists()

    # A user's own file of that name (compare did not write it) is never deleted.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "trajectories.png").write_bytes(b"my picture")
    result = invoke(compare, ["--output-dir", mine])
    assert result.exit_code == 0, result.output
    assert (mine / "trajectories.png").read_bytes() == b"my picture"
    rows = read_csv(out / "compare.csv")
    assert len(rows) == 14
    runs, _, _ = search(client, tracking.experiment_id, "", 100)
    assert {g.curve_source for g in gather(client, runs)} == {"metric history"}
    assert "learning_rate" in result.output

    capped = invoke(compare, ["--max-runs", 5, "--output-dir", tmp_path / "capped"])
    assert capped.exit_code == 0, capped.output
    assert len(read_csv(tmp_path / "capped" / "compare.csv")) == 5
    assert "more than 5 runs matched" in capped.output


def test_csv_data_that_is_gone_draws_paths_without_a_surface(tracking, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b,y\n0.1,0.2,0.3\n0.4,0.5,0.9\n0.3,0.1,0.4\n")
    assert invoke(train, ["--dataset", data, "--model", "linear", "--fit-intercept", "true"]).exit_code == 0
    assert invoke(train, ["--dataset", data, "--optimizer", "adam", "--fit-intercept", "true"]).exit_code == 0
    data.unlink()
    out = tmp_path / "out"
    result = invoke(compare, ["--output-dir", out])
    assert result.exit_code == 0, result.output
    assert (out / "trajectories.png").read_bytes()[:8] == PNG_MAGIC
    rows = read_csv(out / "compare.csv")
    assert all(not math.isnan(float(r["bias"])) for r in rows)  # fit_intercept runs: bias column


# --------------------------------------------------------------------------- the command itself


def test_options_have_help_defaults_and_fit_the_mlproject():
    import click

    options = [p for p in compare.params if isinstance(p, click.Option) and p.expose_value and p.name != "help"]
    assert {o.opts[0] for o in options} == {
        "--experiment-name",
        "--experiment-id",
        "--parent-run-id",
        "--filter",
        "--output-dir",
        "--max-runs",
        "--problem",
    }
    for o in options:
        assert o.help, o.name
        assert o.show_default, o.name
        assert o.default is not None, o.name
    declared = {name: default for name, _flag, _type, default in mlproject.parameters(compare)}
    assert declared == {
        "experiment_name": "",
        "experiment_id": "",
        "parent_run_id": "",
        "filter": "",
        "output_dir": "compare_output",
        "max_runs": "1000",
        "problem": "newest",
    }


# --------------------------------------------------------------------------- legends (unit)


def fake_gathered(technique: str, params: dict, metrics: dict, i: int):
    from steps.report.compare_runs import Gathered

    info = SimpleNamespace(run_id=f"{i:032x}", run_name=technique, status="FINISHED", start_time=i)
    params = {k: str(v) for k, v in params.items()}
    data = SimpleNamespace(params=params, metrics=metrics, tags={"technique": technique})
    return Gathered(run=SimpleNamespace(info=info, data=data), technique=technique)


def test_a_sweeps_legend_names_every_value_that_differs_and_the_metric_that_orders_it():
    from steps.report.compare_table import build_table

    base = {"optimizer": "sgd", "penalty": "l1", "dataset": "synthetic", "validation_fraction": 0.2}
    grid = [(lr, lam) for lr in (0.001, 0.01, 0.1) for lam in (0.001, 0.01, 0.1)]
    gathered = [
        fake_gathered(
            "l1",
            {**base, "learning_rate": lr, "lambda": lam},
            {"final_loss": 1.0 + i, "final_objective": 1.5 + i, "final_val_loss": 9.0 - i},
            i,
        )
        for i, (lr, lam) in enumerate(grid)
    ]
    table = build_table(gathered)
    assert table.sort_metric == "final_val_loss"
    labels = [s.label for s in compare_figures.styles(table)]
    # Every value appears 3 times: none is "usual", so none is left out (lr=0.1 was, before).
    expected = [f"l1 lr={lr:g} λ={lam:g}" for lr, lam in reversed(grid)]  # lowest val loss first
    assert labels == expected
    assert compare_figures.order_note(table) == "runs in order of final_val_loss, lowest first"


def test_labels_keep_a_value_shared_by_most_runs_when_it_differs_from_the_others():
    from steps.report.compare_table import build_table

    rates = [0.01, 0.01, 0.01, 0.5]
    gathered = [
        fake_gathered("sgd", {"optimizer": "sgd", "penalty": "none", "learning_rate": lr}, {"final_loss": i}, i)
        for i, lr in enumerate(rates)
    ]
    labels = sorted(s.label.split(" #")[0] for s in compare_figures.styles(build_table(gathered)))
    assert labels == ["sgd lr=0.01"] * 3 + ["sgd lr=0.5"]


# --------------------------------------------------------------------------- the table and the pictures' data (unit)


def lesson_like(i, technique, params, final, path=None, weights=None, status="FINISHED"):
    final = {"final_objective": final["final_loss"], **final}
    g = fake_gathered(technique, {"dataset": "seed", "model": "relu", **params}, final, i)
    g.run.info.status = status
    g.epochs = np.arange(3.0)
    g.loss = np.array([1.0, 0.5, 0.25]) * (i + 1)
    if path is not None:
        g.path, g.weights = np.asarray(path, dtype=float), weights
    return g


def test_the_table_sorts_best_first_failed_last_and_shows_what_varies():
    from steps.report.compare_table import build_table

    gathered = [
        lesson_like(0, "sgd", {"optimizer": "sgd", "penalty": "none", "learning_rate": 0.01}, {"final_loss": 0.3}),
        lesson_like(1, "adam", {"optimizer": "adam", "penalty": "none", "learning_rate": 0.01}, {"final_loss": 0.1}),
        lesson_like(
            2, "l1", {"optimizer": "sgd", "penalty": "l1", "lambda": 0.01, "learning_rate": 0.1},
            {"final_loss": 0.01}, status="FAILED",
        ),
    ]  # fmt: skip
    table = build_table(gathered)
    df = table.frame
    assert df["technique"].tolist() == ["adam", "sgd", "l1"]  # best final_objective first, the failed run last
    assert [g.technique for g in table.gathered] == ["adam", "sgd", "l1"]  # the same order
    assert table.sort_metric == "final_objective"  # what main and sweep name their best by
    assert table.shown[:6] == ["run_id", "technique", "optimizer", "penalty", "learning_rate", "lambda"]
    assert "final_objective" not in table.shown  # no run's objective differs from its loss
    assert table.common == {"dataset": "seed", "model": "relu"}
    assert df["learning_rate"].tolist() == [0.01, 0.01, 0.1]


def test_zero_weights_is_shown_with_an_l1_term_or_a_zero_weight_only():
    from steps.report.compare_table import build_table

    def table(penalty, zeros):
        final = {"final_loss": 0.1, "zero_weights": zeros}
        g = lesson_like(0, "train", {"optimizer": "adam", "penalty": penalty}, final)
        return build_table([g]).shown

    assert "zero_weights" not in table("none", 0)  # e.g. main --techniques on a test function
    assert "zero_weights" in table("l1", 0)
    assert "zero_weights" in table("elasticnet", 0)
    assert "zero_weights" in table("none", 2)


def test_loss_curves_draw_each_runs_logged_losses_and_its_final_loss():
    from steps.report.compare_table import build_table

    gathered = [
        lesson_like(
            i, t, {"optimizer": "sgd", "penalty": "none", "learning_rate": lr}, {"final_loss": f, "epochs_run": 3}
        )
        for i, (t, lr, f) in enumerate([("sgd", 0.01, 0.2), ("sgd", 0.1, 0.1)])
    ]
    table = build_table(gathered)
    st = compare_figures.styles(table)
    fig = compare_figures.loss_curves(table, st)
    ax = fig.axes[0]
    lines = {line.get_label().split("   ")[0]: line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert sorted(lines) == ["sgd lr=0.01", "sgd lr=0.1"]
    for g in table.gathered:
        label = f"sgd lr={g.params['learning_rate']}"
        # The logged epochs' losses, then the final loss at epoch 3 (after the last step).
        np.testing.assert_array_equal(lines[label].get_xdata(), [0.0, 1.0, 2.0, 3.0])
        np.testing.assert_array_equal(lines[label].get_ydata(), [*g.loss, g.metrics["final_loss"]])
    assert fig.legends[0].get_title().get_text() == "runs in order of final_objective, lowest first"


def test_trajectories_draw_each_path_to_its_final_weights_on_the_models_own_surface():
    from core.config import TrainConfig
    from core.training import loss_surface
    from steps.report.compare_table import build_table

    paths = {"sgd": [[0.1, 0.2], [0.15, 0.25], [0.2, 0.3]], "l2": [[0.1, 0.2], [0.14, 0.24], [0.18, 0.28]]}
    gathered = [
        lesson_like(0, "sgd", {"optimizer": "sgd", "penalty": "none"}, {"final_loss": 0.1}, paths["sgd"], [0.25, 0.35]),
        lesson_like(
            1, "l2", {"optimizer": "sgd", "penalty": "l2", "lambda": 0.01}, {"final_loss": 0.2}, paths["l2"], [0.2, 0.3]
        ),
    ]
    table = build_table(gathered)
    fig = compare_figures.trajectories(table, compare_figures.styles(table))
    ax = fig.axes[0]
    drawn = [
        np.column_stack([line.get_xdata(), line.get_ydata()]) for line in ax.get_lines() if len(line.get_xdata()) > 2
    ]
    for g in gathered:  # each path, ending at the run's final weights
        expected = np.vstack([paths[g.technique], g.weights])
        assert any(d.shape == expected.shape and np.allclose(d, expected) for d in drawn), g.technique
    # The penalties differ, so the contours are the MSE: the relu model's own loss on the seed data.
    assert [c for c in ax.collections if hasattr(c, "levels")]  # the contours are drawn
    assert "MSE alone" in fig.legends[0].get_title().get_text()
    X, y = compare_figures.load_surface_data(compare_figures.config_of({"dataset": "seed"}))
    *_, Z = loss_surface(TrainConfig(), X, y, np.array([0.2]), np.array([0.3]), penalized=False)
    assert Z[0, 0] == pytest.approx(np.mean((np.maximum(X @ [0.2, 0.3], 0) - y) ** 2), rel=1e-14)


def _stars(ax) -> list[np.ndarray]:
    """The points of every line drawn with star markers."""
    return [np.column_stack([ln.get_xdata(), ln.get_ydata()]) for ln in ax.get_lines() if ln.get_marker() == "*"]


def test_trajectories_on_a_test_function_draw_its_own_surface_and_its_minima():
    from core import functions
    from core.training import loss_surface
    from steps.report.compare_table import build_table

    paths = {"sgd": [[0.0, 0.0], [1.0, 1.2], [2.5, 1.9]], "adam": [[0.0, 0.0], [-1.0, -1.0], [-3.0, -3.0]]}
    ends = {"sgd": [3.0, 2.0], "adam": [-3.7, -3.2]}
    gathered = [
        lesson_like(
            i, t, {"optimizer": t, "penalty": "none", "dataset": "himmelblau"}, {"final_loss": f}, paths[t], ends[t]
        )
        for i, (t, f) in enumerate([("sgd", 0.1), ("adam", 0.2)])
    ]
    table = build_table(gathered)
    fig = compare_figures.trajectories(table, compare_figures.styles(table))
    ax = fig.axes[0]
    # The four known minima, as white stars (and no "lowest point drawn" gold star), named in the legend.
    (stars,) = _stars(ax)
    np.testing.assert_array_equal(stars, functions.FUNCTIONS["himmelblau"].minima)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "the 4 global minima (f = 0)" in legend
    assert "(log-spaced levels)" in fig.legends[0].get_title().get_text()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert "Himmelblau function: f(x, y) = (x² + y − 11)² + (x + y² − 7)²" in ax.get_title(loc="left")
    # The function's own plot extent is shown (it holds these paths).
    lo, hi = np.array([ax.get_xlim()[0], ax.get_ylim()[0]]), np.array([ax.get_xlim()[1], ax.get_ylim()[1]])
    assert np.all(lo <= -5)
    assert np.all(hi >= 5)
    # Log-spaced contour levels, over the function itself: the data behind them is f.
    (contours,) = [c for c in ax.collections if hasattr(c, "levels")][:1]
    ratios = contours.levels[1:] / contours.levels[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    cfg = compare_figures.config_of(gathered[0].params)
    X, y = compare_figures.load_surface_data(cfg)
    x, yy = np.linspace(-5, 5, 7), np.linspace(-4, 4, 5)
    W0, W1, Z = loss_surface(cfg, X, y, x, yy, penalized=False)
    np.testing.assert_array_equal(Z, functions.himmelblau(W0, W1))


def test_a_test_functions_extent_grows_to_hold_the_paths_and_rastrigin_gets_even_levels():
    from core import functions
    from steps.report.compare_table import build_table

    far = [[-2.2, 2.7], [4.0, 6.0], [8.0, 7.5]]  # beyond Rastrigin's [-5.12, 5.12] square
    gathered = [lesson_like(0, "adam", {"optimizer": "adam", "penalty": "none", "dataset": "rastrigin"},
                            {"final_loss": 3.0}, far, [8.5, 7.9])]  # fmt: skip
    table = build_table(gathered)
    fig = compare_figures.trajectories(table, compare_figures.styles(table))
    ax = fig.axes[0]
    lo, hi = np.array([ax.get_xlim()[0], ax.get_ylim()[0]]), np.array([ax.get_xlim()[1], ax.get_ylim()[1]])
    assert np.all(lo <= -5.12)  # the function's extent ...
    assert np.all(hi > [8.5, 7.9])  # ... and the whole path
    (stars,) = _stars(ax)
    np.testing.assert_array_equal(stars, [[0.0, 0.0]])
    assert "global minimum (f = 0)" in [t.get_text() for t in fig.legends[0].get_texts()]
    (contours,) = [c for c in ax.collections if hasattr(c, "levels")][:1]
    steps = np.diff(contours.levels)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)  # evenly spaced: Rastrigin's bumps
    assert ax.get_title(loc="left").endswith(functions.Objective("rastrigin").formula)


def test_logistic_runs_show_their_accuracy_and_are_drawn_on_the_log_loss():
    from core.config import TrainConfig
    from core.models import log_loss
    from core.training import load_data, loss_surface
    from steps.report.compare_table import build_table

    logistic = {"model": "logistic", "optimizer": "sgd"}
    paths = {"sgd": [[0.1, 0.2], [0.3, 0.5], [0.5, 0.8]], "l2": [[0.1, 0.2], [0.25, 0.4], [0.4, 0.6]]}
    gathered = [
        lesson_like(0, "sgd", {**logistic, "penalty": "none"}, {"final_loss": 0.5, "final_accuracy": 1.0},
                    paths["sgd"], [0.6, 0.9]),
        lesson_like(1, "l2", {**logistic, "penalty": "l2", "lambda": 0.01},
                    {"final_loss": 0.6, "final_objective": 0.61, "final_accuracy": 0.5}, paths["l2"], [0.5, 0.7]),
    ]  # fmt: skip
    table = build_table(gathered)
    assert "final_accuracy" in table.shown
    assert "final_val_accuracy" not in table.shown  # no run has a validation split
    assert table.frame["final_accuracy"].tolist() == [1.0, 0.5]
    st = compare_figures.styles(table)
    assert compare_figures.loss_curves(table, st).axes[0].get_ylabel() == "training loss (log loss, log scale)"
    mixed = build_table([*gathered, lesson_like(2, "sgd", {"optimizer": "sgd", "penalty": "none"}, {"final_loss": 1})])
    assert "final_accuracy" in mixed.shown  # shown when any run has it (a regression's cell is empty)
    ylabel = compare_figures.loss_curves(mixed, compare_figures.styles(mixed)).axes[0].get_ylabel()
    assert ylabel == "training loss (MSE; log loss for logistic runs, log scale)"
    # The surface: the log loss of the seed data's labels 0.3 -> 0, 0.9 -> 1 (the penalties differ: no penalty).
    fig = compare_figures.trajectories(table, st)
    assert "Contours: log loss (the runs' penalties differ, so the surface shows the log loss alone)" in (
        fig.legends[0].get_title().get_text()
    )
    cfg = TrainConfig(model="logistic")
    X, y = compare_figures.load_surface_data(compare_figures.config_of({"dataset": "seed", "model": "logistic"}))
    np.testing.assert_array_equal(y, load_data(cfg).y_train)
    np.testing.assert_array_equal(y, [0.0, 1.0])
    *_, Z = loss_surface(cfg, X, y, np.array([0.2]), np.array([0.3]), penalized=False)
    z = X @ [0.2, 0.3]
    assert Z[0, 0] == pytest.approx(
        -np.mean(y * np.log(1 / (1 + np.exp(-z))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z))))
    )
    assert Z[0, 0] == pytest.approx(log_loss(z, y), rel=1e-14)


def test_a_logged_param_is_read_by_its_options_codec_and_a_foreign_one_is_guessed():
    from steps.report.compare_table import parse_param

    assert parse_param("1", "learning_rate") == 1.0
    assert isinstance(parse_param("1", "learning_rate"), float)
    assert parse_param("100", "epochs") == 100
    assert isinstance(parse_param("100", "epochs"), int)
    assert parse_param("2.5", "epochs") == "2.5"  # not a whole number: shown as logged
    assert parse_param("none", "eps1") == "none"
    assert parse_param("1e-3", "eps1") == 0.001
    assert (parse_param("7", "contender"), parse_param("abc", "x"), parse_param("inf", "x")) == (7, "abc", "inf")


# --------------------------------------------------------------------------- hostile input (was test_hostile.py)

# --------------------------------------------------------------------------- 8, 12: compare's outputs


def test_compare_survives_another_tools_runs_and_escapes_what_it_writes(tracking, tmp_path):
    client = tracking.client
    assert CliRunner().invoke(sgd, ["--epochs", "3"]).exit_code == 0
    nested = tmp_path / "weights.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    for bias in ("7", "8"):  # two runs of another tool, whose params collide with report columns
        other = client.create_run(tracking.experiment_id, run_name='=HYPERLINK("http://x")').info.run_id
        client.log_batch(other, params=[Param("bias", bias), Param("status", bias), Param("note", "<b>x</b>")])
        client.set_tag(other, "technique", "<b>other</b>|tool\nx")
        client.log_artifact(other, str(nested))
        client.log_metric(other, "final_loss", 0.5)
        client.set_terminated(other)
    out = tmp_path / "out"
    result = CliRunner().invoke(compare, ["--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    md = (out / "compare.md").read_text()
    assert "<b>" not in md
    assert "&lt;b&gt;other&lt;/b&gt;\\|tool x" in md
    csv = (out / "compare.csv").read_text()
    assert "'=HYPERLINK" in csv
    assert ",=HYPERLINK" not in csv
    assert "params.bias" in csv.splitlines()[0]
    assert "weights.json unreadable" in csv


def test_the_logged_model_records_no_local_paths(tracking):
    assert CliRunner().invoke(sgd, ["--epochs", "3"]).exit_code == 0
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model", dst_path=str(tracking.root / "m")
    )
    text = (Path(local) / "MLmodel").read_text()
    (logged,) = mlflow.search_logged_models(experiment_ids=[tracking.experiment_id], output_format="list")
    # Where the model lives in the store is MLflow's to record; the temporary folder it was
    # saved in and the checkout its code came from are not.
    assert yaml.safe_load(text)["artifact_path"] == logged.artifact_location
    text = text.replace(logged.artifact_location, "<store>")
    assert "/tmp" not in text
    assert str(Path(__file__).resolve().parents[1]) not in text
    flavor = yaml.safe_load(text)["flavors"]["python_function"]
    assert flavor["model_code_path"] == "pyfunc_model.py"
    model = mlflow.pyfunc.load_model(local)  # and it still loads and predicts
    import pandas as pd

    assert len(model.predict(pd.DataFrame({"x0": [0.1], "x1": [0.2]}))) == 1
    assert json.loads((Path(local) / "artifacts" / "model_spec.json").read_text())["model"] == "relu"


# --------------------------------------------------------------------------- one problem at a time


def test_compare_ranks_only_runs_on_one_problem_and_says_what_it_left_out(tracking, tmp_path):
    # The tutorials' order on one store: the lesson, then two runs on Rosenbrock, then compare.
    for command, args in ((sgd, []), (adam, []), (train, ["--model", "logistic"])):
        assert invoke(command, ["--epochs", "5", *args]).exit_code == 0
    rosenbrock = ["--dataset", "rosenbrock", "--epochs", "20"]
    for args in (["--optimizer", "adam", "--learning-rate", "0.05"], ["--momentum", "0.9", "--learning-rate", "0.001"]):
        assert invoke(train, [*rosenbrock, *args]).exit_code == 0
    out = tmp_path / "rosenbrock"
    result = invoke(compare, ["--output-dir", out])
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "compare.csv")
    assert len(rows) == 2  # the two Rosenbrock runs, not a Himmelblau or lesson run ranked beside them
    assert "2 runs of experiment 'gdlab-test' (id 1), on rosenbrock, best final_objective first" in result.output
    assert "the losses of 3 other runs measure something else (seed · log loss (1), seed · MSE (2))" in result.output

    every = tmp_path / "all"
    result = invoke(compare, ["--output-dir", every, "--problem", "all"])
    assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in every.iterdir() if p.is_dir())
    assert folders == ["1-rosenbrock", "2-seed-log-loss", "3-seed-mse"]
    assert [len(read_csv(every / f / "compare.csv")) for f in folders] == [2, 1, 2]
    assert "| rosenbrock | 2 |" in (every / "index.md").read_text()
    assert not (every / "compare.csv").exists()
    # Back to the newest problem: the folders this compare wrote go, a user's own file stays.
    (every / "1-rosenbrock" / "notes.txt").write_text("mine")
    assert invoke(compare, ["--output-dir", every]).exit_code == 0
    assert sorted(p.name for p in every.iterdir() if p.is_dir()) == ["1-rosenbrock"]
    assert sorted(p.name for p in (every / "1-rosenbrock").iterdir()) == ["notes.txt"]
    assert (every / "compare.csv").exists()


def test_a_label_names_what_varies_within_an_optimizer_not_each_ones_own_default():
    # adam's β2 0.999 and lion's 0.99 are their defaults: "adam β2=0.999" named a value nobody chose.
    gathered = [
        lesson_like(0, "train", {"optimizer": "adam", "beta2": 0.999, "learning_rate": 0.01}, {"final_loss": 0.1}),
        lesson_like(1, "train", {"optimizer": "lion", "beta2": 0.99, "learning_rate": 0.01}, {"final_loss": 0.2}),
        lesson_like(2, "train", {"optimizer": "adam", "beta2": 0.999, "learning_rate": 0.1}, {"final_loss": 0.05}),
        lesson_like(3, "train", {"optimizer": "adam", "beta2": 0.9, "learning_rate": 0.1}, {"final_loss": 0.06}),
    ]
    labels = [s.label for s in compare_figures.styles(build_table(gathered))]
    assert labels == ["adam lr=0.1 β2=0.999", "adam lr=0.1 β2=0.9", "adam lr=0.01 β2=0.999", "lion lr=0.01"]


def test_many_train_runs_are_coloured_by_optimizer_not_all_one_colour():
    # A sweep over --optimizers: 30 runs, all technique "train", were one blue "train: 30 runs".
    gathered = [
        lesson_like(i, "train", {"optimizer": opt, "learning_rate": lr}, {"final_loss": 0.1 + i / 100})
        for i, (opt, lr) in enumerate((o, 10.0**-k) for o in ("sgd", "adam", "rmsprop") for k in range(10))
    ]
    for g in gathered:
        g.epochs, g.loss = np.arange(3.0), np.array([1.0, 0.5, 0.2])
    table = build_table(gathered)
    st = compare_figures.styles(table)
    by_optimizer = {}
    for rec, s in zip(table.frame.to_dict("records"), st, strict=True):
        by_optimizer.setdefault(rec["optimizer"], set()).add(s.color)
    assert all(len(colors) == 1 for colors in by_optimizer.values())
    assert len({c for colors in by_optimizer.values() for c in colors}) == 3
    fig = compare_figures.loss_curves(table, st)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"sgd: 10 runs", "adam: 10 runs", "rmsprop: 10 runs"} <= set(legend)


def test_with_a_split_the_loss_curves_draw_each_runs_validation_loss_dashed(tracking, tmp_path):
    # Ranked by final_val_loss, the picture showed training losses only: an overfitting run looked best.
    args = ["--dataset", "synthetic", "--model", "linear", "--validation-fraction", "0.3", "--epochs", "6"]
    for lr in ("0.01", "0.1"):
        assert invoke(train, [*args, "--learning-rate", lr]).exit_code == 0
    runs, _, _ = search(tracking.client, tracking.experiment_id, "", 10)
    table = build_table(gather(tracking.client, runs))
    assert table.sort_metric == "final_val_loss"
    fig = compare_figures.loss_curves(table, compare_figures.styles(table))
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() not in ("-", "None")]
    assert len(dashed) == 2
    for g in table.gathered:
        logged = sorted((m.step, m.value) for m in tracking.client.get_metric_history(g.run_id, "val_loss"))
        assert any(list(line.get_ydata()) == [v for _, v in logged] for line in dashed)
    assert "validation loss (dashed)" in fig.axes[0].get_title(loc="left")


def _table_of_curves(curves: dict, epochs):
    """A table of `train` runs on Rosenbrock, one per optimizer, with these loss curves."""
    gathered = []
    for i, (opt, y) in enumerate(curves.items()):
        g = lesson_like(i, "train", {"optimizer": opt, "dataset": "rosenbrock", "epochs": 2000}, {"final_loss": y[-1]})
        g.run.data.metrics["epochs_run"] = 2000
        g.epochs, g.loss = epochs, y
        gathered.append(g)
    return build_table(gathered)


def _rosenbrock_like_table():
    """Four runs as on Rosenbrock at lr 0.002: one with a one-epoch dip to 1e-27 (Lion's), two that
    run together at the end (Adam's and NAdam's)."""
    epochs = np.arange(0.0, 2001.0, 1.0)
    lion = np.maximum(25 * np.exp(-epochs / 150), 1.5e-3)
    lion[1458] = 1.3e-27
    curves = {
        "lion": lion,
        "sgd": 4 * np.exp(-epochs / 300) + 8.6e-3,
        "adam": 3.3 + 22 * np.exp(-epochs / 20),
        "nadam": 3.39 + 22 * np.exp(-epochs / 20),
    }
    return _table_of_curves(curves, epochs)


def test_one_dip_far_below_every_run_does_not_stretch_the_loss_axis():
    table = _rosenbrock_like_table()
    fig = compare_figures.loss_curves(table, compare_figures.styles(table))
    bottom, top = fig.axes[0].get_ylim()
    assert bottom > 1e-4  # (it reached 1e-28: twenty decades of nothing)
    assert top < 1e3
    assert any("cut off: a dip to 1.3e-27 at epoch 1458" in t.get_text() for t in fig.axes[0].texts)


def test_the_zoom_box_and_its_lines_stay_inside_the_loss_axes():
    # Two runs end close together, one still falling fast in the zoomed epochs: the inset's linear
    # floor is below 0, which on the log axis sent the box and its lines out through the legend.
    epochs = np.arange(0.0, 2001.0, 1.0)
    curves = {
        "lion": np.maximum(25 * np.exp(-epochs / 150), 1e-3),
        "sgd": np.where(epochs < 1600, 0.5 + 3 * np.exp(-epochs / 200), 0.5 * np.exp(-(epochs - 1600) / 30) + 1.05e-3),
        "adam": 3.3 + 22 * np.exp(-epochs / 20),
    }
    table = _table_of_curves(curves, epochs)
    fig = compare_figures.loss_curves(table, compare_figures.styles(table))
    fig.draw_without_rendering()
    ax = fig.axes[0]
    box = ax.get_window_extent()
    indicators = [a for a in ax.get_children() if type(a).__name__ == "InsetIndicator"]
    assert indicators, "the ends of lion and sgd are zoomed"
    for ind in indicators:
        for a in [ind.rectangle, *[c for c in ind.connectors if c.get_visible()]]:
            extent = a.get_window_extent()
            assert box.y0 - 1 <= extent.y0, a  # (the lines ran down out of the axes, through the legend)
            assert extent.y1 <= box.y1 + 1, a


def test_a_curve_drawn_over_another_that_runs_with_it_leaves_it_showing():
    table = _rosenbrock_like_table()
    fig = compare_figures.loss_curves(table, compare_figures.styles(table))
    widths = {line.get_label().split()[0]: line.get_linewidth() for line in fig.axes[0].get_lines()
              if not line.get_label().startswith("_")}  # fmt: skip
    order = [s.label for s in compare_figures.styles(table)]
    assert [widths[label] for label in order] == sorted(widths.values(), reverse=True)
    assert widths[order[-2]] > widths[order[-1]]  # adam drawn wider than nadam over it


def test_the_internals_picture_leaves_out_a_learning_rate_panel_that_is_one_flat_line():
    gathered = []
    for i, opt in enumerate(("sgd", "adam")):
        g = lesson_like(i, "train", {"optimizer": opt}, {"final_loss": 0.1 * (i + 1)})
        epochs = np.arange(5.0)
        g.internals = {"epoch": epochs, "lr": np.full(5, 0.002), "grad_norm": 1 / (epochs + 1),
                       "update_norm": 0.002 / (epochs + 1)}  # fmt: skip
        gathered.append(g)
    table = build_table(gathered)
    fig = compare_figures.internals(table, compare_figures.styles(table))
    assert [ax.get_title(loc="left").split()[0] for ax in fig.axes] == ["gradient", "update"]
    assert "learning rate 0.002 for every run, every epoch" in fig._suptitle.get_text()


def test_a_grid_gets_its_metric_against_the_learning_rate_and_the_lr_by_lambda_grid():
    # A grid sweep had no loss-versus-lr picture and no lr x lambda picture.
    values = {(0.001, 0.01): 0.31, (0.01, 0.01): 0.24, (0.1, 0.01): 0.021, (0.001, 0.1): 0.32, (0.01, 0.1): 0.26}
    gathered = [
        lesson_like(
            i,
            "l2",
            {"penalty": "l2", "learning_rate": lr, "lambda": lam, "optimizer": "sgd"},
            {"final_loss": v, "final_objective": v},
        )
        for i, ((lr, lam), v) in enumerate(values.items())
    ]
    gathered.append(
        lesson_like(
            9,
            "l2",
            {"penalty": "l2", "learning_rate": 0.1, "lambda": 0.1, "optimizer": "sgd"},
            {"final_loss": math.inf},
            status="FAILED",
        )
    )
    table = build_table(gathered)
    st = compare_figures.styles(table)
    fig = compare_figures.sensitivity(table, st)
    line_ax, heat_ax = fig.axes[0], fig.axes[1]
    drawn = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in line_ax.get_lines()
             if not ln.get_label().startswith("_")}  # fmt: skip
    assert drawn["l2 λ=0.01"] == ([0.001, 0.01, 0.1], [0.31, 0.24, 0.021])
    assert drawn["l2 λ=0.1"] == ([0.001, 0.01], [0.32, 0.26])
    assert any(ln.get_marker() == "x" and list(ln.get_xdata()) == [0.1] for ln in line_ax.get_lines())
    cells = sorted(t.get_text() for t in heat_ax.texts)
    assert cells == sorted(["0.31", "0.24", "0.021", "0.32", "0.26", "failed"])
    assert "the best may lie beyond it" in " ".join(t.get_text() for t in line_ax.texts)  # lr 0.1 of 0.001..0.1
    assert "sensitivity.png" in compare_figures.figures(table)


def test_runs_at_fewer_than_three_learning_rates_get_no_sensitivity_picture(lesson):
    runs, _, _ = search(lesson.client, lesson.experiment_id, "", 100)
    table = build_table(gather(lesson.client, runs))
    assert compare_figures.sensitivity(table, compare_figures.styles(table)) is None


def test_the_findings_say_only_what_the_runs_numbers_show(lesson):
    runs, _, _ = search(lesson.client, lesson.experiment_id, "", 100)
    table = build_table(gather(lesson.client, runs))
    from steps.report.compare_table import findings

    found = findings(table)
    rows = {
        r["technique"]: r for r in table.frame.to_dict("records")[::-1] if r["final_objective"] == r["final_objective"]
    }
    adam, sgd = rows["adam"], rows["sgd"]
    ratio = sgd["final_objective"] / adam["final_objective"]
    assert found[0] == (
        f"adam (lr 0.01) ends with a final_objective {ratio:.3g}x lower than sgd (lr 0.01) "
        f"({adam['final_objective']:.3g} against {sgd['final_objective']:.3g}) at the same learning rate, 0.01."
    )
    by_run = {g.technique: g.internals for g in table.gathered if g.internals}
    sgd_step = by_run["sgd"]["update_norm"][0]
    assert sgd_step == pytest.approx(0.01 * by_run["sgd"]["grad_norm"][0], rel=1e-12)
    assert any(f.startswith(f"sgd (lr 0.01)'s first step was {sgd_step:.3g}: exactly lr x") for f in found)
    assert any(f.startswith("adam (lr 0.01)'s first step") and "lr x √2" in f for f in found)  # Adam: lr a weight
    assert not any(f.startswith("sgd (lr 0.01)'s first step") and "√" in f for f in found)
    (diverged,) = [f for f in found if "diverged" in f]
    assert diverged.startswith("sgd (lr 1000) diverged at epoch ")
    assert not any("beyond them" in f for f in found)  # two learning rates are no grid to be on the edge of
    md = (lesson.out / "compare.md").read_text()
    assert "Findings (from the runs' own numbers):" in md


def _foreign_runs(client, experiment_id, tmp_path, params: list[dict], artifacts: dict | None = None):
    for i, extra in enumerate(params):
        run = client.create_run(experiment_id).info.run_id
        given = {"optimizer": "sgd", "learning_rate": "0.01", "dataset": "seed", **extra}
        client.log_batch(run, params=[Param(k, v) for k, v in given.items()])
        client.set_tag(run, "technique", "train")
        for name, text in (artifacts or {}).items():
            (tmp_path / name).write_text(text)
            client.log_artifact(run, str(tmp_path / name))
        client.log_metric(run, "final_loss", 0.5 + i)
        client.log_metric(run, "final_objective", 0.5 + i)
        client.set_terminated(run)


def test_tex_and_absurd_numbers_from_another_tools_runs_are_drawn_not_a_crash(tracking, tmp_path):
    # A legend of "$\undefinedmacro{x}$" (parsed as TeX), weights of ±1e308 and inf rows in
    # trajectory.csv: each stopped compare with a traceback and no report.
    artifacts = {
        "weights.json": json.dumps({"weights": [1e308, -1e308], "bias": None}),
        "trajectory.csv": "epoch,w_0,w_1,loss\n0,0.1,0.2,1.0\n1,inf,-inf,inf\n2,1e308,-1e308,1e308\n",
    }
    _foreign_runs(tracking.client, tracking.experiment_id, tmp_path,
                  [{"momentum": r"$\undefinedmacro{x}$"}, {"momentum": "$x$"}], artifacts)  # fmt: skip
    out = tmp_path / "out"
    result = invoke(compare, ["--output-dir", out])
    assert result.exit_code == 0, result.output
    assert {"loss_curves.png", "trajectories.png"} <= {p.name for p in out.iterdir()}
    assert "Traceback" not in result.output


def test_a_foreign_runs_text_is_inert_in_the_terminal_and_in_compare_md(tracking, tmp_path):
    hostile = "\x1b]0;pwned\x07\x1b[2J"
    links = ["[x](javascript:alert(1))", "![p](http://host/pixel.png)"]
    _foreign_runs(tracking.client, tracking.experiment_id, tmp_path,
                  [{"momentum": hostile, "zz": links[0]}, {"momentum": hostile, "zz": links[1]}])  # fmt: skip
    out = tmp_path / "out"
    result = invoke(compare, ["--output-dir", out])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output  # (the title was set and the screen cleared, even when piped)
    assert "\x07" not in result.output
    assert "momentum=\\x1b]0;pwned\\x07" in result.output  # shown, escaped
    md = (out / "compare.md").read_text()
    assert links[0] not in md
    assert links[1] not in md
    assert "\\[x\\](javascript:alert(1))" in md  # the text, not a link


def test_an_empty_output_dir_is_the_default_and_a_filesystem_root_is_refused(tracking):
    # `--output-dir ""` wrote the report into the current folder; `--output-dir /` as root into /.
    assert invoke(sgd, ["--epochs", "2"]).exit_code == 0
    result = invoke(compare, ["--output-dir", ""])
    assert result.exit_code == 0, result.output
    assert (Path.cwd() / "compare_output" / "compare.md").exists()
    assert not (Path.cwd() / "compare.md").exists()
    for command in (compare, main):
        result = invoke(command, ["--output-dir", "/"])
        assert result.exit_code == 2, result.output
        assert "'/' is the root of the filesystem" in result.output


def test_compare_shows_the_curvature_runs_logged_and_draws_sharpness_against_2_over_lr(tracking, tmp_path):
    from steps.train import train

    for lr in ("0.5", "5"):  # the lesson's sharpness is 0.458: stable below lr 4.37
        args = ["--learning-rate", lr, "--epochs", "20", "--curvature-every", "1"]
        assert CliRunner().invoke(train, args).exit_code == 0
    out = tmp_path / "report"
    result = CliRunner().invoke(compare, ["--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    rows = {float(r["learning_rate"]): r for r in read_csv(out / "compare.csv")}
    for row in rows.values():
        run = tracking.client.get_run(row["run_id"])
        assert float(row["sharpness"]) == run.data.metrics["sharpness"]
        assert float(row["condition_number"]) == run.data.metrics["condition_number"]
    assert "sharpness" in result.output
    assert (out / "internals.png").exists()
    internals = (Path(tracking.client.get_run(rows[5.0]["run_id"]).info.artifact_uri.removeprefix("file://"))
                 / "internals.csv").read_text().splitlines()  # fmt: skip
    assert internals[0].endswith(",sharpness")


def test_compare_states_the_rate_theory_predicts_beside_the_measured_one_on_a_quadratic(tracking, tmp_path):
    from steps.train import train

    cases = [("0.015", "0", "0.985"), ("0.01", "0.5", "0.979574")]  # gradient descent, heavy ball
    for lr, momentum, _ in cases:
        args = ["--dataset", "ill_conditioned", "--condition-number", "100", "--learning-rate", lr]
        assert CliRunner().invoke(train, [*args, "--momentum", momentum, "--epochs", "300"]).exit_code == 0
    result = CliRunner().invoke(compare, ["--output-dir", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    for _, _, rate in cases:
        assert f"theory predicts the error shrinks by {rate} an epoch" in result.output
        assert f"its loss curve shows {rate} over its last half" in result.output
    assert "(heavy ball's 2×2 map)" in result.output
    assert "(max |1 − lr λ|)" in result.output
    assert (tmp_path / "report" / "rates.png").exists()  # Goh's phase diagram, the two runs marked


def test_the_surfaces_data_is_read_once_and_again_when_its_file_changes(tmp_path, monkeypatch):
    import os

    from core.config import TrainConfig
    from steps.report.compare_figures import load_surface_data

    csv_file = tmp_path / "two.csv"
    csv_file.write_text("a,b,y\n1,2,3\n4,5,6\n7,8,9\n")
    cfg = TrainConfig(dataset=str(csv_file), target="y", model="linear")
    reads = []
    import steps.report.compare_figures as figures_module

    real = figures_module.load_data
    monkeypatch.setattr(figures_module, "load_data", lambda c: reads.append(c) or real(c))
    first = load_surface_data(cfg)
    assert load_surface_data(cfg) is first  # (trajectories.png, the page and the GIF read it once)
    assert len(reads) == 1
    csv_file.write_text("a,b,y\n1,2,3\n4,5,6\n7,8,10\n")
    os.utime(csv_file, ns=(1, 1))  # (a different modification time, whatever the clock's resolution)
    assert load_surface_data(cfg)[1].tolist() != first[1].tolist()  # edited: read again
    csv_file.unlink()
    assert load_surface_data(cfg) is None  # gone: not a copy from before
