"""What a run trains: a way to build the network, and what identifies it.

The runner never compiles specs itself; it calls `build(input_shape)`. A
ModelSource made from a spec records the spec's text, params and input in
every checkpoint, so `netspec eval` can rebuild the network from the
checkpoint alone. Tests pass any small hand-made module the same way.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional


@dataclass
class ModelSource:
    name: str
    input: tuple[int, int, int]                     # (C, H, W) the spec declares
    build: Callable[[tuple[int, int, int]], object]  # (C, H, W) -> nn.Module
    spec_hash: str
    text: Optional[str] = None                       # spec source, to rebuild from a checkpoint
    params: dict = field(default_factory=dict)
    path: Optional[str] = None

    def record(self) -> dict:
        """What a checkpoint keeps about the network."""
        return {"name": self.name, "input": list(self.input), "hash": self.spec_hash,
                "text": self.text, "params": dict(self.params), "path": self.path}

    @classmethod
    def from_spec(cls, spec, params: dict | None = None) -> "ModelSource":
        """A loaded netspec Spec, compiled at whatever input size the data needs."""
        import netspec

        params = dict(params or {})
        return cls(name=spec.name, input=tuple(spec.input), build=lambda shape: netspec.compile(spec, input=tuple(shape)),
                   spec_hash=spec_hash(spec, params), text=getattr(spec, "text", None), params=params,
                   path=str(getattr(spec, "file", None) or getattr(spec, "path", None) or "") or None)

    @classmethod
    def from_record(cls, record: dict) -> "ModelSource":
        """Rebuild from a checkpoint's spec record (text + params), without the original file."""
        if not record.get("text"):
            raise ValueError("the checkpoint holds no spec text to rebuild the network from")
        spec = load_spec_text(record["text"], record.get("params") or {}, record.get("path"), record.get("input"))
        return cls.from_spec(spec, record.get("params"))


def spec_hash(spec, params: dict) -> str:
    """netspec's own hash of the compiled spec when it has one, else of text + params."""
    import netspec

    if hasattr(netspec, "spec_hash"):
        return str(netspec.spec_hash(spec))
    blob = (getattr(spec, "text", "") or "") + json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_spec_text(text: str, params: dict, path: str | None = None, input=None):
    """A Spec from source text: netspec.load_text when it exists, else via a temporary file."""
    import netspec

    if hasattr(netspec, "load_text"):
        return netspec.load_text(text, params=params, path=path or "<checkpoint>",
                                 input=tuple(input) if input else None)
    name = Path(path).name if path else "spec.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / name
        file.write_text(text)
        return netspec.load(file, params=params, input=tuple(input) if input else None)
