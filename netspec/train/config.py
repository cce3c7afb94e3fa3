"""The `train:` section of a spec, validated, and the command line laid over it.

Pure pydantic: importing this module never imports torch, so a spec's training
recipe is checked as fast as the rest of the spec.

A spec writes, for example::

    train:
      data: fashion-mnist
      resize: 96
      batch_size: 256
      epochs: 10
      optimizer: {sgd: {lr: 0.05}}
      schedule: {cosine: {warmup_epochs: 1}}

Every key is optional; the defaults are the book's recipe (SGD without
momentum, constant learning rate, Xavier-uniform init, cross-entropy).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

KNOWN_DATA = ("fashion-mnist", "mnist", "cifar10", "synthetic")


class ConfigError(ValueError):
    """A training configuration the user must fix; the message is one sentence."""

    exit_code = 2


class _Strict(BaseModel):
    # inf and nan are refused: a rate of inf trains nothing, and JSON cannot hold them
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


MAX_LR = 1000.0  # far above any useful rate; AdamW's float32 step overflows near 1e37
MAX_THREADS = 1024  # OpenMP crashed the process at 100,000 (a segfault) and failed at 16,384 on a 2-core machine
MAX_SEED = 2**32 - 1  # as NumPy's; the shuffle's seed (seed * 1_000_003 + epoch) stays in 64 bits


def _one_key(value: Any) -> Any:
    """`sgd` is shorthand for `{sgd: {}}`; `{sgd: null}` means the same."""
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, dict):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


class _OneOf(_Strict):
    """Exactly one field set, written as a name or a one-key mapping (`sgd`, `{cosine: {...}}`)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        return _one_key(value)

    @model_validator(mode="after")
    def _exactly_one(self):
        if len([k for k in type(self).model_fields if getattr(self, k) is not None]) != 1:
            kind = type(self).__name__.lower()
            raise ValueError(f"give exactly one {kind}: " + " or ".join(type(self).model_fields))
        return self

    @property
    def name(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def settings(self):
        return getattr(self, self.name)


# --- optimizers -------------------------------------------------------------

class SGD(_Strict):
    """Plain SGD as in the book (momentum 0); momentum, weight decay and nesterov on request."""

    lr: float = Field(0.05, gt=0, le=MAX_LR)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        return self


Beta = Annotated[float, Field(ge=0, lt=1)]  # torch.optim refuses others when the run starts


class Adam(_Strict):
    """Adam, its weight decay added to the gradient (L2), as torch.optim.Adam (PyTorch's defaults except lr)."""

    lr: float = Field(1e-3, gt=0, le=MAX_LR)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[Beta, Beta] = (0.9, 0.999)


class AdamW(Adam):
    """AdamW with decoupled weight decay (PyTorch's defaults except lr)."""

    weight_decay: float = Field(0.01, ge=0)


class Optimizer(_OneOf):
    """Exactly one of `sgd`, `adam` or `adamw`."""

    sgd: Optional[SGD] = None
    adam: Optional[Adam] = None
    adamw: Optional[AdamW] = None


# --- learning-rate schedules --------------------------------------------------

class _Warmup(_Strict):
    """Linear warmup from 0 to the full rate; in epochs (may be fractional) or steps."""

    warmup_epochs: float = Field(0, ge=0)
    warmup_steps: int = Field(0, ge=0)


class Constant(_Warmup):
    pass


class Step(_Warmup):
    """Multiply the rate by `gamma` every `every` epochs."""

    every: int = Field(1, gt=0)
    gamma: float = Field(0.1, gt=0)


class Cosine(_Warmup):
    """Cosine decay from the full rate to `min_lr` at the last step."""

    min_lr: float = Field(0.0, ge=0)


class OneCycle(_Warmup):
    """Cosine rise from lr/`div` over `pct` of training, then cosine fall to lr/`final_div`.

    A warmup, when given, replaces `pct` as the length of the rise.
    """

    pct: float = Field(0.3, gt=0, lt=1)
    div: float = Field(25.0, ge=1)
    final_div: float = Field(1e4, ge=1)


class Schedule(_OneOf):
    """Exactly one of constant, step, cosine, onecycle."""

    constant: Optional[Constant] = None
    step: Optional[Step] = None
    cosine: Optional[Cosine] = None
    onecycle: Optional[OneCycle] = None


# --- the whole section --------------------------------------------------------

class TrainConfig(_Strict):
    """How to train a spec. Defaults follow *Dive into Deep Learning*, chapter 7.

    Data:
      data: `fashion-mnist` (default), `mnist`, `cifar10`, `imagefolder:PATH`
        (PATH/train/CLASS/*.png and PATH/test/ or PATH/val/) or `synthetic`
        (generated class patterns, for offline smoke runs; not real images).
      data_dir: where torchvision data sets live; else $NETSPEC_DATA, else
        ~/.cache/netspec/data.
      download: fetch a missing torchvision data set (never by default).
      resize: side (int) or [H, W] the images are resized to; None means the
        spec's input size (no resize when it equals the data's own size).
      limit_train, limit_test: use only the first N images (quick runs).
      workers: DataLoader workers for image folders (at most one per usable core).
      augment: flip training images left to right (p = 1/2) and shift them by
        up to an eighth of a side, zero filled, on the device
        (netspec.train.augment); off by default, as in the book.
    Optimisation:
      batch_size: the global batch (split across processes under DDP).
      epochs, max_steps (stop early after N steps in all), optimizer, schedule,
      label_smoothing, grad_clip (max gradient norm), init (`xavier` =
      Xavier-uniform conv and linear weights as the book; `kaiming`;
      `default` = PyTorch's own), seed, ema (decay of an exponential moving
      average of the weights, evaluated and saved alongside).
    Execution:
      device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.
      amp: bf16 autocast; None = on for CUDA, off elsewhere (pass true on a
        CPU with AVX-512/AMX: 1.3-2.4x faster for conv nets).
      amp_dtype: bfloat16, or float16 (with a gradient scaler) for old GPUs.
      channels_last: NHWC memory for the network and its batches; None = on
        for CUDA, off for MPS, and on CPU for a network whose widest 2-D conv
        has 32 or more output channels: in `benchmarks/layout.py` LeNet (6
        and 16 channels) trained 0.77-0.90x as fast in it, NiN, GoogLeNet,
        ResNet-18 and DenseNet 1.07-1.36x faster, AlexNet and full-width
        VGG-11 either way (0.87-1.20x). Dropout's masks follow the memory
        order, so a seed gives other masks in the other layout.
      compile: torch.compile the model; true, or a backend name.
      checkpoint_every: also write last.pt every N steps.
      threads: PyTorch's CPU threads (torch.set_num_threads); None = PyTorch's
        default, one per core. On a busy machine fewer can be several times
        faster: a parallel region waits for the thread that lost its core.
      keep_memory: keep freed memory in the process while training instead of
        handing big blocks back to the OS (glibc's mallopt; netspec.train.memory):
        a step reuses the last step's pages instead of faulting in fresh ones.
        None = on for CPU training on Linux with glibc, off elsewhere.
      gemm_weight_grads: compute the weight gradient of convolutions with at
        most 3x3 output positions as one matrix product (netspec.train.cpu_conv):
        ResNet-18's steps at 96x96 1.15x faster on an AVX2 CPU, 0.87x on an
        AVX-512 one. None = on for CPU training in float32 without compile
        where PyTorch runs its AVX2 kernels.
    """

    data: str = "fashion-mnist"
    data_dir: Optional[str] = None
    download: bool = False
    resize: Union[int, tuple[int, int], None] = None
    limit_train: Optional[int] = Field(None, gt=0)
    limit_test: Optional[int] = Field(None, gt=0)
    workers: int = Field(4, ge=0, le=MAX_THREADS)  # processes: thousands would exhaust the process table
    augment: bool = False

    batch_size: int = Field(256, gt=0)
    epochs: int = Field(10, gt=0)
    max_steps: Optional[int] = Field(None, gt=0)
    optimizer: Optimizer = Field(default_factory=lambda: Optimizer(sgd=SGD()))
    schedule: Schedule = Field(default_factory=lambda: Schedule(constant=Constant()))
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: Optional[float] = Field(None, gt=0)
    init: Literal["xavier", "kaiming", "default"] = "xavier"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    ema: Optional[float] = Field(None, gt=0, lt=1)

    device: str = "auto"
    amp: Optional[bool] = None
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    channels_last: Optional[bool] = None
    compile: Union[bool, str] = False
    checkpoint_every: Optional[int] = Field(None, gt=0)
    threads: Optional[int] = Field(None, ge=1, le=MAX_THREADS)
    keep_memory: Optional[bool] = None
    gemm_weight_grads: Optional[bool] = None

    @field_validator("data")
    @classmethod
    def _known_data(cls, v: str) -> str:
        if v.startswith("imagefolder:") and len(v) > len("imagefolder:"):
            return v
        if v.lower() in KNOWN_DATA:
            return v.lower()
        hint = _did_you_mean(v, KNOWN_DATA + ("imagefolder:PATH",))
        raise ValueError(f"unknown data set '{v}'; choose one of {', '.join(KNOWN_DATA)} "
                         f"or imagefolder:PATH" + (f" ({hint})" if hint else ""))

    @field_validator("resize")
    @classmethod
    def _positive_size(cls, v):
        sizes = (v,) if isinstance(v, int) else (v or ())
        if any(s <= 0 for s in sizes):
            raise ValueError("resize must be positive")
        return v

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"unknown device '{v}'; choose auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("compile")
    @classmethod
    def _compile_backend(cls, v):
        if isinstance(v, str) and v and not v.isidentifier():  # the loop checks it against torch's list
            raise ValueError(f"'{v}' is not a torch.compile backend name (e.g. inductor, aot_eager)")
        return v if isinstance(v, bool) or v else False

    @classmethod
    def from_section(cls, section: dict | None) -> "TrainConfig":
        """Validate a spec's `train:` mapping; raises pydantic's ValidationError.

        The error's `loc` tuples are paths inside the section, so the caller can
        map them back to YAML lines.
        """
        return cls.model_validate(section or {})

    def to_dict(self) -> dict:
        """Plain JSON-able dict, the unchosen optimizers and schedules left out."""
        out = self.model_dump(mode="json")
        for key in ("optimizer", "schedule"):
            out[key] = {k: v for k, v in out[key].items() if v is not None}
        return out

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`resize` as (H, W), or None."""
        if self.resize is None:
            return None
        return (self.resize, self.resize) if isinstance(self.resize, int) else tuple(self.resize)


def _did_you_mean(word: str, choices) -> str | None:
    try:
        from netspec.errors import did_you_mean
    except ImportError:  # the core not installed: no hint
        return None
    return did_you_mean(word, choices)


def describe_error(error: ValidationError, prefix: str = "train") -> str:
    """One readable line for a pydantic error: the key's path, then what is wrong."""
    first = error.errors()[0]
    loc = [str(p) for p in first["loc"] if not str(p).startswith("function-")]
    where = ".".join([prefix, *loc]) if prefix else ".".join(loc)
    if first["type"] == "extra_forbidden":
        parent = TrainConfig
        for part in loc[:-1]:  # walk into the nested model to suggest its keys
            field = parent.model_fields.get(part)
            ann = getattr(field, "annotation", None)
            inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
            if not inner:
                parent = None
                break
            parent = inner[0]
        hint = _did_you_mean(loc[-1], parent.model_fields) if parent else None
        message = "unknown key" + (f"; {hint}" if hint else "")
    else:
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] not in ("missing", "value_error") and "input" in first and not isinstance(first["input"], dict):
            message += f" (got {first['input']!r})"
    more = len(error.errors()) - 1
    return f"{where}: {message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def load_config(section: dict | None) -> TrainConfig:
    """Validate a `train:` section, raising ConfigError with one readable line."""
    try:
        return TrainConfig.from_section(section)
    except ValidationError as e:
        raise ConfigError(describe_error(e)) from None


# Optional counts a flag can switch off again with 0 (a spec or checkpoint may have set them)
NONE_AT_ZERO = ("ema", "max_steps", "checkpoint_every", "limit_train", "limit_test", "grad_clip")


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Lay command-line values over a config; None means "not given".

    Besides the field names, some keys are special: `lr` sets the rate of the
    chosen optimizer; `optimizer` and `schedule` (names) switch them, keeping
    the spec's settings when the name is the same and the new one's defaults
    otherwise; 0 for a NONE_AT_ZERO field means "none", so a resumed run or an
    evaluation can drop what the checkpoint had set.
    """
    merged = config.to_dict()
    given = {k: v for k, v in overrides.items() if v is not None}
    for key in NONE_AT_ZERO:
        if given.get(key) == 0:
            del given[key]
            merged[key] = None
    name = given.pop("optimizer", None)
    lr = given.pop("lr", None)
    if name is not None and name != config.optimizer.name:
        merged["optimizer"] = {name: {}}
    schedule = given.pop("schedule", None)
    if schedule is not None and schedule != config.schedule.name:
        merged["schedule"] = {schedule: {}}
    if lr is not None:
        opt = merged["optimizer"]
        key = next(iter(opt))
        opt[key] = {**(opt[key] or {}), "lr": lr}
    merged.update(given)
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(describe_error(e, prefix="")) from None
