"""`python -m netspec.train SPEC ...` (and `torchrun ... -m netspec.train`): the train command alone."""

import sys

from .cli import main

sys.exit(main())
