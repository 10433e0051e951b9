"""Data: the lesson's set, seeded synthetic data, CSV loading (and refusing bad CSVs), splits."""

from __future__ import annotations

import gzip
import os
import re
import socket
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import LINES, refused
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from core import data, training
from core.config import TrainConfig
from core.data import DataError
from steps.sgd import sgd

# --- the lesson's data and synthetic data ----------------------------------------------------


def test_seed_data_is_the_lessons_exactly():
    X, y, names = data.seed_data()
    assert_array_equal(X, [[0.1, 0.2], [0.4, 0.5]])
    assert_array_equal(y, [0.3, 0.9])
    assert names == ("x0", "x1")
    assert X.dtype == y.dtype == np.float64
    assert X.flags.f_contiguous
    assert y.shape == (2,)


def test_synthetic_data_is_seeded():
    a, b, c = data.synthetic(seed=5), data.synthetic(seed=5), data.synthetic(seed=6)
    for x, z in zip(a, b, strict=True):
        assert_array_equal(x, z)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[3], c[3])


@pytest.mark.parametrize(("n_features", "n_informative"), [(10, 3), (5, 5), (4, 0), (1, 1)])
def test_synthetic_has_exactly_n_informative_nonzero_true_weights(n_features, n_informative):
    X, y, names, w = data.synthetic(30, n_features, n_informative, 0.1, 0)
    assert np.count_nonzero(w) == n_informative
    assert np.all(w[:n_informative] >= 0.5)
    assert np.all(w[:n_informative] <= 2.0)
    assert_array_equal(w[n_informative:], 0.0)
    assert X.shape == (30, n_features)
    assert y.shape == (30,)
    assert names == tuple(f"x{i}" for i in range(n_features))


def test_synthetic_X_is_fortran_ordered_float64():
    X, y, _, _ = data.synthetic(20, 3)
    assert X.flags.f_contiguous
    assert not X.flags.c_contiguous
    assert X.dtype == y.dtype == np.float64


def test_synthetic_without_noise_is_exactly_linear():
    X, y, _, w = data.synthetic(25, 4, 2, noise=0.0, seed=1)
    assert_array_equal(y, X @ w)


def test_synthetic_for_relu_comes_from_a_relu_teacher_on_the_same_draw():
    X, y, _, w = data.synthetic(50, 4, 2, noise=0.0, seed=1, teacher="relu")
    assert_array_equal(y, np.maximum(X @ w, 0.0))
    assert (y == 0).sum() > 10  # the teacher is off for a good share of the rows
    X2, y2, _, w2 = data.synthetic(50, 4, 2, noise=0.1, seed=1, teacher="relu")
    X3, y3, _, _ = data.synthetic(50, 4, 2, noise=0.1, seed=1)
    assert_array_equal(X2, X3)  # same inputs and weights; only f differs
    np.testing.assert_allclose(y2 - np.maximum(X2 @ w2, 0.0), y3 - X3 @ w2, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_samples": 0}, "n_samples >= 1"),
        ({"n_features": 0}, "n_features >= 1"),
        ({"n_features": 3, "n_informative": 4}, r"n_informative must be between 0 and n_features \(3\)"),
        ({"n_informative": -1}, "n_informative must be between"),
    ],
)
def test_synthetic_refuses_impossible_shapes(kwargs, message):
    with pytest.raises(DataError, match=message):
        data.synthetic(**kwargs)


# --- CSV files ---------------------------------------------------------------------------------


def write(tmp_path, text: str | bytes, name: str = "data.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def test_load_csv_reads_features_and_target_in_file_order(tmp_path):
    path = write(tmp_path, "a,y,b\n1,2,3\n4.5,-5,6e-1\n")
    X, y, names = data.load_csv(path)
    assert names == ("a", "b")
    assert_array_equal(X, [[1.0, 3.0], [4.5, 0.6]])
    assert_array_equal(y, [2.0, -5.0])
    assert X.dtype == y.dtype == np.float64
    assert X.flags.f_contiguous


def test_load_csv_takes_any_target_column(tmp_path):
    path = write(tmp_path, "price,size,rooms\n100,50,2\n200,90,4\n")
    X, y, names = data.load_csv(path, target="price")
    assert names == ("size", "rooms")
    assert_array_equal(y, [100.0, 200.0])
    assert_array_equal(X, [[50.0, 2.0], [90.0, 4.0]])


def test_load_csv_accepts_crlf_bom_and_no_final_newline(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfa,y\r\n1,2\r\n3,4")
    X, y, names = data.load_csv(path)
    assert names == ("a",)
    assert_array_equal(X, [[1.0], [3.0]])
    assert_array_equal(y, [2.0, 4.0])


def test_a_csv_dataset_trains_through_the_config(tmp_path):
    path = write(tmp_path, "x0,x1,y\n0.1,0.2,0.3\n0.4,0.5,0.9\n")
    cfg = TrainConfig(dataset=path)
    assert training.fit(cfg, training.load_data(cfg)).weights == [0.3644996182867053, 0.5455535728846579]


def test_missing_file_is_a_data_error_naming_the_file(tmp_path):
    path = str(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=re.escape(f"{path}: no such file")):
        data.load_csv(path)


def test_directory_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: a folder; give a CSV file")):
        data.load_csv(str(tmp_path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        ("a,y\n", "the file has a header but no rows"),
        ("a,b\n1,2\n", "no target column 'y' (2 columns: a, b)"),
        # (It listed the first 20 of 31 columns, with no sign of the rest: the target was among them.)
        (
            ",".join(f"c{i}" for i in range(31)) + "\n" + ",".join("1" * 31) + "\n",
            "no target column 'y' (31 columns: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, "
            "c15, c16, c17, c18, c19, ... 6 more ..., c26, c27, c28, c29, c30)",
        ),
        ("y\n1\n2\n", "no feature columns besides the target 'y'"),
        ("a,y\n1,2\nx,3\n", "column 'a' has the non-numeric or non-finite value 'x' on line 3"),
        ("a,y\n1,2\n3,4\n5,oops\n", "column 'y' has the non-numeric or non-finite value 'oops' on line 4"),
        ("a,y\n1,2\n,3\n", "column 'a' has a missing value on line 3"),
        ("a,y\n1\n", "column 'y' has a missing value on line 2"),
        ("a,y\n1,NA\n", "column 'y' has a missing value on line 2"),
        ("a,y\n1e400,2\n", "column 'a' has the non-numeric or non-finite value"),
        ("a,y\n1,2\n4,5,6\n", "not a readable CSV file (Error tokenizing data. C error: Expected 2 fields in line 3"),
        ('a,y\n"1,2\n', "not a readable CSV file"),
    ],
    ids=[
        "empty",
        "blank_lines",
        "header_only",
        "missing_target",
        "missing_target_of_31_columns",
        "only_target",
        "non_numeric",
        "non_numeric_target",
        "missing_value",
        "short_row",
        "NA",
        "overflow_to_inf",
        "ragged_long_row",
        "unclosed_quote",
    ],
)
def test_bad_csv_is_a_data_error_naming_file_column_and_line(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=re.escape(f"{path}: {message}")):
        data.load_csv(path)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x01\xff\xfe\x89PNG\r\n\x1a\n", bytes(range(256)), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 8],
    ids=["binary", "all_bytes", "png"],
)
def test_binary_garbage_is_a_data_error_naming_the_file(tmp_path, garbage):
    path = write(tmp_path, garbage, "garbage.csv")
    with pytest.raises(DataError, match=re.escape(path)):
        data.load_csv(path)


def test_config_with_a_bad_csv_fails_in_load_data(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DataError, match="no target column 'y'"):
        training.load_data(TrainConfig(dataset=path))


def test_integer_too_large_for_a_float_is_a_data_error(tmp_path):
    # pandas keeps a 310-digit integer as a Python int; pd.to_numeric(errors="coerce") then raises.
    path = write(tmp_path, "a,y\n1" + "0" * 309 + ",2\n")
    with pytest.raises(DataError, match="column 'a'"):
        data.load_csv(path)


def test_every_row_one_field_longer_than_the_header_is_refused(tmp_path):
    # read_csv treats the extra leading field as the row index: a=[2, 5], y=[3, 6] load silently.
    path = write(tmp_path, "a,y\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError):
        data.load_csv(path)


def test_line_number_in_the_message_counts_blank_lines(tmp_path):
    path = write(tmp_path, "a,y\n\n1,2\nx,3\n")  # 'x' is on line 4 of the file
    with pytest.raises(DataError, match="on line 4"):
        data.load_csv(path)


CSV_CHARS = st.sampled_from([*"0123456789.,-+eEyaxnNIinf\"' \t\n\r#;", "\x00", "é", "\ufeff"])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(
        st.text(CSV_CHARS, max_size=40),
        st.text(max_size=30),
        st.builds(lambda rows: "a,y\n" + "\n".join(rows), st.lists(st.text(CSV_CHARS, max_size=8), max_size=5)),
    )
)
def test_any_small_csv_text_either_loads_or_raises_data_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_text(text, encoding="utf-8", newline="")
    loaded, refusal = None, None
    try:
        loaded = data.load_csv(str(path))
    except DataError as exc:  # any other exception fails the test
        refusal = str(exc)
    if loaded is None:
        assert str(path) in refusal
        return
    X, y, names = loaded
    assert X.shape == (len(y), len(names))
    assert len(y) >= 1
    assert len(names) >= 1
    assert np.isfinite(X).all()
    assert np.isfinite(y).all()


# --- train / validation split -----------------------------------------------------------------


def test_zero_validation_fraction_keeps_every_row_for_training():
    X, y, _ = data.seed_data()
    Xt, yt, Xv, yv = data.split(X, y, 0.0, seed=0)
    assert Xt is X
    assert yt is y
    assert Xv is None
    assert yv is None


def test_split_is_seeded_disjoint_complete_and_keeps_row_order():
    X = np.asfortranarray(np.arange(20.0).reshape(10, 2))
    y = np.arange(10.0)
    Xt, yt, Xv, yv = data.split(X, y, 0.3, seed=1)
    assert (len(yt), len(yv)) == (7, 3)
    assert sorted([*yt, *yv]) == list(range(10))
    assert list(yt) == sorted(yt)
    assert list(yv) == sorted(yv)
    assert_array_equal(Xt[:, 0], 2 * yt)  # rows stay together
    assert_array_equal(Xv[:, 0], 2 * yv)
    assert Xt.flags.f_contiguous
    assert Xv.flags.f_contiguous
    again = data.split(X, y, 0.3, seed=1)
    assert_array_equal(again[3], yv)
    others = [data.split(X, y, 0.3, seed=s)[3] for s in range(2, 8)]
    assert any(not np.array_equal(o, yv) for o in others)


@pytest.mark.parametrize(
    ("n", "fraction", "n_train", "n_val"),
    [(2, 0.1, 2, 0), (2, 0.9, 0, 2), (1, 0.5, 1, 0), (10, 0.04, 10, 0), (10, 0.96, 0, 10)],
)
def test_split_leaving_a_side_with_zero_rows_is_a_data_error(n, fraction, n_train, n_val):
    X, y = np.ones((n, 1)), np.ones(n)
    with pytest.raises(DataError, match=f"leaves {n_train} training and {n_val} validation rows"):
        data.split(X, y, fraction, seed=0)


def test_split_of_two_rows_in_half_gives_one_each():
    X, y, _ = data.seed_data()
    Xt, yt, Xv, yv = data.split(X, y, 0.5, seed=0)
    assert (Xt.shape, Xv.shape) == ((1, 2), (1, 2))
    assert (len(yt), len(yv)) == (1, 1)
    assert sorted([*yt, *yv]) == [0.3, 0.9]


def test_seed_data_with_a_too_small_validation_fraction_fails_in_load_data():
    with pytest.raises(DataError, match=re.escape("validation fraction 0.1 of 2 rows")):
        training.load_data(TrainConfig(validation_fraction=0.1))


# --- standardized features (--standardize) -----------------------------------------------------

DIABETES = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "diabetes.csv")


def test_the_shipped_diabetes_table_is_scikit_learns_unscaled_data():
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(scaled=False, as_frame=True).frame
    X, y, names = data.load_csv(DIABETES, "target")
    assert names == ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
    assert_array_equal(X, frame[list(names)].to_numpy())
    assert_array_equal(y, frame["target"].to_numpy())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_size", [0, 16], ids=["full-batch", "mini-batch"])
def test_the_scaler_is_standardscalers_on_the_training_split_and_the_validation_rows_use_it(dtype, batch_size):
    from sklearn.preprocessing import StandardScaler

    on = TrainConfig(
        dataset=DIABETES, target="target", validation_fraction=0.25, seed=3, dtype=dtype, batch_size=batch_size
    )
    raw, std = training.load_data(on), training.load_data(TrainConfig(**{**on.__dict__, "standardize": True}))
    assert raw.mean is None
    assert raw.scale is None
    sk = StandardScaler().fit(raw.X_train)  # the training rows only
    # The same arithmetic as scikit-learn's: equal to the last bit (measured: 0 difference).
    assert_array_equal(std.mean, sk.mean_)
    assert_array_equal(std.scale, sk.scale_)
    # float32: scikit-learn transforms in float32, gdlab in float64 and then rounds (measured: 4.8e-7, 1 ulp).
    tol = 0.0 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(std.X_train, sk.transform(raw.X_train), rtol=0, atol=tol)
    np.testing.assert_allclose(std.X_val, sk.transform(raw.X_val), rtol=0, atol=tol)  # the training stats
    assert not np.allclose(std.X_val.mean(axis=0), 0.0, atol=1e-3)  # (not the validation rows' own)
    assert_array_equal(std.y_train, raw.y_train)  # the target is left as it is
    assert_array_equal(std.y_val, raw.y_val)
    assert std.X_train.dtype == std.X_val.dtype == np.dtype(dtype)
    for a, b in ((std.X_train, raw.X_train), (std.X_val, raw.X_val)):
        assert (a.flags.f_contiguous, a.flags.c_contiguous) == (b.flags.f_contiguous, b.flags.c_contiguous)


def test_a_constant_column_gets_scale_one_and_is_only_centred_as_in_scikit_learn():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(5.0, 3.0, 50), np.full(50, 0.1), np.zeros(50), np.full(50, 1e6)])
    mean, scale = data.fit_scaler(X)
    sk = StandardScaler().fit(X)
    np.testing.assert_allclose(mean, sk.mean_, rtol=1e-15)
    assert_array_equal(scale[1:], [1.0, 1.0, 1.0])
    assert_array_equal(scale, sk.scale_)


def test_one_training_row_is_centred_to_zeros_as_in_scikit_learn():
    from sklearn.preprocessing import StandardScaler

    X = np.array([[3.0, -2.0]])
    assert_array_equal(data.fit_scaler(X)[1], StandardScaler().fit(X).scale_)
    std = training.load_data(TrainConfig(standardize=True, validation_fraction=0.5))  # the seed set, 1 + 1 rows
    assert_array_equal(std.scale, [1.0, 1.0])
    assert_array_equal(std.X_train, [[0.0, 0.0]])


@pytest.mark.parametrize("dataset", ["seed", "synthetic"])
def test_built_in_data_standardizes_too_and_is_left_alone_by_default(dataset):
    from sklearn.preprocessing import StandardScaler

    cfg = TrainConfig(dataset=dataset)
    X = data.seed_data()[0] if dataset == "seed" else data.synthetic(teacher="relu")[0]
    default = training.load_data(cfg)
    assert_array_equal(default.X_train, X)  # off by default: the lesson's numbers stay the same
    std = training.load_data(TrainConfig(dataset=dataset, standardize=True))
    np.testing.assert_allclose(std.X_train, StandardScaler().fit_transform(X), rtol=1e-13, atol=1e-15)
    if dataset == "seed":
        np.testing.assert_allclose(std.X_train, [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-15)


def test_a_spread_too_large_for_float64_is_a_data_error():
    with pytest.raises(DataError, match="too large to standardize"):
        data.fit_scaler(np.array([[1e200], [-1e200], [3e200]]))


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("bias", [None, 2.5])
def test_weights_in_original_units_give_the_same_output_on_raw_inputs(activation, bias):
    from core.neuron import forward, original_units, standardize

    X = np.asarray(data.load_csv(DIABETES, "target")[0])
    mean, scale = data.fit_scaler(X)
    w = np.random.default_rng(1).normal(0.0, 20.0, X.shape[1])
    on_z = forward(standardize(X, mean, scale), w, bias, activation)
    w_raw, b_raw = original_units(w, bias, mean, scale)
    np.testing.assert_allclose(forward(X, w_raw, b_raw, activation), on_z, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(forward(X, w, bias, activation, mean=mean, scale=scale), on_z, rtol=0, atol=0)


# --------------------------------------------------------------------------- hostile input (was test_hostile.py)

# --------------------------------------------------------------------------- 7, 9, 10, 11: data


@pytest.mark.parametrize("suffix", [".zst", ".zip", ".tar", ".xz", ".gz", ".bz2"])
def test_a_text_file_with_a_compression_suffix_is_a_one_line_error(tracking, suffix):
    path = tracking.root / f"data.csv{suffix}"
    path.write_text(LINES)
    refused(CliRunner().invoke(sgd, ["--dataset", str(path)]), "'--dataset'", path.name)
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_a_truncated_gzip_is_a_one_line_error_not_aborted(tracking):
    data = gzip.compress(("x0,x1,y\n" + "0.1,0.2,0.3\n" * 5000).encode())
    path = tracking.root / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(sgd, ["--dataset", str(path)])
    refused(result, "cut.csv.gz: not a readable CSV file")
    assert "Aborted" not in result.output


@pytest.mark.parametrize("url", ["s3://bucket/data.csv", "gs://bucket/data.csv"])
def test_a_cloud_url_without_its_filesystem_package_is_a_one_line_error(tracking, url):
    refused(CliRunner().invoke(sgd, ["--dataset", url]), url)


def test_a_fifo_is_refused_at_once_not_read_forever(tracking):
    fifo = tracking.root / "pipe.csv"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    refused(CliRunner().invoke(sgd, ["--dataset", str(fifo)]), "not a regular file")
    assert time.monotonic() - t0 < 10


def test_a_dataset_url_that_never_answers_times_out(tracking, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()  # accepts, never answers
    monkeypatch.setenv("GDLAB_READ_TIMEOUT_S", "1")
    url = f"http://127.0.0.1:{server.getsockname()[1]}/data.csv"
    t0 = time.monotonic()
    try:
        refused(CliRunner().invoke(sgd, ["--dataset", url]), url, "no answer within 1 s")
    finally:
        for conn, _ in held:
            conn.close()
        server.close()
    assert time.monotonic() - t0 < 15


def test_a_csv_served_over_http_is_read(tracking, tmp_path):
    import http.server

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "data.csv.gz").write_bytes(gzip.compress(LINES.encode()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path / "web"), **k)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/data.csv.gz"
        result = CliRunner().invoke(sgd, ["--dataset", url, "--epochs", "3"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.exit_code == 0, result.output


def test_synthetic_data_too_large_for_memory_is_refused_before_allocating(tracking):
    result = CliRunner().invoke(sgd, ["--dataset", "synthetic", "--n-samples", "100000000", "--n-features", "1000"])
    refused(result, "100000000 x 1000 needs", "GiB")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "synthetic", "--noise", "1e308"], "too large for float64"),
        (["--dataset", "synthetic", "--noise", "1e30", "--dtype", "float32"], "overflow float32 when squared"),
    ],
)
def test_data_that_overflows_the_dtype_is_bad_data_not_a_divergence(tracking, args, needle):
    result = CliRunner().invoke(sgd, args)
    refused(result, needle)
    assert "smaller learning rate" not in result.output


def test_finite_csv_values_beyond_float32_are_refused_with_dtype_float32(tracking):
    path = tracking.root / "big.csv"
    path.write_text("x0,y\n1e39,1\n2,3\n")
    refused(CliRunner().invoke(sgd, ["--dataset", str(path), "--dtype", "float32"]), "too large for float32")


def test_n_informative_is_blamed_on_itself_not_on_the_dataset(tracking):
    result = CliRunner().invoke(sgd, ["--dataset", "synthetic", "--n-informative", "20"])
    refused(result, "'--n-informative'", "more than --n-features (10)")
    assert "'--dataset'" not in result.output


def test_a_missing_relative_dataset_says_where_it_looked(tracking, monkeypatch):
    result = CliRunner().invoke(sgd, ["--dataset", "x.csv"])
    refused(result, f"looked for {tracking.root / 'x.csv'}")
    run = tracking.client.create_run(tracking.experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run)  # as under `mlflow run`
    refused(CliRunner().invoke(sgd, ["--dataset", "x.csv"]), "give an absolute path or a URL")


def test_escape_sequences_in_a_csv_never_reach_the_terminal(tracking):
    path = tracking.root / "evil.csv"
    path.write_text("\x1b[2J\x1b[31mx0,y\n1,\x1b]0;pwned\x07\n")
    result = CliRunner().invoke(sgd, ["--dataset", str(path), "--target", "y"])
    refused(result, "\\x1b")
    assert "\x1b" not in result.output
    assert "\x07" not in result.output
