"""The `train:` section: validation, readable one-line errors, command-line overrides."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from netspec.train.config import ConfigError, TrainConfig, apply_overrides, load_config


def test_defaults_are_the_books_recipe():
    c = TrainConfig.from_section(None)
    assert c.data == "fashion-mnist" and c.batch_size == 256 and c.epochs == 10
    assert c.optimizer.name == "sgd" and c.optimizer.settings.momentum == 0
    assert c.schedule.name == "constant" and c.init == "xavier" and c.download is False


def test_full_section_round_trips():
    section = {"data": "mnist", "resize": [32, 48], "batch_size": 64, "epochs": 3,
               "optimizer": {"adamw": {"lr": 0.002, "weight_decay": 0.05}},
               "schedule": {"cosine": {"warmup_epochs": 1, "min_lr": 1e-5}},
               "label_smoothing": 0.1, "init": "kaiming", "amp": True, "ema": 0.99, "compile": "aot_eager"}
    c = TrainConfig.from_section(section)
    assert c.image_size == (32, 48) and c.optimizer.settings.lr == 0.002
    assert c.schedule.settings.warmup_epochs == 1 and c.compile == "aot_eager"
    again = TrainConfig.from_section(c.to_dict())
    assert again == c
    assert list(c.to_dict()["optimizer"]) == ["adamw"]  # the unchosen optimizer is left out


def test_shorthands():
    c = TrainConfig.from_section({"optimizer": "adamw", "schedule": "onecycle", "resize": 96})
    assert c.optimizer.name == "adamw" and c.schedule.name == "onecycle" and c.image_size == (96, 96)
    assert TrainConfig.from_section({"optimizer": {"sgd": None}}).optimizer.settings.lr == 0.05


def test_from_section_raises_pydantic_error_with_a_locatable_path():
    with pytest.raises(ValidationError) as info:
        TrainConfig.from_section({"optimizer": {"sgd": {"lr": -1}}})
    assert info.value.errors()[0]["loc"] == ("optimizer", "sgd", "lr")


@pytest.mark.parametrize("section, expected", [
    ({"epoch": 3}, "train.epoch: unknown key; did you mean 'epochs'?"),
    ({"optimizer": {"sgd": {"lrr": 1}}}, "train.optimizer.sgd.lrr: unknown key; did you mean 'lr'?"),
    ({"optimizer": {"sgd": {"lr": 0}}}, "train.optimizer.sgd.lr: Input should be greater than 0 (got 0)"),
    ({"data": "fashion_mnist"}, "did you mean 'fashion-mnist'?"),
    ({"schedule": {"cosine": {}, "step": {}}}, "train.schedule: give exactly one schedule"),
    ({"optimizer": {"sgd": {"nesterov": True}}}, "nesterov needs a momentum above 0"),
    ({"device": "gpu"}, "train.device: unknown device 'gpu'"),
    ({"batch_size": "many"}, "train.batch_size: Input should be a valid integer"),
    ({"threads": 0}, "train.threads: Input should be greater than or equal to 1 (got 0)"),
    ({"threads": 100_000}, "train.threads: Input should be less than or equal to 1024 (got 100000)"),
    ({"workers": 100_000}, "train.workers: Input should be less than or equal to 1024 (got 100000)"),
    ({"optimizer": {"adamw": {"betas": [1.5, 0.9]}}}, "train.optimizer.adamw.betas.0: Input should be less than 1"),
    ({"optimizer": {"adam": {"betas": [0.9, -0.1]}}},
     "train.optimizer.adam.betas.1: Input should be greater than or equal to 0"),
    ({"optimizer": "adma"}, "did you mean 'adam'?"),
])
def test_errors_are_one_readable_line_naming_the_key(section, expected):
    with pytest.raises(ConfigError) as info:
        load_config(section)
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_overrides_replace_only_what_is_given():
    base = TrainConfig.from_section({"epochs": 10, "optimizer": {"sgd": {"lr": 0.9, "momentum": 0.5}}})
    c = apply_overrides(base, {"epochs": 2, "lr": 0.1, "batch_size": None, "optimizer": None})
    assert c.epochs == 2 and c.batch_size == 256
    assert c.optimizer.settings.lr == 0.1 and c.optimizer.settings.momentum == 0.5
    assert apply_overrides(base, {"optimizer": "sgd"}).optimizer.settings.momentum == 0.5


def test_switching_optimizer_takes_the_new_defaults_unless_lr_given():
    base = TrainConfig.from_section({"optimizer": {"sgd": {"lr": 0.9}}})
    assert apply_overrides(base, {"optimizer": "adamw"}).optimizer.settings.lr == 1e-3
    assert apply_overrides(base, {"optimizer": "adamw", "lr": 0.01}).optimizer.settings.lr == 0.01


def test_bad_override_is_a_config_error():
    with pytest.raises(ConfigError, match="epochs"):
        apply_overrides(TrainConfig(), {"epochs": 0})


def test_config_does_not_import_torch():
    code = "import sys, netspec.train.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("section, expected", [
    ({"optimizer": {"sgd": {"lr": float("inf")}}}, "lr: Input should be a finite number"),
    ({"optimizer": {"sgd": {"lr": float("nan")}}}, "lr: Input should be a finite number"),
    ({"optimizer": {"sgd": {"lr": -0.1}}}, "lr: Input should be greater than 0"),
    ({"optimizer": {"adamw": {"lr": 1e38}}}, "lr: Input should be less than or equal to 1000"),
    ({"ema": float("nan")}, "ema: Input should be a finite number"),
    ({"seed": 2**64}, "seed: Input should be less than or equal to 4294967295"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"compile": "specs/net.yaml"}, "is not a torch.compile backend name"),
])
def test_rates_seeds_and_backends_that_cannot_work_are_refused(section, expected):
    """inf or nan trains nothing and is not JSON; AdamW's float32 step overflows for a rate near 1e37;
    torch.manual_seed refuses a seed past 64 bits; a backend is a name, never a path."""
    with pytest.raises(ConfigError) as info:
        load_config(section)
    assert expected in str(info.value)


def test_zero_turns_off_a_count_the_spec_or_checkpoint_set():
    base = TrainConfig(ema=0.9, max_steps=5, checkpoint_every=2, limit_train=64, limit_test=32)
    c = apply_overrides(base, {"ema": 0.0, "max_steps": 0, "checkpoint_every": 0, "limit_train": 0, "limit_test": 0})
    assert (c.ema, c.max_steps, c.checkpoint_every, c.limit_train, c.limit_test) == (None,) * 5
    assert apply_overrides(base, {"max_steps": None}).max_steps == 5  # not given: kept
    with pytest.raises(ConfigError, match="epochs"):
        apply_overrides(base, {"epochs": 0})  # epochs has no "none"


def test_switching_schedule_keeps_its_settings_like_the_optimizer():
    base = TrainConfig.from_section({"schedule": {"cosine": {"warmup_steps": 3, "min_lr": 0.01}},
                                     "optimizer": {"sgd": {"lr": 0.9, "momentum": 0.5}}})
    same = apply_overrides(base, {"schedule": "cosine", "optimizer": "sgd"})
    assert same.schedule.settings.warmup_steps == 3 and same.schedule.settings.min_lr == 0.01
    assert same.optimizer.settings.momentum == 0.5
    other = apply_overrides(base, {"schedule": "step"})
    assert other.schedule.name == "step" and other.schedule.settings.warmup_steps == 0
