"""Training-batch augmentation on the device: random horizontal flips and shifts.

The runner holds the data whole on the device and resizes batches there
(netspec.train.data), so augmentation is done there too, on the float batch:
each image is mirrored left to right with probability 1/2 and shifted by up
to `shift` pixels each way, the uncovered border zero (a random crop of the
zero-padded image, the usual recipe for small images). `shift` defaults to
an eighth of the shorter side: 3 pixels at 28x28, 12 at 96x96.

The random numbers come from a generator seeded by the run's seed, the epoch,
the batch's index and the process's rank: the same for every run of a seed,
resumed or not, different on each DDP process, and apart from the global RNG
that dropout draws from (turning augmentation on leaves the masks as they were).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def default_shift(height: int, width: int) -> int:
    return max(1, min(height, width) // 8)


def batch_generator(seed: int, epoch: int, batch: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for one batch of one process, the same on every run of the same seed."""
    return torch.Generator().manual_seed(hash((seed, epoch, batch, rank)) & 0x7FFF_FFFF_FFFF_FFFF)


def flip_and_shift(x: torch.Tensor, generator: torch.Generator, shift: int | None = None) -> torch.Tensor:
    """NCHW float batch -> the same shape, each image flipped (p = 1/2) and shifted by -shift..shift."""
    n, c, h, w = x.shape
    shift = default_shift(h, w) if shift is None else shift
    flip = torch.rand(n, generator=generator) < 0.5
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    flip, dy, dx = flip.to(x.device), dy.to(x.device), dx.to(x.device)
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (shift, shift, shift, shift))
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    images = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[images, channels, rows, cols]
