"""One full-batch epoch of a 1M x 10 -> 16 -> 1 network (forward, backward, Adam step): gdlab's
numpy (core.mlp.MLP.loss_and_grad + core.optimizers.adam) against torch (nn.Sequential, MSELoss,
torch.optim.Adam, foreach=False) on the same data, side by side, float64 and float32.

    PYTHONPATH=. python benchmarks/bench_mlp.py [--rows 1000000] [--threads 1] [--repeat 5]

Both libraries run with the same number of threads (--threads: numpy's BLAS through
threadpoolctl when it is installed, else the OPENBLAS/OMP_NUM_THREADS environment set here
before numpy loads; torch.set_num_threads). Prints the best of --repeat epochs and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    from core import optimizers
    from core.mlp import MLP

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X64 = rng.standard_normal((args.rows, 10))
    y64 = X64 @ rng.standard_normal(10) + 0.1 * rng.standard_normal(args.rows)
    print(f"{args.rows} x 10 -> 16 -> 1, full batch, Adam; threads {args.threads}; best of {args.repeat}")
    for dtype, tdtype in (("float64", torch.float64), ("float32", torch.float32)):
        X, y = np.asfortranarray(X64, dtype=dtype), y64.astype(dtype)
        model = MLP("linear", 10, True, hidden=(16,))
        theta = model.init("seed", 0).astype(dtype)
        opt = optimizers.adam()
        state, ws = opt.init(theta), model.workspace(args.rows, X.dtype)

        def ours(theta=theta, state=state, X=X, y=y, ws=ws, opt=opt, model=model):
            _, grad = model.loss_and_grad(theta, X, y, ws)
            step, _ = opt.update(grad, state, theta, 0.01)
            return theta - step

        net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).to(tdtype)
        topt = torch.optim.Adam(net.parameters(), lr=0.01, foreach=False)
        Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y)[:, None]

        def theirs(net=net, topt=topt, Xt=Xt, yt=yt):
            topt.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(net(Xt), yt).backward()
            topt.step()

        t_ours, t_torch = best(ours, args.repeat), best(theirs, args.repeat)
        print(f"{dtype}: gdlab {t_ours * 1e3:7.1f} ms   torch {t_torch * 1e3:7.1f} ms   ratio {t_ours / t_torch:.2f}")
    return 0


def best(fn, repeat: int) -> float:
    fn()  # warm up (first touch of the buffers)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


if __name__ == "__main__":
    sys.exit(main())
