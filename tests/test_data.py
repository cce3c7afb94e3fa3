"""Data: the on-device fast path against torchvision, batch order, and errors that say what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

from netspec.train.config import TrainConfig
from netspec.train.data import DataError, batch_indices, data_dirs, load_data, to_float

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NETSPEC_DATA") or REPO.parent / "shared" / "data")
needs_fmnist = pytest.mark.skipif(not (DATA / "FashionMNIST" / "raw").is_dir(),
                                  reason=f"Fashion-MNIST not found in {DATA} (set NETSPEC_DATA)")
CPU = torch.device("cpu")


@needs_fmnist
@pytest.mark.parametrize("size", [(96, 96), (224, 224), (20, 20), (14, 14), (40, 60)])
def test_device_resize_matches_torchvision_resize_totensor(size):
    """Tolerance: at most one gray level (1/255) per pixel, under 0.25/255 on average.

    torchvision resizes with PIL and rounds to uint8 before ToTensor; we resize
    the float image, so the only difference is that rounding (plus PIL's
    fixed-point filter weights).
    """
    import torchvision.transforms as T
    from PIL import Image

    data = load_data(TrainConfig(data_dir=str(DATA), limit_train=64, limit_test=1), (1, 28, 28), CPU)
    images = data.train.images
    ours = to_float(images, size)
    reference = torch.stack([T.Compose([T.Resize(size), T.ToTensor()])(Image.fromarray(im[0].numpy()))
                             for im in images])
    diff = (ours - reference).abs()
    assert ours.shape == reference.shape == (64, 1, *size)
    assert diff.max() <= 1.01 / 255
    assert diff.mean() < 0.25 / 255


def interpolated(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The resize as F.interpolate does it (to_float's former code).

    PyTorch's antialiased resize to a one-pixel-wide output copies the first
    row to every row; resizing the transposed image sidesteps that bug.
    """
    x = images.float() / 255
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    if shrink and size[1] == 1 < size[0]:
        return interpolated(images.transpose(-1, -2), size[::-1]).transpose(-1, -2)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


sides = st.integers(1, 40)


@given(n=st.integers(1, 3), c=st.integers(1, 3), h=sides, w=sides, out_h=sides, out_w=sides,
       seed=st.integers(0, 2**16))
@example(n=1, c=1, h=1, w=1, out_h=5, out_w=1, seed=0)
@example(n=2, c=1, h=8, w=1, out_h=4, out_w=1, seed=0)
@example(n=1, c=3, h=28, w=28, out_h=14, out_w=1, seed=0)
@example(n=1, c=1, h=8, w=8, out_h=1, out_w=1, seed=0)
@example(n=1, c=1, h=1, w=8, out_h=1, out_w=3, seed=0)
@example(n=2, c=1, h=28, w=28, out_h=96, out_w=40, seed=0)
@example(n=2, c=1, h=28, w=28, out_h=224, out_w=224, seed=0)  # enlarging: the lerps, two groups of phases
@example(n=1, c=2, h=67, w=3, out_h=68, out_w=5, seed=0)  # 67 rows per period: the product instead
@example(n=1, c=1, h=5, w=9, out_h=12, out_w=4, seed=0)  # taller but narrower: antialiased, the products
def test_resize_equals_interpolate(n, c, h, w, out_h, out_w, seed):
    """The resize (two products, or a product and lerps when enlarging) is F.interpolate's bilinear,
    antialiased when shrinking."""
    images = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    ours = to_float(images, (out_h, out_w))
    assert ours.shape == (n, c, out_h, out_w) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, interpolated(images, (out_h, out_w)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(96, 96), (14, 14), (28, 28)])
def test_resize_ignores_autocast(size):
    """Evaluation reads its batches inside autocast: the images stay float32 and exact there."""
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = to_float(images, size)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, to_float(images, size), atol=0, rtol=0)


@needs_fmnist
def test_fashion_mnist_is_one_uint8_tensor_and_batches_are_float_in_0_1():
    data = load_data(TrainConfig(data_dir=str(DATA), resize=32), (1, 32, 32), CPU)
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape == (60000, 1, 28, 28)
    assert len(data.test) == 10000 and data.classes[0] == "T-shirt/top"
    x, y = next(data.train.train_batches(256, seed=0, epoch=0))
    assert x.shape == (256, 1, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.long and y.shape == (256,)


@needs_fmnist
def test_gray_data_feeds_a_three_channel_network():
    data = load_data(TrainConfig(data_dir=str(DATA), limit_train=8, limit_test=8), (3, 28, 28), CPU)
    x, _ = next(data.test.test_batches(8))
    assert x.shape == (8, 3, 28, 28) and torch.equal(x[:, 0], x[:, 2])


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(DataError) as info:
        load_data(TrainConfig(data="mnist", data_dir=str(tmp_path)), (1, 28, 28), CPU)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "--download" in message and "--data-dir" in message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded, nothing written


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("NETSPEC_DATA", str(tmp_path / "env"))
    assert data_dirs("/x") == [Path("/x")]
    assert data_dirs(None) == [tmp_path / "env", Path("~/.cache/netspec/data").expanduser()]
    monkeypatch.delenv("NETSPEC_DATA")
    assert data_dirs(None) == [Path("~/.cache/netspec/data").expanduser()]


def test_batch_order_depends_only_on_seed_and_epoch():
    a = torch.cat(batch_indices(100, 32, seed=1, epoch=3))
    assert torch.equal(a, torch.cat(batch_indices(100, 32, seed=1, epoch=3)))
    assert sorted(a.tolist()) == list(range(100))  # every image once; the last batch is short
    assert not torch.equal(a, torch.cat(batch_indices(100, 32, seed=1, epoch=4)))
    assert not torch.equal(a, torch.cat(batch_indices(100, 32, seed=2, epoch=3)))


def test_ranks_split_every_global_batch_evenly():
    whole = batch_indices(100, 32, seed=0, epoch=0)
    shards = [batch_indices(100, 32, seed=0, epoch=0, rank=r, world=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4
    for step, batch in enumerate(whole[:3]):
        assert torch.equal(torch.cat([shards[0][step], shards[1][step]]), batch)
    assert len(shards[0][3]) == len(shards[1][3]) == 2  # the short last batch (4) is split too


def test_synthetic_is_fixed_labelled_and_learnable():
    a = load_data(TrainConfig(data="synthetic"), (1, 28, 28), CPU)
    b = load_data(TrainConfig(data="synthetic", seed=5), (1, 28, 28), CPU)
    assert torch.equal(a.train.images, b.train.images)  # the data set, not the run seed
    assert "synthetic" in a.description and "not real" in a.description
    assert a.classes == [f"pattern-{i}" for i in range(10)]
    # learnable: nearest class mean on the training set classifies the test set well
    x, y = a.train.images.float().flatten(1), a.train.labels
    means = torch.stack([x[y == k].mean(0) for k in range(10)])
    t = a.test.images.float().flatten(1)
    accuracy = (torch.cdist(t, means).argmin(1) == a.test.labels).float().mean()
    assert accuracy > 0.9


def test_limits_take_the_first_images():
    data = load_data(TrainConfig(data="synthetic", limit_train=100, limit_test=10), (3, 16, 16), CPU)
    assert len(data.train) == 100 and len(data.test) == 10
    x, _ = next(data.train.train_batches(100, 0, 0))
    assert x.shape == (100, 3, 16, 16)


def _two_class_folder(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for k, color in enumerate(((255, 0, 0), (0, 0, 255))):
            folder = tmp_path / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(5):
                Image.new("RGB", (20 + i, 18), color).save(folder / f"{i}.png")


def test_image_folder_streams_through_a_dataloader(tmp_path):
    _two_class_folder(tmp_path)
    config = TrainConfig(data=f"imagefolder:{tmp_path}", workers=1)
    data = load_data(config, (3, 16, 16), CPU)
    assert data.classes == ["class0", "class1"] and len(data.train) == 10
    batches = list(data.train.train_batches(4, seed=0, epoch=0))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 3, 16, 16)
    red = x[:, 0].mean((1, 2)) > 0.9
    assert torch.equal(red, y == 0)  # labels travel with their images
    # the same order as the in-memory path for the same seed and epoch
    order = torch.cat(batch_indices(10, 4, 0, 0))
    assert torch.equal(torch.cat([y for _, y in batches]), torch.tensor([data.train.dataset.targets[i] for i in order]))


def test_image_folder_workers_stop_at_the_usable_cores_so_pytorch_never_warns(tmp_path):
    import warnings

    from netspec.train.data import usable_cores

    _two_class_folder(tmp_path)
    data = load_data(TrainConfig(data=f"imagefolder:{tmp_path}", workers=usable_cores() + 3), (3, 16, 16), CPU)
    assert data.train.workers == data.test.workers == usable_cores()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "This DataLoader will create 5 worker processes ..." once came each epoch
        assert sum(len(y) for _, y in data.train.train_batches(4, seed=0, epoch=0)) == 10


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("content, why", [(b"not an image", ""), ("truncated", " (image file is truncated)")])
def test_an_unreadable_image_is_a_one_line_data_error_naming_it(tmp_path, workers, content, why):
    _two_class_folder(tmp_path)
    bad = tmp_path / "train" / "class1" / "bad.png"
    if content == "truncated":  # the first half of a PNG of noise, which does not compress away
        from PIL import Image

        Image.frombytes("RGB", (32, 32), bytes(range(256)) * 12).save(bad)
        content = bad.read_bytes()[: bad.stat().st_size // 2]
    bad.write_bytes(content)
    data = load_data(TrainConfig(data=f"imagefolder:{tmp_path}", workers=workers), (3, 16, 16), CPU)
    with pytest.raises(DataError) as info:
        list(data.train.train_batches(4, seed=0, epoch=0))
    assert str(info.value) == f"{bad} is not an image PIL can read{why}; remove it or replace it"


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_image_folder_gives_the_channels_the_network_takes(tmp_path, channels):
    """RGB files for a network of 4 channels once reached the first conv as 3: an internal error."""
    _two_class_folder(tmp_path)
    config = TrainConfig(data=f"imagefolder:{tmp_path}", workers=0)
    if channels > 4:
        with pytest.raises(DataError, match="1 to 4 channels .* the network takes 5"):
            load_data(config, (channels, 16, 16), CPU)
        return
    x, _ = next(load_data(config, (channels, 16, 16), CPU).train.train_batches(4, seed=0, epoch=0))
    assert x.shape == (4, channels, 16, 16)


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_images_are_scaled_not_clipped(tmp_path, channels):
    """PIL's convert() clips 16-bit gray at 255: noise of mean 0.5 once trained as 98 % white."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 65536, (16, 16), dtype=np.uint16)
    for split in ("train", "test"):
        folder = tmp_path / split / "a"
        folder.mkdir(parents=True)
        Image.fromarray(pixels).save(folder / "0.png")
    data = load_data(TrainConfig(data=f"imagefolder:{tmp_path}", workers=0), (channels, 16, 16), CPU)
    x, _ = next(data.train.train_batches(1, seed=0, epoch=0))
    assert abs(x.mean().item() - pixels.mean() / 65535) < 0.01 and x.max().item() < 1


def test_an_image_pil_cannot_convert_is_a_data_error_naming_it(tmp_path):
    from PIL import Image

    _two_class_folder(tmp_path)
    odd = tmp_path / "train" / "class0" / "float.tiff"
    Image.new("F", (8, 8), 0.5).save(odd)
    data = load_data(TrainConfig(data=f"imagefolder:{tmp_path}", workers=1), (3, 16, 16), CPU)
    with pytest.raises(DataError) as info:
        list(data.train.train_batches(4, seed=0, epoch=0))
    assert str(info.value).startswith(f"{odd} holds floating-point pixels") and "\n" not in str(info.value)


def test_image_folder_without_splits_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="train/ and test/"):
        load_data(TrainConfig(data=f"imagefolder:{tmp_path}"), (3, 16, 16), CPU)


def test_cifar10_missing_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cifar10 not found"):
        load_data(TrainConfig(data="cifar10", data_dir=str(tmp_path)), (3, 32, 32), CPU)
