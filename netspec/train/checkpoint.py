"""Checkpoints that are never half-written and load with `weights_only=True`.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:
model (and EMA) weights, optimizer, scheduler and scaler state, every random
number generator, where in which epoch the run stopped, the resolved config
and the spec (hash, text, params, input) to rebuild the network from.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch

FORMAT = "netspec-checkpoint/1"
PREFIXES = ("_orig_mod.", "module.")  # added by torch.compile and DDP wrappers


class ResumeError(Exception):
    """A checkpoint that cannot be used to resume this run."""

    exit_code = 2


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
    """Write to a temporary file beside `path`, then rename: a crash leaves the old file whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> dict:
    """Read a checkpoint safely (`weights_only=True`: no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, not a torch file, unsafe pickle
        raise ResumeError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ResumeError(f"{path} is not a netspec checkpoint")
    return ckpt


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
