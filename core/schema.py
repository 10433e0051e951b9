"""The option schema: what each option of a training run is, as plain data.

Every option is a field of :class:`core.config.TrainConfig`, declared once with :func:`option`:
its group (where ``--help`` lists it), a :class:`Codec` (how its value is read from text and
written back, and what values it may take), its default, its help, and who reads it — every
run, or only some datasets or penalties. Which optimizer reads an optimizer option, and which
schedule reads an ``lr_`` option, is read off the builders' signatures (``core.optimizers`` and
``core.schedules``), so it is not written here at all. The rest is derived from this one
statement (HuggingFace's ``TrainingArguments`` keeps its options the same way, a dataclass whose
fields carry their help): the config's range checks, which options a run does not read
(:func:`core.config.unused_options`), the logged params and their reading back, the Click options
and the refusals (``steps.cli.options``, ``steps.run.runner``), both MLprojects and
docs/reference.md.

Pure Python: no numpy, no Click, no MLflow.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DATA, MODEL, LOOP, OPTIMIZER, PENALTY = "data", "model", "loop", "optimizer", "penalty"
GROUPS = (DATA, MODEL, LOOP, OPTIMIZER, PENALTY)
# How a dataset that is a CSV file (not one of the built-in ones) is named in an option's readers.
CSV = "a CSV file"
# How a list option with no entries (no hidden layers) is spelled, and read back.
NONE_WORDS = ("", "none")


def spell(value) -> str:
    """A value as MLflow params and MLproject defaults spell it: booleans lower-case, None as
    "none", a list comma-separated ("none" when empty), numbers as Python writes them."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "none"
    return str(value)


class Codec:
    """How an option's value is read from its text (:meth:`parse`: a logged param, a
    ``-P name=value``) and what values it may take (:meth:`check`, a ValueError naming the
    option); :func:`spell` writes every value back."""

    def parse(self, text: str, name: str) -> Any:
        return text

    def check(self, value: Any, name: str) -> None:
        return None


@dataclass(frozen=True)
class Text(Codec):
    """Any string (a dataset's name or path, a column)."""


@dataclass(frozen=True)
class Flag(Codec):
    """true or false."""

    def parse(self, text: str, name: str) -> bool:
        if text.strip().lower() not in ("true", "false"):
            raise ValueError(f"{name} must be true or false, got {text!r}")
        return text.strip().lower() == "true"


@dataclass(frozen=True)
class Number(Codec):
    """A finite float, or an int (``whole``), within ``low``..``high`` (open ends excluded)."""

    whole: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def parse(self, text: str, name: str) -> float | int:
        number = float(text)
        if not self.whole:
            return number
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {text!r}")
        return int(number)

    def check(self, value, name: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            raise ValueError(f"{name} must be {self.describe()}, got {value}")

    def describe(self) -> str:
        """The range in words: ">= 1", "in (0, 1]", "<= 0"."""
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}" if self.high is not None else "a number"


@dataclass(frozen=True)
class Choice(Codec):
    """One of ``choices``."""

    choices: tuple[str, ...]

    def check(self, value, name: str) -> None:
        if value not in self.choices:
            raise ValueError(f"{name} must be one of {', '.join(self.choices)}, got {value!r}")


@dataclass(frozen=True)
class Whole(Codec):
    """Comma-separated whole numbers, each >= ``low``; ``increasing``: strictly (epochs);
    "none" or nothing is the empty list."""

    low: int = 0
    increasing: bool = False

    def parse(self, text: str, name: str) -> tuple[int, ...]:
        if text.strip().lower() in NONE_WORDS:
            return ()
        return tuple(Number(whole=True).parse(part.strip(), name) for part in text.split(",") if part.strip())

    def check(self, value, name: str) -> None:
        if any(v < self.low for v in value):
            raise ValueError(f"{name} must be whole numbers >= {self.low}, got {list(value)}")
        if self.increasing and list(value) != sorted(set(value)):
            raise ValueError(f"{name} must be increasing, got {list(value)}")


@dataclass(frozen=True)
class Init(Codec):
    """A named start (``names``) or comma-separated numbers, one per parameter; the numbers are
    counted once the data is known (:func:`core.models.explicit_init` reads them)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class OrNone(Codec):
    """ "none" (None: the optimizer works the value out, as torch's None does) or a value of ``inner``."""

    inner: Codec

    def parse(self, text: str, name: str):
        return None if text.strip().lower() == "none" else self.inner.parse(text, name)

    def check(self, value, name: str) -> None:
        if value is not None:
            self.inner.check(value, name)


@dataclass(frozen=True)
class Spec:
    """One option: everything but its default and Python type, which are the field's."""

    group: str  # one of GROUPS
    codec: Codec
    help: str
    datasets: tuple[str, ...] = ()  # only these datasets read it (CSV for a file); () every run
    penalties: tuple[str, ...] = ()  # only these penalties read it; () not a penalty's
    test_function: str = "reads"  # or "ignores" (no data, no model), "refuses" (cannot apply: an error)
    needs: str = ""  # it acts only when another option has a value of its own: what to say otherwise
    name: str = ""  # the CLI name (with "_") where it differs from the field's (lambda: lam)


def option(group: str, default, codec: Codec, help: str, **spec) -> Any:
    """A :class:`core.config.TrainConfig` field that is an option (``spec``: :class:`Spec`'s other fields)."""
    return dataclasses.field(default=default, metadata={"option": Spec(group, codec, help, **spec)})


def spec_of(field: dataclasses.Field) -> Spec:
    return field.metadata["option"]


def keyword_defaults(builders: dict[str, Callable], leave_out: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Each builder's keyword-only arguments and their defaults, but ``leave_out``: the options it
    reads, read off its signature (the one statement of both; core.optimizers and core.schedules)."""
    return {
        name: {
            p.name: p.default
            for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in leave_out
        }
        for name, fn in builders.items()
    }
