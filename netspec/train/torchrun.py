"""`python -m netspec.train.torchrun N ARGV...`: torchrun for `netspec train --nproc N`, without its tracebacks.

torchrun's own command prints a ChildFailedError traceback whenever a worker
exits non-zero, even when the worker has already said why in one line (a user
error, exit 2) or was stopped by Ctrl-C (exit 130). This runs the same launcher
(torch.distributed.run, standalone, the workers running `python -m
netspec.train ARGV`) and exits with the code of the worker that failed first,
128 + N for signal N, saying nothing of its own.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str]) -> int:
    try:
        from torch.distributed.elastic.multiprocessing.api import SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.run import get_args_parser, run

        for name, logger in list(logging.root.manager.loggerDict.items()):  # each sets its own level
            if name.startswith("torch.distributed") and isinstance(logger, logging.Logger):
                logger.setLevel(logging.CRITICAL)  # the workers say what went wrong
        nproc, *rest = argv
        args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}",
                                             "-m", "netspec.train", *rest])
        try:
            run(args)
            return 0
        except ChildFailedError as e:
            code = e.get_first_failure()[1].exitcode
            return 128 - code if code < 0 else code
        except SignalException as e:  # torchrun has stopped the workers with the same signal
            return 128 + int(e.sigval)
    except KeyboardInterrupt:  # Ctrl-C before torchrun had set its handlers: no worker started yet
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
