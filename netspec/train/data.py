"""Data sets as batches on the training device.

Fashion-MNIST, MNIST and CIFAR-10 fit in memory, so they are held as one
uint8 tensor on the device, shuffled with a generator seeded by (seed, epoch),
and converted and resized a whole batch at a time on the device: no per-image
PIL work, no worker processes. An image folder streams through a DataLoader
with workers. Both hand out the same batches for the same seed and epoch, and
the order of epoch E's batches depends on nothing else, so a run resumed in
the middle of an epoch sees exactly the batches it would have seen.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from ..errors import own_message

TORCHVISION_SETS = {  # name -> (torchvision class name, folder torchvision looks in, how to fetch)
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw"),
    "mnist": ("MNIST", "MNIST/raw"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
}
SYNTHETIC = {"train": 6000, "test": 1000, "classes": 10, "side": 28}


class DataError(Exception):
    """Data that cannot be loaded; the message says where we looked and what to do."""

    exit_code = 2


def data_dirs(data_dir: str | None) -> list[Path]:
    """Where torchvision data sets are looked for, in order of preference."""
    if data_dir:
        return [Path(data_dir).expanduser()]
    dirs = [Path(os.environ["NETSPEC_DATA"]).expanduser()] if os.environ.get("NETSPEC_DATA") else []
    return dirs + [Path("~/.cache/netspec/data").expanduser()]


# --- batches ------------------------------------------------------------------

def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch `epoch`: a function of (seed, epoch) alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_indices(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[torch.Tensor]:
    """This rank's share of each global batch of an epoch.

    The global batch is split into `world` equal contiguous shares, so that
    DDP's mean of per-rank gradients equals one process's gradient on the
    whole batch. Under DDP a last batch is cut to a multiple of `world`.
    """
    order = epoch_order(n, seed, epoch)
    out = []
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        share = len(idx) // world
        if share == 0:
            break
        out.append(idx[rank * share:(rank + 1) * share])
    return out


MAX_LERP_STEP = 64  # beyond this many input rows per period, the lerps are many and small: the product wins


def to_float(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """uint8 NCHW -> float in [0, 1] at `size`, like torchvision's Resize + ToTensor.

    Bilinear with half-pixel centres; antialiased when shrinking, as PIL is.
    That resize is linear and separable, so it is two matrix products,
    R_h @ (X @ R_w^T), faster than F.interpolate on CPU and exact where
    F.interpolate is not (antialiased to a one-pixel-wide output). Enlarging,
    the second product is mostly multiplications by zero (each output row
    mixes two input rows), so `_enlarge_rows` does it as a few lerps instead,
    faster where that product is most of the work (benchmarks/RESULTS.md, 3).
    Always float32, also under autocast: the products would run in half
    precision there, and the lerps refuse mixed dtypes.
    """
    h, w = images.shape[-2:]
    if size is None or (h, w) == tuple(size):
        return images.float().div_(255)
    out_h, out_w = size
    with torch.autocast(images.device.type, enabled=False):  # evaluation asks for batches under autocast
        if out_h > h and out_w >= w and h // math.gcd(h, out_h) <= MAX_LERP_STEP:
            cols, phases = _enlarge_plan(h, w, out_h, out_w, images.device)
            return _enlarge_rows(torch.matmul(images.float(), cols), out_h, phases)
        rows, cols = _resize_matrices(h, w, out_h, out_w, images.device)
        return torch.matmul(rows, torch.matmul(images.float(), cols))


@functools.lru_cache(maxsize=16)
def _resize_matrices(h: int, w: int, out_h: int, out_w: int, device: torch.device):
    """(R_h / 255, R_w^T): F.interpolate's own weights, read off by resizing an identity.

    The identity is resized as one n x n image along one axis: as n images one
    pixel wide it would hit PyTorch's antialias bug for one-pixel-wide outputs
    (every row a copy of the first).
    """
    shrink = out_h < h or out_w < w  # antialias both axes when either shrinks, as before

    def matrix(n_in: int, n_out: int) -> torch.Tensor:  # (n_out, n_in)
        eye = torch.eye(n_in, dtype=torch.float64).view(1, 1, n_in, n_in)
        out = F.interpolate(eye, size=(n_out, n_in), mode="bilinear", align_corners=False, antialias=shrink)
        return out[0, 0]

    rows = (matrix(h, out_h) / 255).float().to(device)
    cols = matrix(w, out_w).t().float().contiguous().to(device)
    return rows, cols


@functools.lru_cache(maxsize=16)
def _enlarge_plan(h: int, w: int, out_h: int, out_w: int, device: torch.device):
    """(R_w^T / 255, the row phases) for `_enlarge_rows`.

    With g = gcd(h, out_h), the output rows come in g periods of out_h / g
    rows, and period m reads input rows from step * m on (step = h / g), each
    row at the same offset and weight in every period. Phases that read the
    same pair of rows form one group: (first, last, offset, weights).
    """
    cols = _resize_matrices(h, w, out_h, out_w, device)[1] / 255
    g = math.gcd(h, out_h)
    phases = []
    for j in range(out_h // g):  # source row (j + 1/2) h / out_h - 1/2, as a fraction over 2 out_h
        numerator, denominator = (2 * j + 1) * h - out_h, 2 * out_h
        offset = numerator // denominator  # -1 before the first row's centre: clamped by the padding
        weight = (numerator - offset * denominator) / denominator
        if phases and phases[-1][2] == offset:
            phases[-1][1] = j + 1
            phases[-1][3].append(weight)
        else:
            phases.append([j, j + 1, offset, [weight]])
    return cols, [(first, last, offset, torch.tensor(weights, device=device).view(-1, 1))
                  for first, last, offset, weights in phases]


def _enlarge_rows(y: torch.Tensor, out_h: int, phases) -> torch.Tensor:
    """Bilinear enlargement of dim -2 of `y`: one lerp per group of phases, written in place into the
    output (viewed as periods x phases), reading the rows as strided views: no gathered copies."""
    *lead, h, width = y.shape
    g = math.gcd(h, out_h)
    step = h // g
    padded = torch.cat([y[..., :1, :], y, y[..., -1:, :]], dim=-2)  # edge rows repeated: the clamping
    out = y.new_empty(*lead, g, out_h // g, width)
    for first, last, offset, weights in phases:
        shape = (*lead, g, last - first, width)
        low = padded[..., offset + 1:offset + 1 + step * g:step, :].unsqueeze(-2).expand(shape)
        high = padded[..., offset + 2:offset + 2 + step * g:step, :].unsqueeze(-2).expand(shape)
        torch.lerp(low, high, weights, out=out[..., first:last, :])
    return out.view(*lead, out_h, width)


@dataclass
class TensorSplit:
    """One split held whole on the device: uint8 images NCHW and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor
    size: tuple[int, int] | None = None   # output size; None = as stored
    channels: int = 0                     # output channels (a gray set may be repeated to 3)

    def __len__(self) -> int:
        return len(self.labels)

    def _batch(self, idx: torch.Tensor):
        idx = idx.to(self.images.device)
        x = to_float(self.images[idx], self.size)
        if self.channels and x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return x, self.labels[idx]

    def train_batches(self, batch_size, seed, epoch, rank=0, world=1, start=0) -> Iterator:
        for idx in batch_indices(len(self), batch_size, seed, epoch, rank, world)[start:]:
            yield self._batch(idx)

    def num_batches(self, batch_size, world=1) -> int:
        return len(_batch_starts(len(self), batch_size, world))

    def test_batches(self, batch_size, rank=0, world=1) -> Iterator:
        mine = torch.arange(rank, len(self), world)
        for start in range(0, len(mine), batch_size):
            yield self._batch(mine[start:start + batch_size])


def _batch_starts(n, batch_size, world):
    """Where an epoch's batches start (to count them without shuffling)."""
    return [s for s in range(0, n, batch_size) if min(batch_size, n - s) // world > 0]


class FolderSplit:
    """An image folder streamed through a DataLoader with workers, same batch order."""

    def __init__(self, dataset, device, workers: int):
        self.dataset, self.device, self.workers = dataset, device, workers

    def __len__(self) -> int:
        return len(self.dataset)

    def _loader(self, batches):
        from torch.utils.data import DataLoader
        # its own generator: worker seeds must not draw from the global RNG (exact resume)
        return DataLoader(self.dataset, batch_sampler=[b.tolist() for b in batches], num_workers=self.workers,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(0))

    def _moved(self, loader):
        try:
            for x, y in loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        except DataError as exc:  # from a worker, it holds the worker's traceback
            raise DataError(own_message(exc)) from None

    def train_batches(self, batch_size, seed, epoch, rank=0, world=1, start=0):
        yield from self._moved(self._loader(batch_indices(len(self), batch_size, seed, epoch, rank, world)[start:]))

    def num_batches(self, batch_size, world=1) -> int:
        return len(_batch_starts(len(self), batch_size, world))

    def test_batches(self, batch_size, rank=0, world=1):
        mine = torch.arange(rank, len(self), world)
        yield from self._moved(self._loader(list(mine.split(batch_size))))


@dataclass
class Data:
    """A data set ready for training: both splits, class names, and a description."""

    name: str
    train: TensorSplit | FolderSplit
    test: TensorSplit | FolderSplit
    classes: list[str]
    description: str = ""
    notes: list[str] = field(default_factory=list)


# --- loading --------------------------------------------------------------------

def load_data(config, input_shape: tuple[int, int, int], device: torch.device) -> Data:
    """Load `config.data` for a network taking `input_shape` (C, H, W) on `device`.

    Images come out at `config.resize`, or at the network's input size when no
    resize is given. A gray data set feeds a 3-channel network by repetition.
    """
    if len(input_shape) != 3:  # checked first: a data set shaped after [784] would be 784-channel images
        raise DataError(f"the runner trains on images, so the network's input must be [C, H, W]; this one is "
                        f"{list(input_shape)} (a flat input: start from [1, 28, 28] and `flatten`)")
    channels = input_shape[0]
    size = config.image_size or tuple(input_shape[1:])
    if config.data == "synthetic":
        data = synthetic(channels, device)
    elif config.data.startswith("imagefolder:"):
        data = image_folder(config.data.split(":", 1)[1], channels, size, device, config.workers)
    else:
        data = torchvision_set(config.data, config.data_dir, config.download, device)
    for split in (data.train, data.test):
        if isinstance(split, TensorSplit):
            have = split.images.shape[1]
            if have != channels and have != 1:
                raise DataError(f"{config.data} has {have} channels but the network takes {channels}; "
                                f"change the spec's input")
            split.size, split.channels = size, channels
    data.train = _limit(data.train, config.limit_train)
    data.test = _limit(data.test, config.limit_test)
    return data


def _limit(split, n):
    """The first n images only (a fixed subset, the same every run)."""
    if n is None or n >= len(split):
        return split
    if isinstance(split, TensorSplit):
        return TensorSplit(split.images[:n], split.labels[:n], split.size, split.channels)
    from torch.utils.data import Subset
    return FolderSplit(Subset(split.dataset, range(n)), split.device, split.workers)


def torchvision_set(name: str, data_dir: str | None, download: bool, device) -> Data:
    """A torchvision data set, found in the data folders or downloaded on request."""
    import torchvision.datasets as tvd

    cls_name, folder = TORCHVISION_SETS[name]
    cls = getattr(tvd, cls_name)
    dirs = data_dirs(data_dir)
    root = next((d for d in dirs if (d / folder).is_dir()), None)
    if root is None and download:
        root = dirs[0]
    if root is None:
        looked = ", ".join(str(d / folder) for d in dirs)
        raise DataError(f"{name} not found (looked in {looked}); put the torchvision files there, "
                        f"point --data-dir or NETSPEC_DATA at their folder, or pass --download")
    new = _first_missing(root / folder)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as e:  # incomplete files, or a failed download (its message runs to lines)
        if new is not None and download:
            shutil.rmtree(new, ignore_errors=True)  # what the failed download made: partial or empty
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        if download:
            raise DataError(f"{name} could not be downloaded to {root / folder} ({lines[-1]}); check the network, "
                            f"or put the torchvision files there yourself") from None
        raise DataError(f"{name} could not be read from {root / folder} ({lines[0]}); "
                        f"pass --download to fetch it again") from None

    def split(ds) -> TensorSplit:
        images = torch.as_tensor(ds.data)
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # NHW / NHWC -> NCHW
        return TensorSplit(images.contiguous().to(device), torch.as_tensor(ds.targets, dtype=torch.long).to(device))

    return Data(name, split(train), split(test), list(train.classes),
                description=f"{name} from {root}")


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (a download would make it), or None."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            return missing
        missing = folder
    return missing


def synthetic(channels: int, device) -> Data:
    """Ten smooth random patterns plus noise: learnable, offline, and not real data.

    Generated from a fixed seed, so it is the same data set in every run.
    """
    g = torch.Generator().manual_seed(1234)
    k, side = SYNTHETIC["classes"], SYNTHETIC["side"]
    patterns = F.interpolate(torch.rand(k, channels, 4, 4, generator=g), size=(side, side),
                             mode="bilinear", align_corners=False)

    def split(n):
        labels = torch.randint(0, k, (n,), generator=g)
        noise = torch.randn(n, channels, side, side, generator=g) * 0.15
        images = (patterns[labels] + noise).clamp(0, 1).mul(255).round().to(torch.uint8)
        return TensorSplit(images.to(device), labels.to(device))

    return Data("synthetic", split(SYNTHETIC["train"]), split(SYNTHETIC["test"]),
                [f"pattern-{i}" for i in range(k)],
                description="synthetic (generated patterns, not real images)")


class _ImageLoader:
    """ImageFolder's loader: a file as 8-bit `mode` (L, LA, RGB or RGBA), or a DataError naming it (a worker's
    error would otherwise be a traceback). A class, not a closure, so that workers can pickle it."""

    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, path: str):
        from PIL import Image, UnidentifiedImageError

        try:
            with open(path, "rb") as handle:
                image = Image.open(handle)
                image.load()
            if image.mode.startswith("I"):  # 16-bit gray (I;16, or I as older Pillow reads it): convert() would
                image = image.point(lambda v: v / 257).convert("L")  # clip at 255, not scale: all white
            elif image.mode == "F":
                raise DataError(f"{path} holds floating-point pixels, whose range netspec cannot know; "
                                f"save it with 8 or 16 bits per channel")
            return image.convert(self.mode)
        except DataError:
            raise
        except Exception as exc:
            why = "" if isinstance(exc, UnidentifiedImageError) else f" ({exc})"  # which repeats the path
            raise DataError(f"{path} is not an image PIL can read{why}; remove it or replace it") from None


def image_folder(path: str, channels: int, size, device, workers: int) -> Data:
    """PATH/train/CLASS/*.png and PATH/test (or PATH/val) through torchvision's ImageFolder."""
    import torchvision.datasets as tvd
    import torchvision.transforms as T

    root = Path(path).expanduser()
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataError(f"image folder {root} needs train/ and test/ (or val/) folders, "
                        f"each with one folder of images per class")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels)  # gray, gray + alpha, colour, colour + alpha
    if mode is None:
        raise DataError(f"an image folder gives 1 to 4 channels (gray, gray + alpha, RGB, RGBA); "
                        f"the network takes {channels}")
    transform = T.Compose([T.Resize(tuple(size)), T.ToTensor()])
    try:
        train = tvd.ImageFolder(str(root / "train"), transform=transform, loader=_ImageLoader(mode))
        test = tvd.ImageFolder(str(test_dir), transform=transform, loader=_ImageLoader(mode))
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"image folder {root}: {e}") from None
    if train.classes != test.classes:
        raise DataError(f"image folder {root}: train/ and {test_dir.name}/ have different class folders")
    workers = min(workers, usable_cores())  # more only wait for a core (PyTorch warns of it at every epoch)
    return Data(f"imagefolder:{root}", FolderSplit(train, device, workers), FolderSplit(test, device, workers),
                list(train.classes), description=f"image folder {root}")


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
