"""Checkpoints that are never half-written and load with `weights_only=True`.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:
model (and EMA) weights, optimizer, scheduler and scaler state, every random
number generator, where in which epoch the run stopped, the resolved config
and the spec (hash, text, params, input) to rebuild the network from.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import torch

FORMAT = "netspec-checkpoint/1"
PREFIXES = ("_orig_mod.", "module.")  # added by torch.compile and DDP wrappers


# What every checkpoint holds, and what resuming needs besides
NEEDED = ("model", "config", "spec", "input", "epoch")
NEEDED_TO_RESUME = NEEDED + ("optimizer", "scheduler", "rng", "batch", "step", "partial")


class ResumeError(Exception):
    """A checkpoint that cannot be used to resume this run (or to evaluate)."""

    exit_code = 2


class SaveError(Exception):
    """A checkpoint that could not be written (disk full, permissions); the old file is intact."""

    exit_code = 1


def clean_state_dict(state: dict) -> dict:
    """Keys as in the plain module: no `_orig_mod.` or `module.` wrapper prefixes."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p):], True
        out[key] = value
    return out


def save(payload: dict, path: Path) -> None:
    """Write to a temporary file beside `path`, then rename: a crash leaves the old file whole.

    A failed write (a full disk makes torch.save raise RuntimeError) removes the
    temporary file and raises SaveError.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise SaveError(f"could not write {path}: {e.strerror or e}") from None
        if isinstance(e, RuntimeError):
            raise SaveError(f"could not write {path} (is the disk full?)") from None
        raise


BEST_THEN_LAST = ("best.pt", "last.pt")  # what a run folder stands for to evaluate or export


def in_run(path: str | Path, names: tuple[str, ...]) -> Path:
    """`path`, or where it is a run folder, the first of `names` it holds: `netspec eval runs/x` means its
    best weights (its last ones before an epoch ended), `--resume runs/x` its last.pt."""
    path = Path(path)
    if path.is_dir():
        return next((path / name for name in names if (path / name).is_file()), path)
    return path


def load(path: str | Path, needed=NEEDED) -> dict:
    """Read a checkpoint safely (`weights_only=True`: no pickled code runs); one-line errors."""
    path = Path(path)
    if not path.is_file():
        folder = " (a folder: name a .pt file in it)" if path.is_dir() else ""
        raise ResumeError(f"no checkpoint at {path}{folder}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing a file
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ResumeError(f"{path} is not a readable checkpoint ({unreadable_reason(path, e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ResumeError(f"{path} is not a netspec checkpoint")
    missing = [k for k in needed if k not in ckpt]
    if not missing and not (isinstance(ckpt["spec"], dict) and "hash" in ckpt["spec"]):
        missing = ["spec.hash"]
    if missing:
        raise ResumeError(f"{path} is an incomplete checkpoint (it has no {missing[0]})")
    return ckpt


def unreadable_reason(path: Path, error: Exception) -> str:
    """Why torch.load refused a file, in a few words (its own messages run to paragraphs)."""
    text = str(error)
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(error, EOFError) or "zip archive" in text or "central directory" in text:
        return "the file is truncated or damaged"
    if "Unsupported global" in text:
        return "it holds Python objects besides tensors and plain data; netspec loads checkpoints with weights_only=True"
    if "Weights only load failed" in text:
        return "not a file written by torch.save"
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def config_of(ckpt: dict, path):
    """The checkpoint's TrainConfig; a ResumeError naming the checkpoint when it is not valid."""
    from pydantic import ValidationError

    from .config import TrainConfig, describe_error
    try:
        return TrainConfig.model_validate(ckpt["config"])
    except ValidationError as e:
        raise ResumeError(f"{path} holds an invalid training config ({describe_error(e, prefix='')})") from None


def spec_text(ckpt: dict, path) -> str:
    """The spec's source kept in the checkpoint, to rebuild the network without the file."""
    text = ckpt["spec"].get("text")
    if not isinstance(text, str) or not text:
        raise ResumeError(f"{path} holds no spec text to rebuild the network from; give the SPEC too")
    return text


def load_weights(module, state, what: str) -> None:
    """Load a state dict, or raise ResumeError naming the first tensor that does not fit.

    PyTorch's own message lists every mismatch over many lines; one is enough.
    """
    if not isinstance(state, dict):
        raise ResumeError(f"{what} holds no weights")
    state = clean_state_dict(state)
    own = module.state_dict()
    reason = next((f"{k} is {list(state[k].shape)} in the checkpoint, {list(own[k].shape)} in the network"
                   for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape),
                  None)
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if reason is None and (missing or extra):
        keys = missing or extra
        more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
        reason = (f"the checkpoint has no {keys[0]}{more}" if missing
                  else f"the checkpoint has {keys[0]}{more}, which the network has not")
    if reason is None:
        try:
            module.load_state_dict(state)
            return
        except (RuntimeError, TypeError, ValueError) as e:
            reason = str(e).strip().splitlines()[-1].strip()
    raise ResumeError(f"{what} does not fit this network ({reason})")


def rng_state() -> dict:
    """Every generator a training step may draw from (dropout, Python, NumPy, CUDA, MPS)."""
    state = {"torch": torch.get_rng_state(), "python": _plain(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    try:
        import numpy as np
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]
    except ImportError:
        pass
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
    if "numpy" in state:
        import numpy as np
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))


def _plain(value):
    """Tuples as lists, so the state survives any serialisation."""
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
