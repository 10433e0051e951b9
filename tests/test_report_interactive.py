"""The interactive report (steps/report/interactive.py, interactive.js) in a real headless Chromium,
driven by selenium through chromium-driver: the page loads with no console message and no network
request, hiding a run hides it in every plot, the slider puts each run's marker on its logged
weights of that epoch, and hostile text from runs is shown as text, never run."""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from steps.adam import adam
from steps.benchmark import benchmark
from steps.compare import compare
from steps.l1 import l1
from steps.l2 import l2
from steps.sgd import sgd
from steps.sweep import sweep
from steps.train import train

LESSON = {"sgd": sgd, "adam": adam, "l1": l1, "l2": l2}
SCRIPT_PAYLOAD = "<script>window.__pwned = 'script'</script>"
ATTR_PAYLOAD = '"><img src=x onerror="window.__pwned = \'img\'">'
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)


def invoke(command, args=()):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, its console and network logged."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: python -m pip install -e '.[test]'")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("Chromium and its driver are not installed: apt-get install -y chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1300,1000", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    driver.set_script_timeout(120)
    yield driver
    driver.quit()


def open_page(driver, path: Path) -> SimpleNamespace:
    """Load ``path`` and wait until every plot is drawn; what the console said and which URLs the
    page asked for while loading, and the seconds it took."""
    driver.get_log("browser"), driver.get_log("performance")  # (drain what an earlier page left)
    start = time.perf_counter()
    driver.get(path.as_uri())
    error = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.gdlab.ready.then(() => done(null), e => done(String(e && e.stack || e)));"
    )
    seconds = time.perf_counter() - start
    assert error is None, error
    console = driver.get_log("browser")
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in events if m["method"] == "Network.requestWillBeSent"]
    return SimpleNamespace(console=console, urls=urls, seconds=seconds)


def traces(driver, div: str) -> list[dict]:
    """The plot's traces as the page holds them (name, meta, visible, x, y, customdata)."""
    return driver.execute_script(
        "return document.getElementById(arguments[0]).data.map(t => ({name: t.name, meta: t.meta || null,"
        " visible: t.visible === undefined ? true : t.visible, x: t.x, y: t.y, customdata: t.customdata || null}))",
        div,
    )


def legend(driver, div: str) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} .legendtext`)].map(t => t.textContent)", div
    )


def click_legend(driver, div: str, text: str) -> None:
    """Click the legend entry ``text`` of plot ``div`` as a person would, and wait for it to take
    effect: plotly waits its double-click delay (300 ms) to tell a click from a double click, then
    restyles; done when the plot's visibilities differ from before the click (5 s at most)."""
    from selenium.webdriver.common.action_chains import ActionChains

    visible = "return JSON.stringify(document.getElementById(arguments[0]).data.map(t => t.visible))"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", driver.find_element("id", div))
    entry = next(
        e
        for e in driver.find_elements("css selector", f"#{div} .legend .traces")
        if e.find_element("css selector", ".legendtext").text == text
    )
    before = driver.execute_script(visible, div)
    ActionChains(driver).click(entry.find_element("css selector", ".legendtoggle")).perform()
    deadline = time.monotonic() + 5
    while driver.execute_script(visible, div) == before and time.monotonic() < deadline:
        time.sleep(0.05)


def plot_ids(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('.gd-plot')].map(d => d.id)")


def trajectory(client, run_id: str, dst: Path) -> dict[float, list[float]]:
    path = Path(client.download_artifacts(run_id, "trajectory.csv", str(dst)))
    with path.open(newline="") as fh:
        return {float(r["epoch"]): [float(r["w_0"]), float(r["w_1"]), float(r["loss"])] for r in csv.DictReader(fh)}


@contextlib.contextmanager
def store_with(tmp_path_factory, open_store, name: str, *commands):
    """A fresh store under a folder ``name``, made current, after running ``commands`` ((command,
    args) each); yields the folder and the store."""
    root = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        store = open_store(root, mp)
        for command, args in commands:
            invoke(command, args)
        yield root, store
        while mlflow.active_run():
            mlflow.end_run()


@pytest.fixture(scope="module")
def lesson_page(tmp_path_factory, open_store):
    """The lesson's four runs, compared: compare.html and the store."""
    steps = [(command, []) for command in LESSON.values()]
    with store_with(tmp_path_factory, open_store, "interactive", *steps, (compare, ["--output-dir", "out"])) as made:
        root, store = made
        found = store.client.search_runs([store.experiment_id])
        ids = {r.data.tags["technique"]: r.info.run_id for r in found if r.data.tags["technique"] in LESSON}
        with (root / "out" / "compare.csv").open(newline="") as fh:
            order = [(r["technique"], r["run_id"]) for r in csv.DictReader(fh)]  # the table's, best first
        yield SimpleNamespace(page=root / "out" / "compare.html", client=store.client, ids=ids, order=order)


def test_the_lesson_page_loads_with_no_console_message_and_no_network_request(browser, lesson_page):
    seen = open_page(browser, lesson_page.page)
    assert seen.console == []
    assert seen.urls[0] == lesson_page.page.as_uri()
    assert all(u == lesson_page.page.as_uri() or u.startswith("data:") for u in seen.urls), seen.urls
    assert plot_ids(browser) == ["gd-loss", "gd-paths-0"]
    # the run's name on every line of the loss plot, its legend entry each
    names = [t["name"] for t in traces(browser, "gd-loss") if t["meta"] and "run" in t["meta"]]
    assert sorted(names) == ["adam", "l1 λ=0.01", "l2 λ=0.01", "sgd"]
    size = lesson_page.page.stat().st_size
    assert size < 6_000_000, size  # plotly.js is 4.8 MB of it


def test_hovering_a_curve_names_the_run_the_epoch_and_the_loss(browser, lesson_page):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, lesson_page.page)
    plot = browser.find_element("id", "gd-loss")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    # the last point of adam's curve: its final marker, where the slider starts
    now = next(t for t in traces(browser, "gd-loss") if t["name"] == "now")
    k = next(j for j, c in enumerate(now["customdata"]) if c[1] == lesson_page.ids["adam"])
    xy = browser.execute_script(
        "const d = document.getElementById('gd-loss'), l = d._fullLayout;"
        "return [l.xaxis.l2p(arguments[0]) + l.margin.l, l.yaxis.l2p(Math.log10(arguments[1])) + l.margin.t]",
        now["x"][k],
        now["y"][k],
    )
    rect = plot.rect
    ActionChains(browser).move_to_element_with_offset(plot, xy[0] - rect["width"] / 2, xy[1] - rect["height"] / 2)\
        .perform()  # fmt: skip
    time.sleep(0.3)
    label = browser.execute_script("return [...document.querySelectorAll('.hoverlayer text')].map(t => t.textContent)")
    text = " ".join(label)
    for part in ("adam", "epoch 100", "loss 0.00644"):
        assert part in text, label


def test_hiding_a_run_in_the_legend_hides_it_in_every_plot(browser, lesson_page):
    open_page(browser, lesson_page.page)
    click_legend(browser, "gd-loss", "sgd")
    for div in ("gd-loss", "gd-paths-0"):
        shown = {t["name"]: t["visible"] for t in traces(browser, div) if t["meta"] and "run" in t["meta"]}
        assert shown.pop("sgd") == "legendonly", div
        assert set(shown.values()) == {True}, div
        now = next(t for t in traces(browser, div) if t["name"] == "now")
        assert [c[1] for c in now["customdata"]] == [i for t, i in lesson_page.order if t != "sgd"], div
    # a second click shows it again
    click_legend(browser, "gd-loss", "sgd")
    assert all(t["visible"] is True for t in traces(browser, "gd-paths-0") if t["meta"] and "run" in t["meta"])


@pytest.mark.parametrize("epoch", [0, 37, 100])
def test_the_slider_puts_every_runs_marker_on_its_logged_weights_of_that_epoch(browser, lesson_page, epoch, tmp_path):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, lesson_page.page)
    slider = browser.find_element("id", "gd-epoch")
    browser.execute_script("arguments[0].focus()", slider)
    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * epoch)  # one step an arrow, as a person would
    assert browser.find_element("id", "gd-epoch-label").text == f"epoch {epoch}"
    # the surface and every path are still drawn under the moved markers (Plotly.animate dropped a contour trace)
    drawn = browser.execute_script(
        "const p = document.getElementById('gd-paths-0'), n = s => p.querySelectorAll(s).length;"
        "return [n('.contourlayer path, image'), n('.scatterlayer .trace')]"
    )
    assert drawn == [1, 6], drawn  # the surface's picture; 4 paths, the start, the markers
    paths = next(t for t in traces(browser, "gd-paths-0") if t["name"] == "now")
    losses = next(t for t in traces(browser, "gd-loss") if t["name"] == "now")
    assert len(paths["x"]) == len(losses["x"]) == 4
    for technique, run_id in lesson_page.ids.items():
        logged = trajectory(lesson_page.client, run_id, tmp_path / technique)
        if epoch == 100:  # the end: the final weights (weights.json), after the last logged epoch
            spec = json.loads(Path(lesson_page.client.download_artifacts(run_id, "weights.json", tmp_path)).read_text())
            want = [*spec["weights"], lesson_page.client.get_run(run_id).data.metrics["final_loss"]]
        else:
            want = logged[float(epoch)]
        k = [c[1] for c in paths["customdata"]].index(run_id)
        assert paths["customdata"][k][0] == epoch
        np.testing.assert_allclose([paths["x"][k], paths["y"][k]], want[:2], rtol=1e-6, err_msg=technique)
        j = [c[1] for c in losses["customdata"]].index(run_id)
        np.testing.assert_allclose([losses["x"][j], losses["y"][j]], [epoch, want[2]], rtol=1e-6, err_msg=technique)


def test_the_address_keeps_the_epoch_and_the_hidden_runs_and_a_link_opens_on_them(browser, lesson_page):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, lesson_page.page)
    assert browser.execute_script("return location.hash") == ""  # (a plain link leaves it alone)
    click_legend(browser, "gd-loss", "sgd")
    slider = browser.find_element("id", "gd-epoch")
    browser.execute_script("arguments[0].focus()", slider)
    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * 12)
    link = browser.current_url
    assert link.endswith(f"#epoch=12&hide={lesson_page.ids['sgd']}")
    browser.get("about:blank")
    browser.get(link)  # the link, opened afresh
    browser.execute_async_script("const done = arguments[arguments.length - 1]; window.gdlab.ready.then(done);")
    assert browser.find_element("id", "gd-epoch-label").text == "epoch 12"
    shown = {t["name"]: t["visible"] for t in traces(browser, "gd-paths-0") if t["meta"] and "run" in t["meta"]}
    assert shown.pop("sgd") == "legendonly"
    assert set(shown.values()) == {True}
    browser.get(link.split("#")[0] + "#epoch=5")  # another link into the open page: every run, epoch 5
    browser.execute_async_script("const done = arguments[arguments.length - 1]; setTimeout(done, 300);")
    assert browser.find_element("id", "gd-epoch-label").text == "epoch 5"
    assert all(t["visible"] is True for t in traces(browser, "gd-paths-0") if t["meta"] and "run" in t["meta"])


def test_play_moves_the_markers_through_the_epochs(browser, lesson_page):
    open_page(browser, lesson_page.page)
    browser.find_element("id", "gd-play").click()  # from the end: starts again at epoch 0
    browser.execute_script("return new Promise(r => setTimeout(r, 1500))")
    middle = int(browser.find_element("id", "gd-epoch").get_attribute("value"))
    assert 0 < middle < 100
    assert browser.find_element("id", "gd-play").text == "❚❚ pause"
    browser.find_element("id", "gd-play").click()
    assert browser.find_element("id", "gd-play").text == "▶ play"


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory, open_store):
    """Runs whose experiment name, run names, technique tags and a param carry HTML payloads, compared."""
    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        store = open_store(root, mp)
        experiment = store.client.create_experiment(f"team {SCRIPT_PAYLOAD}{ATTR_PAYLOAD}")
        mp.setenv("MLFLOW_EXPERIMENT_ID", experiment)
        for lr, payload in ((0.01, SCRIPT_PAYLOAD), (0.05, ATTR_PAYLOAD), (0.2, "%{x} &amp; <b>bold</b>")):
            invoke(train, ["--learning-rate", lr])
            run = store.client.search_runs([experiment], order_by=["attributes.start_time DESC"])[0].info.run_id
            store.client.set_tag(run, "technique", payload)
            store.client.set_tag(run, "mlflow.runName", payload)
            store.client.log_param(run, "notes", payload)
        invoke(compare, ["--output-dir", root / "out"])
        yield SimpleNamespace(page=root / "out" / "compare.html")


def test_hostile_text_from_runs_is_shown_as_text_and_never_runs(browser, hostile_page):
    seen = open_page(browser, hostile_page.page)
    assert seen.console == []  # (a payload that ran into the page's policy would be logged here)
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('script').length") == 3  # data, plotly, ours
    assert browser.execute_script("return document.querySelectorAll('img[src=x], b').length") == 0
    shown = legend(browser, "gd-loss")
    # (the table shortens a long technique in the middle, and labels take it from there)
    for payload in (SCRIPT_PAYLOAD, '"><img src=x onerror="window.__pwne', "%{x} &amp; <b>bold</b>"):
        assert any(payload in text for text in shown), (payload, shown)
    for shown in (browser.title, browser.find_element("css selector", "h1").text):  # the experiment's name
        assert "team <script>window.__pwned" in shown
        assert '"><img src=x onerror="window.__pwned' in shown


@pytest.fixture(scope="module")
def search_page(tmp_path_factory, open_store):
    """A random search of five trials, compared: compare.html and the study it wrote."""
    args = ["--technique", "sgd", "--search", "random", "--n-trials", "5", "--learning-rates", "1e-3:0.5"]
    args += ["--epochs", "30", "--max-parallel", "1", "--output-dir", "out"]
    with store_with(tmp_path_factory, open_store, "search", (sweep, args)) as (root, _):
        study = json.loads((root / "out" / "study.json").read_text())
        yield SimpleNamespace(page=root / "out" / "compare.html", study=study)


@pytest.mark.slow  # (a 5-trial search first: 15 s; test_sweep checks its study.json in the fast suite)
def test_a_searchs_history_importances_and_sensitivity_are_plots_too(browser, search_page):
    seen = open_page(browser, search_page.page)
    assert seen.console == []
    assert plot_ids(browser) == ["gd-loss", "gd-paths-0", "gd-sensitivity", "gd-history", "gd-importances"]
    value, best = traces(browser, "gd-history")
    assert value["x"] == search_page.study["number"]
    np.testing.assert_allclose(value["y"], search_page.study["value"], rtol=1e-6)
    np.testing.assert_allclose(best["y"], np.minimum.accumulate(search_page.study["value"]), rtol=1e-6)
    (bars,) = traces(browser, "gd-importances")
    assert bars["y"] == ["learning_rate"]
    # the sensitivity plot: every finished trial, by its learning rate
    points = [t for t in traces(browser, "gd-sensitivity") if t["name"] == "sgd"]
    assert len(points[0]["x"]) == 5
    assert points[0]["x"] == sorted(points[0]["x"])


@pytest.fixture(scope="module")
def benchmark_page(tmp_path_factory, open_store):
    """A benchmark of two contenders on the lesson: benchmark.html and trials.csv."""
    from conftest import ROOT

    # a problem is named for its file: one with &, < and % in its name (its headings showed &amp;lt;)
    data = tmp_path_factory.mktemp("data") / "sales & costs <q> 100%.csv"
    data.write_text((ROOT / "examples" / "diabetes.csv").read_text())
    args = ["--optimizers", "sgd,adam", "--budget", "4", "--lr-range", "1e-3:0.5", "--seeds", "2", "--epochs", "40"]
    args += ["--dataset", data, "--target", "target", "--model", "linear", "--standardize", "true"]
    args += ["--output-dir", "out"]
    with store_with(tmp_path_factory, open_store, "benchmark", (benchmark, args)) as (root, _):
        with (root / "out" / "trials.csv").open(newline="") as fh:
            trials = list(csv.DictReader(fh))
        yield SimpleNamespace(page=root / "out" / "benchmark.html", trials=trials)


def test_the_benchmarks_sensitivity_curves_and_profile_are_plots(browser, benchmark_page):
    seen = open_page(browser, benchmark_page.page)
    assert seen.console == []
    assert all(u == benchmark_page.page.as_uri() or u.startswith("data:") for u in seen.urls), seen.urls
    assert plot_ids(browser) == ["gd-sensitivity-0", "gd-curves-0", "gd-profile"]
    assert browser.execute_script("return document.querySelectorAll('figure img').length") == 0
    headings = [h.text for h in browser.find_elements("css selector", "#gd-plots h2")]
    name = "sales & costs <q> 100%"
    assert headings[:2] == [f"{name}: learning-rate sensitivity", f"{name}: the winners over the seeds"]
    assert browser.execute_script("return document.getElementById('gd-sensitivity-0').layout.title.text").startswith(
        "sales &amp; costs &lt;q&gt; 100&#37;:"
    )  # (plotly reads entities: shown as written)
    lines = {t["name"]: t for t in traces(browser, "gd-sensitivity-0") if t["name"] in ("sgd", "adam")}
    for contender, line in lines.items():
        tuned = sorted(
            (float(r["lr"]), float(r["score"]))
            for r in benchmark_page.trials
            if r["contender"] == contender and r["phase"] in ("tune", "default")
        )
        np.testing.assert_allclose(line["x"], [lr for lr, _ in tuned], rtol=1e-6)
        # each score as it is, or one far above the rest on the plot's ceiling (as the picture draws it)
        ceiling = max(y for y in line["y"] if y is not None)
        for y, (_, score) in zip(line["y"], tuned, strict=True):
            assert y == pytest.approx(score, rel=1e-6) or (y == ceiling and score > ceiling), (y, score)
    # a legend click hides a contender's line, its band and its winner's ring
    click_legend(browser, "gd-curves-0", "adam")
    shown = traces(browser, "gd-curves-0")
    assert [t["visible"] for t in shown if t["name"] == "adam"] == ["legendonly"] * 3
    assert [t["visible"] for t in shown if t["name"] == "sgd"] == [True] * 3


# --------------------------------------------------------------------------- trajectories.gif


def test_the_gif_moves_the_lessons_runs_from_the_start_to_their_final_weights(lesson_page):
    from PIL import Image

    gif = lesson_page.page.with_name("trajectories.gif")
    logged = {a.path for a in lesson_page.client.list_artifacts(compare_run(lesson_page).info.run_id)}
    assert "trajectories.gif" in logged  # with the compare run
    assert "![trajectories.gif](trajectories.gif)" in lesson_page.page.with_name("compare.md").read_text()
    assert "trajectories.gif" not in lesson_page.page.read_text()  # (the page has the same, live)
    with Image.open(gif) as im:
        assert im.size == (512, 400)
        assert im.info["loop"] == 0
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB"), dtype=int))
    # 40 frames moving (101 logged epochs, thinned), the last one held: Pillow keeps one of equal frames
    assert len(frames) == 40
    moved = [int((np.abs(b - a).sum(axis=2) > 0).sum()) for a, b in itertools.pairwise(frames)]
    assert all(m > 0 for m in moved)  # every frame moves something (the runs, and the epoch in the corner)
    assert max(moved) < 0.2 * 512 * 400  # ... over a background that stays put
    assert gif.stat().st_size < 300_000, gif.stat().st_size


def compare_run(page):
    (run,) = [r for r in page.client.search_runs([r.info.experiment_id for r in [page.client.get_run(page.ids["sgd"])]])
              if r.data.tags.get("technique") == "compare"]  # fmt: skip
    return run


def test_no_gif_without_two_weight_paths():
    from steps.report.animation import trajectories_gif
    from steps.report.compare_figures import styles
    from steps.report.compare_runs import Gathered
    from steps.report.compare_table import build_table

    info = SimpleNamespace(run_id="0" * 32, run_name="x", status="FINISHED", start_time=0)
    data = SimpleNamespace(params={"optimizer": "sgd", "dataset": "synthetic"}, metrics={"final_loss": 1.0}, tags={})
    table = build_table([Gathered(run=SimpleNamespace(info=info, data=data), technique="train")])
    assert trajectories_gif(table, styles(table)) is None


# --------------------------------------------------------------------------- a thousand runs


@pytest.mark.slow  # (20 s: drawing the 1,000 runs' pictures and gif takes most of it)
def test_a_thousand_run_comparison_opens_with_a_legend_entry_a_kind(browser, tmp_path):
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "bench_report.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    page = bench.write_page(1000, tmp_path / "out")
    assert page.stat().st_size < 12_000_000, page.stat().st_size  # (9.0 MB on 2026-12-06: benchmarks/README.md)
    seen = open_page(browser, page)
    assert seen.console == []
    print(f"the 1,000-run page opened in {seen.seconds:.1f} s")
    assert sorted(legend(browser, "gd-loss")) == sorted(f"{kind}: 125 runs" for kind in bench.KINDS)
    now = next(t for t in traces(browser, "gd-paths-0") if t["name"] == "now")
    assert len(now["x"]) == 1000
    # hiding a kind hides its 125 runs' markers too
    click_legend(browser, "gd-loss", "adam: 125 runs")
    now = next(t for t in traces(browser, "gd-paths-0") if t["name"] == "now")
    assert len(now["x"]) == 875


# --------------------------------------------------------------------------- the page's data, edge cases


def made_up(epochs_by_run, paths=True):
    """A table of made-up 2-weight runs, one a list of logged epochs."""
    from steps.report.compare_runs import Gathered
    from steps.report.compare_table import build_table

    gathered = []
    for i, epochs in enumerate(epochs_by_run):
        e = np.asarray(epochs, dtype=float)
        info = SimpleNamespace(run_id=f"{i:032x}", run_name=f"r{i}", status="FINISHED", start_time=i)
        params = {"optimizer": "sgd", "penalty": "none", "learning_rate": f"{0.01 * (i + 1)}", "dataset": "seed"}
        metrics = {"final_loss": 0.1, "final_objective": 0.1, "epochs_run": float(e[-1] + 1)}
        data = SimpleNamespace(params=params, metrics=metrics, tags={"technique": "train"})
        g = Gathered(run=SimpleNamespace(info=info, data=data), technique="train")
        g.epochs, g.loss = e, 0.3 * np.exp(-e / 1000) + 0.01
        if paths:
            g.path, g.weights = np.column_stack([0.1 + e / 2e4, 0.2 + e / 2e4]), None
        gathered.append(g)
    return build_table(gathered)


def test_a_run_logged_sparsely_keeps_its_points_when_the_page_thins_the_others():
    from steps.report.compare_figures import styles
    from steps.report.interactive import compare_data

    every = list(range(10_000))
    table = made_up([every] * 19 + [list(range(0, 10_000, 10))])
    data = compare_data(table, styles(table))
    sparse = next(r for r in data["runs"] if r["id"] == f"{19:032x}")
    gaps = np.diff(sparse["e"])
    shown = np.diff(data["epochs"]).max()
    assert gaps.max() <= shown + 10  # (it kept 500 of its 1,000 points with a 5,020-epoch hole)
    for run in data["runs"]:  # every run: at each shown epoch, its last logged point at or before it
        e = np.asarray(run["e"])
        assert set(data["epochs"]) <= set(e) or run is sparse
        assert len(e) <= len(data["epochs"]) + 1


def test_the_study_has_complete_trials_only_and_a_garbled_one_is_no_study():
    import optuna

    from steps.report.interactive import _study, study_json

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 1:
            trial.report(5.0, 0)
            raise optuna.TrialPruned()  # (Optuna gives it its last report as its value)
        return x

    study = optuna.create_study()
    study.optimize(objective, n_trials=3)
    spec = json.loads(study_json(study.trials, {"x": 1.0, "y": float("nan")}))
    assert spec["number"] == [0, 2]
    assert spec["importances"] == {"x": 1.0}
    assert _study(b'{"number": [1e400], "value": [1]}') is None
    assert _study(b'{"number": [0, 1], "value": [1]}') is None
    assert _study(b'{"number": [0], "value": [1], "importances": {"x": NaN}}')["importances"] == {}


def test_a_metric_of_zero_puts_the_sensitivity_on_a_linear_axis():
    from steps.report.compare_figures import styles
    from steps.report.interactive import compare_data

    table = made_up([[0, 1, 2]] * 3, paths=False)
    table.frame.loc[0, table.sort_metric] = 0.0
    assert compare_data(table, styles(table))["sensitivity"]["log"] is False


def test_colours_by_name_and_an_error_inside_the_gif_writer_speaks_for_itself(tmp_path):
    from matplotlib.figure import Figure

    from steps.report.animation import blit_writer
    from steps.report.interactive import hex_color

    assert hex_color("tab:orange") == "#ff7f0e"  # (by name: "C1" follows the style in force, and Optuna switches it)
    assert hex_color((1.0, 0.0, 0.0)) == "#ff0000"
    writer = blit_writer([], fps=10)
    with pytest.raises(RuntimeError, match="boom"), writer.saving(Figure(), tmp_path / "x.gif", 80):
        raise RuntimeError("boom")  # (it was "list index out of range", from the empty writer)


def test_a_page_without_curves_or_paths_hides_the_player_and_keeps_its_pictures(browser, tmp_path):
    from steps.report.compare_figures import figures
    from steps.report.compare_report import write

    table = made_up([[0, 1, 2]] * 2, paths=False)
    for g in table.gathered:
        g.epochs = g.loss = None
    write(tmp_path, table, figures(table), "no curves")
    page = tmp_path / "compare.html"
    seen = open_page(browser, page)
    assert seen.console == []
    assert not browser.find_element("id", "gd-player").is_displayed()
    assert "loss_curves.png" in [i.get_attribute("alt") for i in browser.find_elements("css selector", "figure img")]


# --------------------------------------------------------------------------- in MLflow's own artifact view


@pytest.mark.slow  # (a real mlflow server: ~15 s to start)
def test_the_page_draws_its_plots_inside_mlflows_artifact_view(browser, server, tmp_path, monkeypatch):
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", server.experiment_id)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(server.url)
    for command in (sgd, adam):
        invoke(command)
    invoke(compare, ["--output-dir", tmp_path / "out"])
    (run,) = server.client.search_runs([server.experiment_id], "tags.technique = 'compare'")
    # MLflow 3.17 shows an HTML artifact in an <iframe sandbox="allow-scripts"> of a blob: URL
    browser.get(f"{server.url}/#/experiments/{server.experiment_id}/runs/{run.info.run_id}/artifacts/compare.html")
    frame = WebDriverWait(browser, 60).until(lambda d: d.find_elements("css selector", "iframe"))[0]
    assert frame.get_attribute("sandbox") == "allow-scripts"
    browser.switch_to.frame(frame)
    try:
        WebDriverWait(browser, 60).until(lambda d: d.execute_script("return !!(window.gdlab && window.gdlab.done)"))
        assert plot_ids(browser) == ["gd-loss", "gd-paths-0"]
        now = next(t for t in traces(browser, "gd-paths-0") if t["name"] == "now")
        assert len(now["x"]) == 2  # both runs' markers, drawn by the page's own scripts inside MLflow's frame
    finally:
        browser.switch_to.default_content()


def test_a_sweep_of_24_runs_of_one_kind_gets_24_colours_on_the_page_and_in_the_table(tmp_path):
    from steps.report.compare_figures import figures, styles
    from steps.report.compare_report import write
    from steps.report.interactive import compare_data

    table = made_up([[0, 1, 2]] * 24)
    assert len({s.color for s in styles(table)}) == 1  # (the pictures colour 21 runs or more by kind)
    data = compare_data(table, styles(table))
    colors = [run["color"] for run in data["runs"]]
    assert len(set(colors)) == 24  # (they were one blue)
    write(tmp_path, table, figures(table), "24 runs")
    html = (tmp_path / "compare.html").read_text()
    assert all(f'background:{c}"' in html for c in colors)  # the table's swatch: the run's colour on the page
    lines = data["sensitivity"]["lines"]
    assert len({line["color"] for line in lines}) == len(lines)
