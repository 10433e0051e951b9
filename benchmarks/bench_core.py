"""Side-by-side speed of gdlab's numpy core against its references, printed as ratios.

    python benchmarks/bench_core.py            # all sections (about a minute)
    python benchmarks/bench_core.py fullbatch lesson minibatch logging memory

Every section times the competitors in this one process, alternating them, and
reports medians; the machine is noisy, so read the ratios, not the absolute times.
torch and scikit-learn are optional (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import TrainConfig
from core.data import Dataset
from core.training import fit


def median_time(fn, repeat=7, number=1):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return float(np.median(times))


def big_data(n=1_000_000, d=10, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = np.asfortranarray(rng.standard_normal((d, n)).T, dtype=dtype)
    y = (X @ np.linspace(-1, 1, d).astype(dtype) + 0.1).astype(dtype)
    return X, y


def reference_step(X, y, w, z, g, relu):
    """The best plain-numpy full-batch step: column-major X, preallocated n-vectors,
    loss from the gradient's forward pass."""
    n = len(y)
    np.matmul(X, w, out=z)
    if relu:
        mask = z > 0
        np.maximum(z, 0, out=z)
        z -= y
        loss = z @ z / n
        z *= mask
    else:
        z -= y
        loss = z @ z / n
    np.matmul(X.T, z, out=g)
    w -= (0.01 * 2 / n) * g
    return loss


def reference_logistic_step(X, y, w, z, g):
    """The same for the log loss (labels y in 0/1): the stable formulas from e = exp(-|z|),
    written plainly (numpy's temporaries allowed)."""
    n = len(y)
    np.matmul(X, w, out=z)
    e = np.exp(-np.abs(z))
    loss = (np.maximum(z, 0).sum() - y @ z + np.log1p(e).sum()) / n
    r = np.where(z > 0, 1.0, e) / (1.0 + e) - y  # sigmoid(z) - y
    np.matmul(X.T, r, out=g)
    w -= (0.01 / n) * g
    return loss


def bench_fullbatch():
    print("\n## Full-batch epoch, 1M x 10 (median ms per epoch; ratio = gdlab / plain-numpy reference)")
    print(f"{'case':34s} {'reference':>10s} {'gdlab':>8s} {'ratio':>6s}  {'torch':>8s}")
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    for dtype in (np.float64, np.float32):
        X, y = big_data(dtype=dtype)
        n, d = X.shape
        labels = (y > 0).astype(dtype)  # the logistic model's 0/1 target
        for model in ("linear", "relu", "logistic"):
            yy = labels if model == "logistic" else y
            ds = Dataset(X, yy, None, None, tuple(f"x{i}" for i in range(d)))
            for penalty in ("none", "l2", "l1"):
                if dtype is np.float32 and penalty != "none":
                    continue
                w, z, g = np.zeros(d, dtype), np.empty(n, dtype), np.empty(d, dtype)
                if model == "logistic":
                    ref = median_time(lambda X=X, y=yy, w=w, z=z, g=g: reference_logistic_step(X, y, w, z, g))
                else:
                    ref = median_time(
                        lambda X=X, y=y, w=w, z=z, g=g, m=model: reference_step(X, y, w, z, g, m == "relu")
                    )
                cfg = TrainConfig(
                    model=model,
                    epochs=10,
                    penalty=penalty,
                    lam=0.01 if penalty != "none" else 0.0,
                    dtype=np.dtype(dtype).name,
                )
                ours = np.median([fit(cfg, ds).train_time_s / cfg.epochs for _ in range(3)])
                tt = ""
                if torch is not None and penalty == "none":
                    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(yy)
                    wt = torch.zeros(d, dtype=Xt.dtype, requires_grad=True)
                    opt = torch.optim.SGD([wt], lr=0.01)

                    def torch_step(Xt=Xt, yt=yt, wt=wt, opt=opt, m=model):
                        opt.zero_grad()
                        p = Xt @ wt
                        if m == "logistic":
                            loss = torch.nn.functional.binary_cross_entropy_with_logits(p, yt)
                        else:
                            p = torch.relu(p) if m == "relu" else p
                            loss = ((p - yt) ** 2).mean()
                        loss.backward()
                        opt.step()

                    tt = f"{median_time(torch_step, repeat=5) * 1e3:8.2f}"
                name = f"{model} {penalty} {np.dtype(dtype).name}"
                print(f"{name:34s} {ref * 1e3:10.2f} {ours * 1e3:8.2f} {ours / ref:6.2f}  {tt:>8s}")
        bw = 2 * X.nbytes / 32e9
        print(f"{'  bandwidth bound (X read twice at 32 GB/s)':34s} {bw * 1e3:10.2f}   ({np.dtype(dtype).name})")


def bench_lesson():
    print("\n## The lesson's 2x2 Adam: one whole epoch (forward, loss, gradient, update, metric record)")
    epochs = 20_000
    cfg = TrainConfig(optimizer="adam", epochs=epochs)
    from core.training import load_data

    data = load_data(cfg)
    recorded = []

    def callback(epoch, metrics, theta):
        recorded.append((epoch, metrics))

    def ours():
        recorded.clear()
        fit(cfg, data, callback)

    t_ours = median_time(ours, repeat=5) / epochs

    def python_floats():
        (a, b), (c, e) = ((0.1, 0.2), (0.4, 0.5))
        y0, y1 = 0.3, 0.9
        w0, w1, m0, m1, v0, v1 = 0.1, 0.2, 0.0, 0.0, 0.0, 0.0
        for t in range(1, epochs + 1):
            z0, z1 = a * w0 + b * w1, c * w0 + e * w1
            r0 = (z0 - y0) if z0 > 0 else 0.0
            r1 = (z1 - y1) if z1 > 0 else 0.0
            g0, g1 = a * r0 + c * r1, b * r0 + e * r1
            m0, m1 = 0.9 * m0 + 0.1 * g0, 0.9 * m1 + 0.1 * g1
            v0, v1 = 0.999 * v0 + 0.001 * g0 * g0, 0.999 * v1 + 0.001 * g1 * g1
            bc1, bc2 = 1 - 0.9**t, (1 - 0.999**t) ** 0.5
            w0 -= 0.01 / bc1 * m0 / (v0**0.5 / bc2 + 1e-8)
            w1 -= 0.01 / bc1 * m1 / (v1**0.5 / bc2 + 1e-8)

    t_py = median_time(python_floats, repeat=5) / epochs
    print(f"gdlab core (numpy)          {t_ours * 1e6:8.2f} us/epoch")
    floor = f"(the call floor; gdlab / floats = {t_ours / t_py:.1f}x)"
    print(f"plain Python floats         {t_py * 1e6:8.2f} us/epoch   {floor}")
    try:
        import torch
    except ImportError:
        print("torch not installed: torch.optim.Adam comparison skipped")
        return
    torch.set_num_threads(1)
    X = torch.tensor([[0.1, 0.2], [0.4, 0.5]], dtype=torch.float64)
    y = torch.tensor([0.3, 0.9], dtype=torch.float64)
    w = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.01)

    def torch_epochs(k=2000):
        for _ in range(k):
            opt.zero_grad()
            loss = ((torch.relu(X @ w) - y) ** 2).mean()
            loss.backward()
            opt.step()
            loss.item()

    t_torch = median_time(torch_epochs, repeat=5) / 2000
    print(f"torch.optim.Adam + autograd {t_torch * 1e6:8.2f} us/epoch   (torch / gdlab = {t_torch / t_ours:.1f}x)")


def bench_minibatch():
    print("\n## One mini-batch epoch, 1M x 10, batch 256, shuffled (median s)")
    X, y = big_data()
    ds = Dataset(X, y, None, None, tuple(f"x{i}" for i in range(X.shape[1])))
    cfg = TrainConfig(model="linear", epochs=1, batch_size=256, learning_rate=0.001)
    ours = np.median([fit(cfg, ds).train_time_s for _ in range(3)])
    print(f"gdlab core                   {ours:7.3f} s")
    try:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDRegressor
    except ImportError:
        print("scikit-learn not installed: SGDRegressor comparison skipped")
        return
    Xc = np.ascontiguousarray(X)

    def sk():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            SGDRegressor(
                max_iter=1, tol=None, penalty=None, learning_rate="constant", eta0=0.001, shuffle=True, random_state=0
            ).fit(Xc, y)

    t_sk = median_time(sk, repeat=3)
    print(f"scikit-learn SGDRegressor    {t_sk:7.3f} s   (gdlab / sklearn = {ours / t_sk:.2f}; <= 1 is the goal)")


def bench_logging():
    print("\n## Logging to sqlite: cost per logged value, end to end")
    import mlflow
    from mlflow.tracking import MlflowClient

    from steps.run.tracking import MetricBuffer

    with tempfile.TemporaryDirectory() as tmp:
        client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        exp = client.create_experiment("bench", artifact_location=Path(tmp, "a").as_uri())
        run = client.create_run(exp)
        values = 30_000
        buffer = MetricBuffer(client, run.info.run_id)
        t = time.perf_counter()
        for step in range(values // 3):
            buffer.add({"loss": 1.0 / (step + 1), "objective": 2.0, "val_loss": 3.0}, step)
        buffer.flush()
        batched = (time.perf_counter() - t) / values
        run2 = client.create_run(exp)
        k = 200
        t = time.perf_counter()
        for step in range(k):
            client.log_metric(run2.info.run_id, "loss", 1.0, step=step)
        single = (time.perf_counter() - t) / k
        assert len(client.get_metric_history(run.info.run_id, "loss")) == values // 3
    print(f"gdlab MetricBuffer (log_batch) {batched * 1e6:8.1f} us/value  (goal <= 300)")
    print(
        f"log_metric per value           {single * 1e6:8.1f} us/value  (log_metric / batched = {single / batched:.0f}x)"
    )
    del mlflow


MEMORY_CHILD = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from core.config import TrainConfig
from core.data import synthetic, Dataset
from core.training import fit

def status(key):  # VmHWM: this process's peak resident memory (reset by exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

base = status("VmRSS")
X, y, names, _ = synthetic(1_000_000, 100, 10, 0.1, 0, teacher={model!r})
ds = Dataset(X, y, None, None, names)
fit(TrainConfig(model={model!r}, epochs=3, learning_rate=0.01), ds)
print(base, status("VmHWM"), X.nbytes)
"""


def bench_memory():
    print("\n## Memory: full-batch training on 1M x 100 float64 synthetic data (800 MB)")
    root = str(Path(__file__).resolve().parents[1])
    for model in ("linear", "relu", "logistic"):
        code = MEMORY_CHILD.format(root=root, model=model)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        base, peak, nbytes = map(int, out.split())
        print(
            f"{model:8s}: peak RSS {peak / 2**20:.0f} MiB = interpreter + numpy {base / 2**20:.0f} MiB "
            f"+ {(peak - base) / 2**20:.0f} MiB; data {nbytes / 2**20:.0f} MiB; "
            f"(peak - base) / data = {(peak - base) / nbytes:.2f} (goal <= 1.3)"
        )


SECTIONS = {
    "fullbatch": bench_fullbatch,
    "lesson": bench_lesson,
    "minibatch": bench_minibatch,
    "logging": bench_logging,
    "memory": bench_memory,
}

if __name__ == "__main__":
    unknown = [name for name in sys.argv[1:] if name not in SECTIONS]
    if unknown:
        sys.exit(f"usage: python benchmarks/bench_core.py [{'|'.join(SECTIONS)} ...] (all by default)")
    for name in sys.argv[1:] or SECTIONS:
        SECTIONS[name]()
