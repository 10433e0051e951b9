"""Data: the lesson's 2x2 set, a seeded synthetic problem, CSV loading, binary labels, the scaler.

Every loader returns float64 features ``X`` (n, d) in Fortran order (column-major:
both ``X @ w`` and ``X.T @ r`` then stream X contiguously, which is what a
full-batch step wants), a target ``y`` (n,) and the feature names. A classifier's
target (``--model logistic``) is two labels, numbers or text, which :func:`binary_labels`
maps to 0 and 1 in sorted order; the labels are kept as the dataset's ``classes``. Mini-batch
training wants rows contiguous instead (a random row is then one short read, not
d reads far apart); ``core.training.load_data`` picks the layout.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import numpy as np

from .neuron import sigmoid

# The lesson's toy problem, exactly as printed there.
SEED_X = ((0.1, 0.2), (0.4, 0.5))
SEED_Y = (0.3, 0.9)


class DataError(ValueError):
    """The user's data cannot be used; the message says which file, column or row."""


@dataclass(frozen=True)
class Dataset:
    """Training (and optional validation) arrays plus the feature names.

    With ``--standardize true`` the arrays hold standardized features and ``mean``, ``scale``
    are the scaler fitted on the training split (:func:`fit_scaler`); both None otherwise. For a
    classifier, ``classes`` are the two labels whose 0 and 1 the targets are (None for a regression).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    feature_names: tuple[str, ...]
    _: KW_ONLY  # the optional parts by name only: three Nones in a row are easy to misplace
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    classes: tuple | None = None

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def seed_data() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The lesson's X = [[0.1, 0.2], [0.4, 0.5]], y = [0.3, 0.9]."""
    X = np.asfortranarray(np.array(SEED_X, dtype=np.float64))
    return X, np.array(SEED_Y, dtype=np.float64), ("x0", "x1")


TEACHERS = ("linear", "relu", "logistic")


def synthetic(
    n_samples: int = 200,
    n_features: int = 10,
    n_informative: int = 3,
    noise: float = 0.1,
    seed: int = 0,
    teacher: str = "linear",
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """A seeded problem with a sparse true weight vector, made by the model it will train.

    ``X ~ N(0, 1)``; the first ``n_informative`` true weights are drawn from
    U(0.5, 2) (the rest are exactly zero, so L1's sparsity can be seen);
    ``y = f(X w_true) + noise * N(0, 1)`` with ``f`` the ``teacher``'s activation: the
    identity for ``linear``, ``max(0, z)`` for ``relu`` (so a ReLU neuron can fit it; a linear
    target is negative half the time, where a ReLU neuron can only answer 0). A ``logistic``
    teacher draws labels instead, ``y ~ Bernoulli(σ(X w_true))`` (y = 1 where u < σ(X w_true),
    u ~ U(0, 1) from the same generator, after the same X and w_true), and reads no ``noise``.
    Returns ``(X, y, names, w_true)``.
    """
    if teacher not in TEACHERS:
        raise DataError(f"unknown teacher {teacher!r}; choose from {', '.join(TEACHERS)}")
    if n_samples < 1 or n_features < 1:
        raise DataError("synthetic data needs n_samples >= 1 and n_features >= 1")
    if not 0 <= n_informative <= n_features:
        raise DataError(f"n_informative must be between 0 and n_features ({n_features})")
    need = n_samples * n_features * 8
    if need > physical_memory():
        raise DataError(
            f"synthetic data of {n_samples} x {n_features} needs {need / 2**30:.1f} GiB, more than this "
            f"machine's {physical_memory() / 2**30:.1f} GiB of memory"
        )
    rng = np.random.default_rng(seed)
    # Drawn as (d, n) and transposed: column-major X without a second copy of the data.
    X = rng.standard_normal((n_features, n_samples)).T
    w_true = np.zeros(n_features)
    w_true[:n_informative] = rng.uniform(0.5, 2.0, n_informative)
    with np.errstate(over="ignore"):  # a huge --noise overflows: load_data reports it
        z = X @ w_true
        if teacher == "logistic":
            y = (rng.uniform(size=n_samples) < sigmoid(z)).astype(np.float64)
        else:
            if teacher == "relu":
                np.maximum(z, 0.0, out=z)
            y = z + noise * rng.standard_normal(n_samples)
    names = tuple(f"x{i}" for i in range(n_features))
    return X, y, names, w_true


# Reading a dataset URL gives up after this many seconds without an answer (GDLAB_READ_TIMEOUT_S).
READ_TIMEOUT_S = 30.0
# Schemes read with the standard library; any other scheme (s3://, gs://, ...) goes through fsspec.
URL_SCHEMES = ("http", "https", "ftp")


def printable(text: object, limit: int = 200) -> str:
    """``text`` safe for a terminal: control characters (escape sequences) shown escaped, cut to ``limit``."""
    s = str(text)
    s = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _open_source(source: str):
    """What pandas should read: a local regular file's path, or the bytes of a URL (with a timeout).

    Raises :class:`DataError` for a missing file, something that is not a regular file (a FIFO,
    a folder), a URL that does not answer in time, or a scheme whose reader is not installed.
    """
    import importlib.util
    import io
    import os
    import urllib.error
    import urllib.parse
    import urllib.request

    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if len(scheme) > 1 and "://" in source:  # (a one-letter "scheme" is a Windows drive)
        if scheme not in URL_SCHEMES:
            if scheme == "file":
                return _open_source(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
            if importlib.util.find_spec("fsspec") is None:
                raise DataError(
                    f"{printable(source)}: reading {scheme}:// URLs needs fsspec and its {scheme} filesystem "
                    f"(e.g. pip install s3fs or gcsfs); or download the file and pass its path"
                )
            return source  # pandas hands it to fsspec
        timeout = float(os.environ.get("GDLAB_READ_TIMEOUT_S", READ_TIMEOUT_S))
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                reason = f"no answer within {timeout:g} s (GDLAB_READ_TIMEOUT_S)"
            raise DataError(f"{printable(source)}: could not download it ({printable(reason)})") from None
        buffer = io.BytesIO(data)
        buffer.name = urllib.parse.urlsplit(source).path  # lets pandas infer the compression
        return buffer
    path = os.path.abspath(source)
    if not os.path.exists(path):
        where = "" if source == path else f" (looked for {printable(path)})"
        raise DataError(f"{printable(source)}: no such file{where}")
    if not os.path.isfile(path):
        kind = "a folder" if os.path.isdir(path) else "not a regular file (a FIFO, socket or device)"
        raise DataError(f"{printable(source)}: {kind}; give a CSV file")
    return source


def physical_memory() -> int:
    """Bytes of RAM (a large number where the platform does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def load_csv(source: str, target: str = "y", *, labels: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a CSV file (local path or URI pandas can open) as data only.

    ``target`` names the column to predict; every other column is a feature and
    must be numeric. Missing values, non-numeric cells and empty files are refused
    with a :class:`DataError` naming the column and row. Compression is inferred from
    the name (.gz, .bz2, .zip, .xz, .zst, .tar); a URL is read with a timeout.
    With ``labels`` (a classifier's target) a target column of text is returned as it is,
    an object array of strings (:func:`binary_labels` maps it); numbers are floats as always.
    """
    import pandas as pd  # pandas is only needed for CSV input

    name = printable(source)
    frame = _read_frame(_open_source(source), name)
    if target not in frame.columns:
        names = [printable(c, 60) for c in frame.columns]
        if len(names) > 30:  # the first 20 and the last 5 (a table's target is often its last column)
            names = [*names[:20], f"... {len(names) - 25} more ...", *names[-5:]]
        cols = ", ".join(names)
        raise DataError(f"{name}: no target column '{printable(target)}' ({len(frame.columns)} columns: {cols})")
    line = np.arange(len(frame)) + 2  # as an editor shows it: the header is line 1
    keep = ~frame.isna().all(axis=1).to_numpy()
    frame, line = frame[keep], line[keep]
    if len(frame) == 0:
        raise DataError(f"{name}: the file has a header but no rows")
    features = [c for c in frame.columns if c != target]
    if not features:
        raise DataError(f"{name}: no feature columns besides the target '{printable(target)}'")
    columns = {}
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        if labels and col == target and not numeric:  # text labels, kept as they are
            values = frame[col].to_numpy(dtype=object)
            bad = frame[col].isna().to_numpy()
        else:
            if numeric:
                values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
            else:  # text, or numbers too large for float64: convert cell by cell
                values = np.array([_to_float(v) for v in frame[col]], dtype=np.float64)
            bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            cell = frame[col].iloc[row]
            what = "a missing value" if pd.isna(cell) else f"the non-numeric or non-finite value '{printable(cell)}'"
            raise DataError(f"{name}: column '{printable(col)}' has {what} on line {line[row]}")
        columns[col] = values
    X = np.asfortranarray(np.column_stack([columns[c] for c in features]))
    y = columns[target]
    return X, y, tuple(map(str, features))


def binary_labels(values: np.ndarray, column: str = "y") -> tuple[np.ndarray, tuple]:
    """A classifier's target as 0/1 floats and its two labels: the distinct values in sorted
    order (numbers by value, text alphabetically), the first becoming 0 and the second 1.

    Whole numbers come back as ints (labels 0/1 stay ``(0, 1)``). Any other count of distinct
    values is a :class:`DataError` naming ``column`` and (some of) the values found.
    """
    classes, y = np.unique(values, return_inverse=True)
    if len(classes) != 2:
        shown = ", ".join(printable(_label(c), 40) for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
        many = f"{len(classes)} distinct value{'s' * (len(classes) != 1)}"
        raise DataError(f"target column '{printable(column)}' has {many} ({shown}); --model logistic needs two")
    return y.astype(np.float64).reshape(-1), tuple(_label(c) for c in classes)


def _label(value):
    """A label as plain Python: str, int for a whole number, else float."""
    if isinstance(value, str):
        return value
    value = float(value)
    return int(value) if value.is_integer() else value


def _read_frame(readable, name: str):
    """The CSV as a DataFrame, every failure a :class:`DataError` naming the file (``name``).
    ``readable`` is a local path or downloaded bytes (compression inferred from the URL's path)."""
    import warnings

    import pandas as pd

    compression = "infer"
    if not isinstance(readable, str):  # downloaded bytes: infer from the URL's path
        from pandas.io.common import infer_compression

        compression = infer_compression(readable.name, "infer")
    try:
        with warnings.catch_warnings():
            # index_col=False: a row with more fields than the header is an error, not an index.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # Blank lines are kept (and dropped by the caller) so reported line numbers are the file's.
            return pd.read_csv(readable, index_col=False, skip_blank_lines=False, compression=compression)
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: the file is empty") from None
    except pd.errors.ParserWarning:
        raise DataError(f"{name}: some rows have more fields than the header") from None
    except ImportError as exc:  # e.g. .zst without the zstandard package
        raise DataError(f"{name}: reading it needs a package that is not installed ({printable(exc)})") from None
    except MemoryError:
        raise DataError(f"{name}: too large to load into memory") from None
    except Exception as exc:  # a damaged or mislabelled file (.gz that is not gzip, a truncated archive, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{name}: not a readable CSV file ({printable(first)})") from None


def _to_float(value) -> float:
    """A cell as a float; anything that is not a number becomes nan (reported by the caller)."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def fit_scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The mean and scale scikit-learn's ``StandardScaler().fit(X)`` finds: ``mean_``, ``scale_``.

    .. math::
        \mu_j = \frac{1}{n} \sum_i x_{ij}, \qquad
        \sigma_j^2 = \frac{1}{n} \Big( \sum_i (x_{ij} - \mu_j)^2
                      - \frac{1}{n} \Big( \sum_i (x_{ij} - \mu_j) \Big)^2 \Big)

    the population variance (ddof = 0) by the corrected two-pass algorithm (Chan, Golub and
    LeVeque), in float64 whatever ``X``'s dtype, as scikit-learn computes it. The scale is
    :math:`\sigma_j`, except for a column indistinguishable from a constant
    (:math:`\sigma_j^2 \le n \epsilon \sigma_j^2 + (n \mu_j \epsilon)^2`, scikit-learn's test),
    whose scale is 1: it is only centred. Raises :class:`DataError` when a spread does not fit
    float64.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if n < 1:
        raise DataError("standardizing needs at least one training row")
    with np.errstate(over="ignore", invalid="ignore"):
        mean = X.sum(axis=0) / n
        centred = X - mean
        var = ((centred * centred).sum(axis=0) - centred.sum(axis=0) ** 2 / n) / n
        eps = np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        scale = np.sqrt(var)  # (a constant column's var may round below 0: its scale is 1 below)
    if not (np.isfinite(mean).all() and np.isfinite(var).all()):
        raise DataError("a feature's values are too large to standardize in float64")
    scale[constant] = 1.0
    return mean, scale


def split(
    X: np.ndarray, y: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Seeded shuffle split; ``validation_fraction == 0`` keeps every row for training."""
    if validation_fraction == 0:
        return X, y, None, None
    n = len(y)
    n_val = round(n * validation_fraction)
    if n_val < 1 or n - n_val < 1:
        raise DataError(
            f"validation fraction {validation_fraction} of {n} rows leaves "
            f"{n - n_val} training and {n_val} validation rows; both need at least one"
        )
    order = np.random.default_rng(seed).permutation(n)
    val, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    order = "F" if np.isfortran(X) else "C"  # keep the layout the caller chose
    return np.asarray(X[tr], order=order), y[tr], np.asarray(X[val], order=order), y[val]
