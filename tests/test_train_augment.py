"""Training-batch augmentation (netspec/train/augment.py): what each image becomes, and its randomness."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from netspec.train.augment import batch_generator, default_shift, flip_and_shift


def candidates(image: torch.Tensor, shift: int) -> list[torch.Tensor]:
    """Every image a flip and a shift of at most `shift` each way can make of `image` (C, H, W), by brute force."""
    h, w = image.shape[-2:]
    out = []
    for source in (image, image.flip(-1)):
        padded = F.pad(source, (shift, shift, shift, shift))
        out += [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * shift + 1) for dx in range(2 * shift + 1)]
    return out


@settings(deadline=None, max_examples=60)
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), shift=st.integers(0, 4),
       seed=st.integers(0, 2**31))
def test_each_image_is_its_own_flip_and_shift(n, c, h, w, shift, seed):
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 1  # no zeros: padding shows
    out = flip_and_shift(x, torch.Generator().manual_seed(seed), shift)
    assert out.shape == x.shape and out.dtype == x.dtype
    for image, made in zip(x, out):
        assert any(torch.equal(made, option) for option in candidates(image, shift))


def test_flips_and_every_shift_happen_and_the_seed_decides():
    x = torch.arange(64 * 28 * 28, dtype=torch.float32).view(64, 1, 28, 28) + 1
    out = flip_and_shift(x, batch_generator(0, 0, 0))
    shift = default_shift(28, 28)
    assert shift == 3 and default_shift(96, 96) == 12 and default_shift(5, 40) == 1
    seen = set()
    for image, made in zip(x, out):
        options = candidates(image, shift)
        index = next(i for i, option in enumerate(options) if torch.equal(made, option))
        seen.add(index)
    flipped = {i for i in seen if i >= (2 * shift + 1) ** 2}
    assert flipped and len(flipped) < len(seen) and len(seen) > 20  # both ways, and many shifts, in 64 images
    assert torch.equal(out, flip_and_shift(x, batch_generator(0, 0, 0)))
    for other in (batch_generator(1, 0, 0), batch_generator(0, 1, 0), batch_generator(0, 0, 1),
                  batch_generator(0, 0, 0, rank=1)):
        assert not torch.equal(out, flip_and_shift(x, other))


def test_a_gray_batch_expanded_to_three_channels_keeps_them_equal():
    """Fashion-MNIST feeding a 3-channel network arrives as a stride-0 expand (netspec/train/data.py)."""
    x = torch.rand(8, 1, 12, 12).expand(-1, 3, -1, -1)
    out = flip_and_shift(x, batch_generator(5, 0, 0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
