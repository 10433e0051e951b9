"""The interactive report's size and the time to open it in headless Chromium, side by side (issue 26).

    python benchmarks/bench_report.py [--runs 4,100,1000] [--epochs 100]

For each count, a comparison of that many runs on the lesson's problem (a 2-weight ReLU neuron on
the seed data: the loss curves, the paths on the loss surface, the sensitivity plot) is written as
compare writes it (:func:`steps.report.compare_report.write`, PNGs and all), then opened in Chromium
through selenium: the seconds until every plot is drawn (``window.gdlab.ready``), and the ratio to
the smallest page. The runs are made up (``many_runs``: each one's path is a decaying spiral to the
lesson's minimum), the page is real.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("sgd", "adam", "rmsprop", "adagrad", "nadam", "lion", "adamw", "radam")


def many_runs(n: int, epochs: int = 100, seed: int = 0):
    """``n`` made-up runs of ``train`` on the lesson's problem, as compare gathers them."""
    from steps.report.compare_runs import Gathered
    from steps.report.compare_table import build_table

    rng = np.random.default_rng(seed)
    end = np.array([0.82, 0.92])
    gathered = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        lr = float(10 ** rng.uniform(-3, -0.5))
        t = np.arange(epochs, dtype=float)
        decay = np.exp(-t * lr * rng.uniform(0.5, 3))
        angle = t * rng.uniform(0, 0.3)
        start = np.array([0.1, 0.2])
        path = end + (start - end)[None, :] * decay[:, None] * np.column_stack([np.cos(angle), np.cos(angle * 0.7)])
        loss = 0.006 + 0.3 * decay
        params = {"optimizer": kind, "penalty": "none", "learning_rate": f"{lr:.4g}", "dataset": "seed",
                  "model": "relu", "epochs": str(epochs)}  # fmt: skip
        metrics = {"final_loss": float(loss[-1]), "final_objective": float(loss[-1]), "epochs_run": float(epochs)}
        info = SimpleNamespace(run_id=f"{i:032x}", run_name=f"{kind} {i}", status="FINISHED", start_time=i)
        data = SimpleNamespace(params=params, metrics=metrics, tags={"technique": "train"})
        g = Gathered(run=SimpleNamespace(info=info, data=data), technique="train")
        g.epochs, g.loss, g.path, g.weights, g.bias = t, loss, path, [*map(float, path[-1])], None
        g.curve_source = "trajectory.csv"
        gathered.append(g)
    return build_table(gathered)


def write_page(n: int, out: Path, epochs: int = 100) -> Path:
    """compare's files for ``n`` made-up runs in ``out``; the page's path."""
    import warnings

    from steps.report.compare_figures import figures
    from steps.report.compare_report import write

    table = many_runs(n, epochs)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write(out, table, figures(table), f"{n} made-up runs")
    return out / "compare.html"


def chromium():
    """A headless Chromium through selenium, or None (with the reason) where there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed"
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        return None, "chromium and chromium-driver are not installed"
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=opts, service=Service(driver))
    browser.set_script_timeout(600)
    return browser, ""


def open_seconds(browser, page: Path) -> tuple[float, list]:
    """Seconds from asking for the page to every plot drawn, and what the console said."""
    browser.get("about:blank")
    browser.get_log("browser")
    start = time.perf_counter()
    browser.get(page.as_uri())
    browser.execute_async_script("const done = arguments[arguments.length - 1]; window.gdlab.ready.then(done, done);")
    return time.perf_counter() - start, browser.get_log("browser")


def main() -> None:
    parser = argparse.ArgumentParser(usage="python benchmarks/bench_report.py [--runs 4,100,1000] [--epochs 100]")
    parser.add_argument("--runs", default="4,100,1000", help="run counts, comma-separated")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = [int(c) for c in args.runs.split(",")]
    browser, why = chromium()
    if browser is None:
        print(f"note: {why}: sizes only")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            start = time.perf_counter()
            page = write_page(n, Path(tmp) / str(n), args.epochs)
            written = time.perf_counter() - start
            size = page.stat().st_size
            data = page.read_text(encoding="utf-8").split('id="gdlab-data">', 1)[1].split("</script>", 1)[0]
            opened, console = (None, [])
            if browser is not None:
                times = []
                for _ in range(args.repeats):
                    seconds, console = open_seconds(browser, page)
                    times.append(seconds)
                opened = float(np.median(times))
            rows.append((n, size, len(data), written, opened, len(json.loads(data)["epochs"]), console))
    if browser is not None:
        browser.quit()
    base = rows[0][4]
    print(f"{'runs':>6} {'page MB':>8} {'data MB':>8} {'epochs':>7} {'write s':>8} {'open s':>7} {'open ratio':>10}")
    for n, size, data, written, opened, epochs, console in rows:
        ratio = f"{opened / base:.1f}x" if opened and base else "-"
        shown = f"{opened:.2f}" if opened is not None else "-"
        print(f"{n:>6} {size / 1e6:>8.2f} {data / 1e6:>8.2f} {epochs:>7} {written:>8.2f} {shown:>7} {ratio:>10}")
        for line in console:
            print(f"       console: {line}")


if __name__ == "__main__":
    main()
