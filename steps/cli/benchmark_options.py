"""The benchmark's own option types: contenders, a log range, an optional loss."""

from __future__ import annotations

import click

from core import optimizers
from core.config import OPTIMIZER_OPTIONS
from steps.cli.options import OPTIONS, POSITIVE, FiniteFloat, as_param
from steps.flow.benchmark_plan import DEFAULT_CONTENDERS, Contender


class Contenders(click.ParamType):
    """Comma-separated contenders: an optimizer name, optionally with fixed hyperparameters
    ``NAME:OPTION=VALUE[:OPTION=VALUE...]`` (train's options of that optimizer, '-' or '_')."""

    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        # (an optimizer option's type, from the option table: what `train --OPTION` takes)
        types = {flag.replace("-", "_"): click.types.convert_type(o.type) for flag, o in OPTIONS.items()}
        out = []
        for text in str(value).split(","):
            text = text.strip()
            if not text:
                self.fail(f"{value!r}: an empty name (give e.g. {DEFAULT_CONTENDERS})", param, ctx)
            name, *settings = [part.strip() for part in text.split(":")]
            name = name.lower()
            if name not in optimizers.OPTIMIZERS:
                self.fail(f"{name!r} is not an optimizer (choose from {', '.join(optimizers.OPTIMIZERS)})", param, ctx)
            fixed = {}
            for setting in settings:
                key, eq, raw = setting.partition("=")
                key = key.strip().replace("-", "_").lower()
                if not eq or not key:
                    self.fail(f"{text!r}: write fixed hyperparameters as {name}:OPTION=VALUE", param, ctx)
                if key not in OPTIMIZER_OPTIONS[name]:
                    own = ", ".join(o.replace("_", "-") for o in OPTIMIZER_OPTIONS[name]) or "none"
                    self.fail(f"{text!r}: {key.replace('_', '-')} is not an option of {name} ({own})", param, ctx)
                if key in fixed:
                    self.fail(f"{text!r}: {key.replace('_', '-')} is given twice", param, ctx)
                try:
                    fixed[key] = types[key].convert(raw.strip(), param, ctx)
                except click.BadParameter as exc:
                    self.fail(f"{text!r}: {key.replace('_', '-')}: {exc.message}", param, ctx)
                if fixed[key] == optimizers.DEFAULTS[name][key]:
                    self.fail(
                        f"{text!r} is {name} itself: {as_param(fixed[key])} is {key.replace('_', '-')}'s default",
                        param,
                        ctx,
                    )
            out.append(Contender(name, tuple(fixed.items())))
        labels = [c.label for c in out]
        if twice := sorted({label for label in labels if labels.count(label) > 1}):
            self.fail(f"{', '.join(twice)} named twice", param, ctx)
        return tuple(out)


class LogRange(click.ParamType):
    """``LOW:HIGH``, 0 < LOW < HIGH, finite."""

    name = "range"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        low, colon, high = str(value).partition(":")
        try:
            pair = (POSITIVE.convert(low.strip(), param, ctx), POSITIVE.convert(high.strip(), param, ctx))
        except click.BadParameter:
            pair = None
        if not colon or pair is None or not pair[0] < pair[1]:
            self.fail(f"{value!r}: give LOW:HIGH with 0 < LOW < HIGH, e.g. 1e-5:1e2", param, ctx)
        return pair


class OptionalLoss(click.ParamType):
    """A loss >= 0, or ``none``."""

    name = "loss|none"

    def convert(self, value, param, ctx):
        if value is None or str(value).strip().lower() == "none":
            return None
        return FiniteFloat(0.0).convert(value, param, ctx)
