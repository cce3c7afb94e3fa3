"""netspec: neural-network architectures as YAML, compiled to PyTorch.

The front end (load, validate, elaborate, infer, report) is pure Python and
never imports torch; `compile` and training import it when called.
"""

from .api import compile, infer, load, load_text, spec_hash
from .errors import SpecError

__all__ = ["compile", "infer", "load", "load_text", "spec_hash", "SpecError"]
__version__ = "0.1.0"
