"""3. Data pipeline: netspec's on-device batched resize versus the book's DataLoader.

The book's way (d2l `load_data_fashion_mnist`): torchvision's FashionMNIST
with `transforms.Compose([Resize(size), ToTensor()])`, per image in PIL, and
a shuffling `DataLoader` with 4 worker processes (d2l's
`get_dataloader_workers()`); also with 2 workers, one per core here.

netspec's way (netspec/train/data.py): the whole set held as one uint8
tensor, a batch gathered by index, converted to float and resized on the
device (CPU here): bilinear resizing is linear and separable, so the width
is one matrix product, X @ R_w^T / 255, and the height, enlarging as here,
a few lerps between neighbouring rows (`to_float`). Each pass runs inside
`netspec.train.memory.kept()`, as `netspec train` runs on the CPU: a batch at
224 is 25.7 MB, and without it glibc hands each one back to the kernel and
faults it in again (up to 140,000 page faults a pass, 0.18-0.31 against
0.15-0.19 s, after the book's loaders had run; entered per pass, its exit's
trim is timed too).

Both make one shuffled pass over the same first N training images, at the
book's batch size for that resolution (96: 256, ResNet's; 224: 128,
AlexNet's), the loader's iterator (and its workers) created inside the
timing as each epoch does. Reading the raw files is done once, outside. The
figure is images per second; ratio = netspec / the faster book loader.
"""

from __future__ import annotations

import sys

from . import common
from .common import interleaved, median, table

CASES = [(96, 256), (224, 128)]  # (resize, batch size)
N_IMAGES = 10_240


def book_loader(size: int, batch: int, workers: int, n: int):
    import torch
    import torchvision
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    trans = transforms.Compose([transforms.Resize(size), transforms.ToTensor()])
    train = torchvision.datasets.FashionMNIST(common.data_dir(), train=True, transform=trans, download=False)
    subset = Subset(train, range(n))

    def epoch(seed=[0]):
        seed[0] += 1
        g = torch.Generator().manual_seed(seed[0])
        count = 0
        for x, y in DataLoader(subset, batch, shuffle=True, num_workers=workers, generator=g):
            count += len(y)
        assert count == n
    return epoch, train


def netspec_split(size: int, n: int):
    import torch

    from netspec.train.config import TrainConfig
    from netspec.train.data import load_data

    config = TrainConfig(data="fashion-mnist", data_dir=common.data_dir(), resize=size, limit_train=n)
    return load_data(config, (1, 28, 28), torch.device("cpu"))


def netspec_loader(size: int, batch: int, n: int):
    from netspec.train.memory import kept

    data = netspec_split(size, n)

    def epoch(seed=[0]):
        seed[0] += 1
        count = 0
        with kept(True):  # as `netspec train` reads its batches on the CPU
            for x, y in data.train.train_batches(batch, seed[0], 0):
                count += len(y)
        assert count == n
    return epoch, data


def agreement(size: int) -> float:
    """Largest |difference| between the two pipelines' first 64 images (values in [0, 1])."""
    import torch

    _, train = book_loader(size, 64, 0, 64)  # its dataset applies Resize + ToTensor per image
    data = netspec_split(size, 64)
    mine = next(data.train.test_batches(64))[0]
    theirs = torch.stack([train[i][0] for i in range(64)])
    return (mine - theirs).abs().max().item()


def run(quick: bool = False) -> dict:
    common.header("3. Data pipeline (Fashion-MNIST, CPU)")
    n = 2_560 if quick else N_IMAGES
    rows, raw = [], []
    for size, batch in CASES:
        fns = {"book, 4 workers": book_loader(size, batch, 4, n)[0],
               "book, 2 workers": book_loader(size, batch, 2, n)[0],
               "netspec": netspec_loader(size, batch, n)[0]}
        t = interleaved(fns, repeats=2 if quick else 3, warmup=1, inner=1)
        rate = {k: n / median(v) for k, v in t.items()}
        best_book = max(rate["book, 4 workers"], rate["book, 2 workers"])
        diff = agreement(size)
        rows.append([size, batch, f"{rate['book, 4 workers']:,.0f}", f"{rate['book, 2 workers']:,.0f}",
                     f"{rate['netspec']:,.0f}", common.x(rate["netspec"] / best_book), f"{diff:.3f}"])
        raw.append({"size": size, "batch": batch, "n": n, "seconds": t, "images_per_s": rate,
                    "ratio": rate["netspec"] / best_book, "max_abs_diff": diff})
        print(f"  {size}: {rate}", flush=True)
    print(table(["resize", "batch", "book img/s (4 workers)", "book img/s (2 workers)", "netspec img/s",
                 "netspec / best book", "max |Δ| pixel"], rows))
    print(f"\nOne shuffled pass over the first {n:,} training images, loader start-up included; "
          f"medians of interleaved passes. max |Δ|: the same 64 images through both pipelines "
          f"(pixel values in [0, 1]).")
    ratios = [r["ratio"] for r in raw]
    ok = min(ratios) >= 5
    each = ", ".join("%d: %.1f×" % (r["size"], r["ratio"]) for r in raw)
    print(f"\n- target ≥5× on CPU: {common.verdict(ok)} ({each})")
    result = {"rows": rows, "raw": raw, "target": [ok, ratios]}
    common.save("data", result)
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv)
