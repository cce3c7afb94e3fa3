"""The training runner: `netspec train` and `netspec eval`.

Kept free of torch imports: `netspec.train.config` validates a spec's `train:`
section without torch; the loop, data and checkpoints import it when they run.
"""
