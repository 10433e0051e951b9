"""Every CLI option of the training entry points, declared once.

The table :data:`OPTIONS` feeds the Click options of each command and the MLproject's
parameters (``python -m steps.cli.mlproject`` renders the file; ``tests/test_cli_options.py`` checks it
is current). MLproject parameter names are the option names with ``_`` for ``-``; booleans
are value options (``--nesterov true``). The optimizer options' defaults are torch's, read
from :data:`core.optimizers.DEFAULTS`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from core import config, models, optimizers, schema

as_param = schema.spell  # a value as MLflow params and MLproject defaults spell it


class FiniteFloat(click.FloatRange):
    """A float in a range that also refuses ``nan`` and ``inf``."""

    name = "float"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


def fraction(min_open=False, max_open=False):
    return FiniteFloat(0.0, 1.0, min_open=min_open, max_open=max_open)


class IntList(click.ParamType):
    """Comma-separated whole numbers >= 0, in increasing order (epochs)."""

    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        if str(value).strip().lower() == "none":
            return ()
        try:
            out = tuple(int(part) for part in str(value).split(",") if part.strip())
        except ValueError:
            self.fail(f"{value!r}: give whole numbers separated by commas, e.g. 30,60,90", param, ctx)
        if any(v < 0 for v in out) or list(out) != sorted(set(out)):
            self.fail(f"{value!r}: give increasing epochs >= 0", param, ctx)
        return out


class NameList(click.ParamType):
    """Comma-separated names, each one of ``choices`` and none twice (``what`` names one in the
    messages, "a technique"); ``empty`` lets the value name none."""

    name = "list"

    def __init__(self, choices, what: str, choose_from: str, *, empty: bool = False):
        self.choices, self.what, self.choose_from, self.empty = tuple(choices), what, choose_from, empty

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        names = [part for part in parts if part]
        if names and len(names) < len(parts):  # "adam,,sgd": a name left out, or a stray comma
            self.fail(f"{value!r}: an empty name (two commas in a row, or one at an end)", param, ctx)
        unknown = [n for n in names if n not in self.choices]
        if unknown or not (names or self.empty):
            problem = f"unknown {', '.join(unknown)}" if unknown else "name at least one"
            self.fail(f"{value!r}: {problem}; choose from {self.choose_from}", param, ctx)
        if len(set(names)) < len(names):
            self.fail(f"{value!r}: {self.what} is named twice", param, ctx)
        return tuple(names)


class Widths(click.ParamType):
    """Hidden layer widths: comma-separated whole numbers >= 1 ("16" or "16,8"), in any order;
    "none" (the default) or empty for no hidden layer."""

    name = "widths"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        if parts == [""] or str(value).strip().lower() == "none":
            return ()
        try:
            out = tuple(int(part) for part in parts)
        except ValueError:
            self.fail(f"{value!r}: give layer widths as whole numbers separated by commas, e.g. 16,8", param, ctx)
        if any(v < 1 for v in out):
            self.fail(f"{value!r}: every hidden layer needs at least 1 unit", param, ctx)
        return out


class Init(click.ParamType):
    """A named initialization (:data:`core.models.INITS`) or comma-separated numbers, one per
    parameter ("-1.5,2"), which it spells as Python does ("-1.5,2.0"); the count is checked
    once the data (the number of weights) is known."""

    name = "init"

    def convert(self, value, param, ctx):
        try:
            numbers = models.explicit_init(str(value).strip())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value).strip() if numbers is None else ",".join(map(repr, numbers))


class NoneOr(click.ParamType):
    """``none`` (torch's None: the optimizer works the value out, e.g. Adafactor's eps1 from the
    dtype), or a value of ``inner``. Its option's default is the word "none", so the MLproject
    declares it (a string parameter) and `-P eps1=none` says the same."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = f"{inner.name} or none"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param, ctx) -> str:
        if isinstance(self.inner, click.Choice):
            return "[" + "|".join(["none", *map(str, self.inner.choices)]) + "]"
        return f"{self.inner.name.split()[0].upper()}|none"  # FLOAT|none, INTEGER|none


POSITIVE = FiniteFloat(0.0, min_open=True)
NON_NEGATIVE = FiniteFloat(0.0)


@dataclass(frozen=True)
class Opt:
    flag: str  # CLI name without the dashes
    type: Any
    default: Any
    help: str
    dest: str | None = None  # Python name when it differs (lambda -> lam)

    def click_option(self):
        names = [f"--{self.flag}"] + ([self.dest] if self.dest else [])
        return click.option(*names, type=self.type, default=self.default, show_default=True, help=self.help)


def click_type(codec: schema.Codec) -> Any:
    """The Click type of a codec of :mod:`core.schema` (its checks, as Click words them)."""
    if isinstance(codec, schema.OrNone):
        return NoneOr(click_type(codec.inner))
    if isinstance(codec, schema.Choice):
        return click.Choice(codec.choices)
    if isinstance(codec, schema.Flag):
        return click.BOOL
    if isinstance(codec, schema.Whole):
        return IntList() if codec.increasing else Widths()
    if isinstance(codec, schema.Init):
        return Init()
    if isinstance(codec, schema.Number):
        bounds = {"min": codec.low, "max": codec.high}
        if codec.whole:
            return click.IntRange(**bounds)
        return FiniteFloat(**bounds, min_open=codec.low_open, max_open=codec.high_open)
    return str


NAMES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "nadam": "NAdam",
    "radam": "RAdam",
    "adamax": "Adamax",
    "adadelta": "Adadelta",
    "asgd": "ASGD",
    "rprop": "Rprop",
    "lion": "Lion",
    "adafactor": "Adafactor",
    "lbfgs": "LBFGS",
}


def readers(option: str, text: str) -> str:
    """An optimizer option's help: which optimizers read it (from core.optimizers.DEFAULTS), then ``text``."""
    who = [NAMES[name] for name, d in optimizers.DEFAULTS.items() if option in d]
    return f"{'/'.join(who)}: {text}" if not text.startswith(tuple(who)) else text


# Optimizer options whose torch default depends on the optimizer (`train` leaves them to it).
PER_OPTIMIZER = sorted(
    {
        o
        for d in optimizers.DEFAULTS.values()
        for o in d
        if len({repr(x.get(o)) for x in optimizers.DEFAULTS.values() if o in x}) > 1
    }
)


def _opt(name: str, field) -> Opt:
    """The Click option of a config option (``name``: its CLI name with ``_``): the config's
    default, or for an optimizer's option torch.optim's (core.optimizers states them; the config
    leaves them to the optimizer), which the help also names."""
    spec = schema.spec_of(field)
    default, text = field.default, spec.help
    if spec.group == schema.OPTIMIZER and name != "optimizer":
        default, text = optimizers.default(name), readers(name, spec.help)
    kind = click_type(spec.codec)
    if isinstance(kind, NoneOr):
        default = as_param(default)  # the word "none", which the MLproject declares as a string
    return Opt(name.replace("_", "-"), kind, default, text, dest=field.name if field.name != name else None)


# Every option of a training run, from its one statement in core.config.TrainConfig.
OPTIONS: dict[str, Opt] = {(o := _opt(name, f)).flag: o for name, f in config.OPTIONS.items()}
DATA, MODEL, LOOP, OPTIMIZER, PENALTY = (
    [name.replace("_", "-") for name in config.GROUPS[group]] for group in schema.GROUPS
)
COMMON = DATA + MODEL + LOOP


def option(flag: str, **overrides):
    """One option of the table as a Click decorator, with ``overrides`` (e.g. another default)."""
    base = OPTIONS[flag]
    return Opt(**{**base.__dict__, **overrides}).click_option()


def apply(flags: list[str], overrides: dict[str, dict] | None = None):
    """Decorate a command with the options ``flags`` (in that order in --help)."""
    overrides = overrides or {}

    def deco(f):
        for flag in reversed(flags):
            f = option(flag, **overrides.get(flag, {}))(f)
        return f

    return deco


class Command(click.Command):
    """A gdlab entry point: refuses an option given twice, and ``--help`` under `mlflow run`.

    `mlflow run -P learning-rate=0.5` (a dash for the underscore) is passed on as a second
    ``--learning-rate 0.5`` after the declared ``--learning-rate 0.01``; Click would keep the
    last one while MLflow logged the first as the run's param. `-P help=1` becomes ``--help 1``:
    Click would print the help and exit 0, leaving a FINISHED run with nothing in it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--store-timeout"],
                type=NON_NEGATIVE,
                default=None,
                expose_value=False,
                callback=_store_timeout,
                help="Seconds to keep retrying a tracking store that does not answer before giving up on it; "
                "what was not written is then kept for `recover`. [default: GDLAB_STORE_TIMEOUT_S, else 120]",
            )
        )

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        words = [self._dashed(str(a)) for a in args]  # (CliRunner passes objects such as paths as they are)
        args = words
        for i, arg in enumerate(words):
            if not arg.startswith("--") or arg == "--":
                continue
            name, _, inline = arg.partition("=")
            value = inline or (words[i + 1] if i + 1 < len(words) else "")
            if name in seen and self._takes_value(name):
                under = name[2:].replace("-", "_")
                raise click.UsageError(
                    f"{name} is given twice ({seen[name]!r}, then {value!r}); under `mlflow run` a parameter "
                    f"is spelled with '_': -P {under}={value}",
                    ctx,
                )
            seen[name] = value
        if os.environ.get("MLFLOW_RUN_ID") and any(a in ("--help", "-h") for a in words):
            raise click.UsageError(
                f"help is not a parameter; read the options with `python -m steps.{self.name} --help`", ctx
            )
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The options in sections: the command's own first (a workflow's, the benchmark's), then
        the optimizer's and penalty's, data, model, loop and schedule, workflow, tracking."""
        sections: dict[str, list] = {}
        params = self.get_params(ctx)
        workflow = any(p.name == "launcher" for p in params)  # (compare's --output-dir is its own)
        for param in params:
            record = param.get_help_record(ctx)
            if record is not None:  # (Click 8.5 names its help option "_click_default_help")
                section = section_of("help" if "--help" in getattr(param, "opts", ()) else param.name)
                sections.setdefault("" if section == "Workflow" and not workflow else section, []).append(record)
        own = f"{self.name.capitalize()} options" if self.name else "Options"
        for title in (own, *SECTIONS):
            if title in sections or (title == own and "" in sections):
                with formatter.section(title):
                    formatter.write_dl(sections.get(title) or sections[""])

    def _dashed(self, word: str) -> str:
        """``--weight_decay`` as ``--weight-decay``: `mlflow run` passes a parameter the MLproject
        does not declare (`train`'s options whose default depends on the optimizer) as
        ``--<name> value``, with the name's underscores."""
        name, eq, value = word.partition("=")
        if not name.startswith("--") or "_" not in name:
            return word
        dashed = "--" + name[2:].replace("_", "-")
        known = any(dashed in p.opts for p in self.params if isinstance(p, click.Option))
        return dashed + eq + value if known else word

    def _takes_value(self, name: str) -> bool:
        return any(name in p.opts for p in self.params if isinstance(p, click.Option) and not p.is_flag)


# The sections of --help, in order, after the command's own options.
SECTIONS = (
    "Optimizer",
    "Penalty",
    "Data",
    "Model",
    "Training loop",
    "Learning-rate schedule",
    "Workflow",
    "Tracking",
)
_GROUP_SECTION = {
    schema.OPTIMIZER: "Optimizer",
    schema.PENALTY: "Penalty",
    schema.DATA: "Data",
    schema.MODEL: "Model",
    schema.LOOP: "Training loop",
}
_SCHEDULE = {"lr_schedule", "warmup_epochs", "warmup_start_factor"} | {
    o for opts in config.SCHEDULE_OPTIONS.values() for o in opts
}
# The workflows' options (steps.cli.workflow) and every command's.
WORKFLOW = {"reuse", "max_parallel", "launcher", "backend", "backend_config", "output_dir", "register_model"}
TRACKING = {"store_timeout", "help"}


def section_of(name: str | None) -> str:
    """The --help section of a Click parameter (its Python name); "" for the command's own."""
    option = config.option_name(name or "")
    if option in _SCHEDULE:
        return "Learning-rate schedule"
    if option in config.SPECS:
        return _GROUP_SECTION[config.SPECS[option].group]
    return "Workflow" if name in WORKFLOW else "Tracking" if name in TRACKING else ""


def not_a_root(ctx, param, value):
    """An --output-dir that is not the root of a filesystem (a report written into "/" as root
    mixes its files with the system's): refused, naming it."""
    if value and Path(value).resolve() == Path(Path(value).resolve().anchor):
        raise click.BadParameter(f"{value!r} is the root of the filesystem: give a folder of the report's own")
    return value


def _store_timeout(ctx, param, value):
    if value is not None:
        os.environ["GDLAB_STORE_TIMEOUT_S"] = repr(value)  # read by steps.run.tracking, inherited by workers
    return value


def command_defaults(command: click.Command) -> dict:
    """Each option's default as the command itself sees it: converted by the option's type (an
    optional number's default is the word "none", which its type turns into None)."""
    ctx = click.Context(command)
    defaults = {p.name: p.type_cast_value(ctx, p.get_default(ctx)) for p in command.params if p.expose_value}
    defaults.pop("help", None)
    return defaults


def command(examples: tuple[str, ...] = ()):
    """``@click.command`` for a gdlab entry point (-h/--help in sections, repeated options
    refused), with ``examples`` (command lines) at the end of its --help."""
    epilog = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    return click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]}, epilog=epilog)
