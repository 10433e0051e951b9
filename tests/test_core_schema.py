"""The option schema: every option declared once (core.config.TrainConfig's fields), the rest derived.

What the derivations must keep: the schedules' options and defaults are their builders'
keywords, the optimizers' theirs; every codec reads back what it spells; the Click type each
codec maps to reads the same text to the same value (the CLI and the logged params agree).
"""

from __future__ import annotations

import dataclasses
import math

import click
import pytest

from core import optimizers, schedules, schema
from core.config import (
    GROUPS,
    OPTIMIZER_OPTIONS,
    OPTIONS,
    SCHEDULE_OPTIONS,
    SPECS,
    TrainConfig,
    unused_options,
)
from steps.cli import options as cli


def test_each_schedule_builders_keywords_are_lr_fields_with_the_builders_defaults():
    # Adding a schedule option: a keyword of its builder and a field lr_<keyword>; nothing else maps them.
    for name, keywords in schedules.DEFAULTS.items():
        for keyword, default in keywords.items():
            field = OPTIONS[f"lr_{keyword}"]
            assert field.default == default, (name, keyword)
            assert SPECS[f"lr_{keyword}"].group == schema.LOOP


def test_builders_sharing_a_keyword_agree_on_its_default():
    seen: dict[str, object] = {}
    for keywords in schedules.DEFAULTS.values():
        for keyword, default in keywords.items():
            assert seen.setdefault(keyword, default) == default, keyword


def test_every_lr_field_is_read_by_a_schedule_or_an_optimizer():
    scheduled = {o for opts in SCHEDULE_OPTIONS.values() for o in opts}
    optimizer = {o for opts in OPTIMIZER_OPTIONS.values() for o in opts}  # Adagrad's lr_decay
    lr_fields = {n for n in OPTIONS if n.startswith("lr_") and n != "lr_schedule"}
    assert lr_fields == scheduled | (lr_fields & optimizer)
    assert not scheduled & optimizer


def test_every_optimizer_option_is_a_field_left_to_torch_and_its_codec_takes_torchs_defaults():
    for defaults in optimizers.DEFAULTS.values():
        for option, default in defaults.items():
            assert OPTIONS[option].default is None, option  # the optimizer's own (torch's) default
            assert SPECS[option].group == schema.OPTIMIZER
            if default is not None:
                SPECS[option].codec.check(default, option)  # no torch default is out of its range (name)


def test_the_groups_hold_every_option_once_in_field_order():
    assert [o for g in schema.GROUPS for o in GROUPS[g]] == list(OPTIONS)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_codec_reads_back_what_it_spells_and_click_reads_it_the_same(name):
    field, spec = OPTIONS[name], SPECS[name]
    value = field.default
    if value is None:  # an optimizer's option: torch's default for the first optimizer that reads it
        value = optimizers.default(name)
    text = schema.spell(value)
    parsed = spec.codec.parse(text, name)
    assert parsed == value or (isinstance(value, float) and math.isclose(parsed, value, rel_tol=0))
    kind = cli.click_type(spec.codec)
    by_click = kind(text) if kind is str else kind.convert(text, None, None)
    assert by_click == parsed


@pytest.mark.parametrize(
    ("codec", "value", "message"),
    [
        (schema.Number(low=0.0, high=1.0, high_open=True), 1.0, r"x must be in \[0, 1\), got 1.0"),
        (schema.Number(low=0.0, low_open=True), 0.0, "x must be > 0, got 0.0"),
        (schema.Number(whole=True, low=1), 0, "x must be >= 1, got 0"),
        (schema.Number(high=0.0), 0.5, "x must be <= 0, got 0.5"),
        (schema.Number(), math.nan, "x must be a finite number, got nan"),
        (schema.Choice(("a", "b")), "c", "x must be one of a, b, got 'c'"),
        (schema.Whole(0, increasing=True), (3, 1), r"x must be increasing, got \[3, 1\]"),
        (schema.Whole(1), (4, 0), r"x must be whole numbers >= 1, got \[4, 0\]"),
        (schema.OrNone(schema.Number(low=1.0)), 0.5, "x must be >= 1, got 0.5"),
    ],
)
def test_codecs_refuse_values_outside_their_range_naming_the_option(codec, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        codec.check(value, "x")


def test_click_ranges_are_the_codecs_ranges():
    # The CLI refuses exactly what the config refuses: the same bounds, open or closed.
    for name, spec in SPECS.items():
        codec = spec.codec.inner if isinstance(spec.codec, schema.OrNone) else spec.codec
        if not isinstance(codec, schema.Number):
            continue
        kind = cli.click_type(codec)
        assert (kind.min, kind.max) == (codec.low, codec.high), name
        if not codec.whole:
            assert (kind.min_open, kind.max_open) == (codec.low_open, codec.high_open), name
        for probe in (codec.low, codec.high):
            if probe is None:
                continue
            try:
                spec.codec.check(probe, name)
                refused_by_config = False
            except ValueError:
                refused_by_config = True
            with pytest.raises(click.BadParameter) if refused_by_config else _nothing():
                kind.convert(probe, None, None)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_dataset_options_readers_decide_when_it_is_unused():
    assert "condition_number" in unused_options({"dataset": "rosenbrock"})
    assert "condition_number" not in unused_options({"dataset": "ill_conditioned"})
    assert "target" in unused_options({"dataset": "synthetic"})
    assert "target" not in unused_options({"dataset": "data.csv"})
    assert "n_samples" not in unused_options({"dataset": "synthetic"})
    assert "n_samples" in unused_options({"dataset": "data.csv"})


def test_the_config_is_a_plain_frozen_dataclass_whose_fields_are_the_options():
    assert dataclasses.is_dataclass(TrainConfig)
    assert [f.name for f in dataclasses.fields(TrainConfig)] == [f.name for f in OPTIONS.values()]
    assert OPTIONS["lambda"].name == "lam"
