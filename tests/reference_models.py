"""Independent plain-PyTorch reference implementations of the seven
*Dive into Deep Learning* chapter-7 CNNs (1 input channel, 10 classes).

These are the ground truth for netspec's parity tests. They are written the
way the book writes them (small block classes / ``nn.Sequential``) and do not
import anything from netspec.

Parameter registration order follows the forward order of the layer lists in
/work/shared/REFERENCE.md:

* Inception: path1 conv, path2 convs, path3 convs, path4 conv.
* Residual: conv1, bn1, conv2, bn2, then the 1x1 shortcut conv (conv3) last.
* DenseNet conv block: bn, relu, conv.

Every model is an ``nn.Sequential`` of named top-level stages;
``stage_outputs(model, x)`` returns the output after each stage and
``STAGES[name]`` lists the stage names.

``MODELS[name] = (builder, input_shape, expected_params, expected_gflops)``;
the figures are typed in from REFERENCE.md (independent measurements), with
``input_shape`` being (C, H, W) for one image.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 10
IN_CHANNELS = 1


def _seq(*named: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(named))


# --------------------------------------------------------------------------
# AlexNet (D2L 7.1)
# --------------------------------------------------------------------------
def alexnet() -> nn.Sequential:
    return _seq(
        ("b1", nn.Sequential(
            nn.Conv2d(IN_CHANNELS, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2))),
        ("b2", nn.Sequential(
            nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2))),
        ("b3", nn.Sequential(
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2))),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Sequential(nn.Linear(256 * 5 * 5, 4096), nn.ReLU(), nn.Dropout(0.5))),
        ("fc2", nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5))),
        ("fc3", nn.Linear(4096, NUM_CLASSES)),
    )


# --------------------------------------------------------------------------
# VGG-11 (D2L 7.2)
# --------------------------------------------------------------------------
VGG11_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg11(ratio: int = 1) -> nn.Sequential:
    arch = [(n, c // ratio) for n, c in VGG11_ARCH]
    stages: list[tuple[str, nn.Module]] = []
    in_channels = IN_CHANNELS
    for i, (num_convs, out_channels) in enumerate(arch, start=1):
        stages.append((f"b{i}", vgg_block(num_convs, in_channels, out_channels)))
        in_channels = out_channels
    stages += [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Sequential(nn.Linear(in_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5))),
        ("fc2", nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5))),
        ("fc3", nn.Linear(4096, NUM_CLASSES)),
    ]
    return _seq(*stages)


# --------------------------------------------------------------------------
# NiN (D2L 7.3)
# --------------------------------------------------------------------------
def nin_block(in_channels: int, out_channels: int, kernel_size: int,
              strides: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def nin() -> nn.Sequential:
    return _seq(
        ("nin1", nin_block(IN_CHANNELS, 96, kernel_size=11, strides=4, padding=0)),
        ("pool1", nn.MaxPool2d(3, stride=2)),
        ("nin2", nin_block(96, 256, kernel_size=5, strides=1, padding=2)),
        ("pool2", nn.MaxPool2d(3, stride=2)),
        ("nin3", nin_block(256, 384, kernel_size=3, strides=1, padding=1)),
        ("pool3", nn.MaxPool2d(3, stride=2)),
        ("dropout", nn.Dropout(0.5)),
        ("nin4", nin_block(384, NUM_CLASSES, kernel_size=3, strides=1, padding=1)),
        ("avgpool", nn.AdaptiveAvgPool2d((1, 1))),
        ("flatten", nn.Flatten()),
    )


# --------------------------------------------------------------------------
# GoogLeNet (D2L 7.4)
# --------------------------------------------------------------------------
class Inception(nn.Module):
    """Four parallel paths concatenated on the channel axis.

    c1: 1x1; c2: (1x1, 3x3); c3: (1x1, 5x5); c4: 1x1 after 3x3 maxpool.
    """

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int],
                 c3: tuple[int, int], c4: int) -> None:
        super().__init__()
        # Path 1
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        # Path 2
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        # Path 3
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        # Path 4
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet() -> nn.Sequential:
    b1 = nn.Sequential(
        nn.Conv2d(IN_CHANNELS, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b3 = nn.Sequential(
        Inception(192, 64, (96, 128), (16, 32), 32),
        Inception(256, 128, (128, 192), (32, 96), 64),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b4 = nn.Sequential(
        Inception(480, 192, (96, 208), (16, 48), 64),
        Inception(512, 160, (112, 224), (24, 64), 64),
        Inception(512, 128, (128, 256), (24, 64), 64),
        Inception(512, 112, (144, 288), (32, 64), 64),
        Inception(528, 256, (160, 320), (32, 128), 128),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b5 = nn.Sequential(
        Inception(832, 256, (160, 320), (32, 128), 128),
        Inception(832, 384, (192, 384), (48, 128), 128),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return _seq(("b1", b1), ("b2", b2), ("b3", b3), ("b4", b4), ("b5", b5),
                ("fc", nn.Linear(1024, NUM_CLASSES)))


# --------------------------------------------------------------------------
# LeNet with batch normalization (D2L 8.5 / ch. 7 "BatchNorm")
# --------------------------------------------------------------------------
def lenet_bn() -> nn.Sequential:
    return _seq(
        ("b1", nn.Sequential(
            nn.Conv2d(IN_CHANNELS, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2))),
        ("b2", nn.Sequential(
            nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2))),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Sequential(nn.Linear(16 * 4 * 4, 120), nn.BatchNorm1d(120), nn.Sigmoid())),
        ("fc2", nn.Sequential(nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid())),
        ("fc3", nn.Linear(84, NUM_CLASSES)),
    )


# --------------------------------------------------------------------------
# ResNet-18 (D2L 7.6)
# --------------------------------------------------------------------------
class Residual(nn.Module):
    """conv3x3 bn relu conv3x3 bn (+ shortcut) relu.

    Registration order: conv1, bn1, conv2, bn2, then the optional 1x1
    shortcut conv (conv3, no bn) last.
    """

    def __init__(self, in_channels: int, num_channels: int,
                 use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, num_channels, kernel_size=3,
                               padding=1, stride=strides)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(num_channels)
        if use_1x1conv:
            self.conv3: nn.Module | None = nn.Conv2d(in_channels, num_channels,
                                                     kernel_size=1, stride=strides)
        else:
            self.conv3 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


def resnet_block(in_channels: int, num_channels: int, num_residuals: int,
                 first_block: bool = False) -> nn.Sequential:
    blk: list[nn.Module] = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(in_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return nn.Sequential(*blk)


def _b1_stem() -> nn.Sequential:
    """conv(64,7,2,3) bn relu maxpool(3,2,1): shared by ResNet and DenseNet."""
    return nn.Sequential(
        nn.Conv2d(IN_CHANNELS, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def resnet18() -> nn.Sequential:
    return _seq(
        ("b1", _b1_stem()),
        ("stage1", resnet_block(64, 64, 2, first_block=True)),
        ("stage2", resnet_block(64, 128, 2)),
        ("stage3", resnet_block(128, 256, 2)),
        ("stage4", resnet_block(256, 512, 2)),
        ("avgpool", nn.AdaptiveAvgPool2d((1, 1))),
        ("flatten", nn.Flatten()),
        ("linear", nn.Linear(512, NUM_CLASSES)),
    )


# ResNet-18 stage output shapes for one 1x224x224 image (REFERENCE.md).
RESNET18_STAGE_SHAPES_224: list[tuple[str, tuple[int, ...]]] = [
    ("b1", (1, 64, 56, 56)),
    ("stage1", (1, 64, 56, 56)),
    ("stage2", (1, 128, 28, 28)),
    ("stage3", (1, 256, 14, 14)),
    ("stage4", (1, 512, 7, 7)),
    ("avgpool", (1, 512, 1, 1)),
    ("flatten", (1, 512)),
    ("linear", (1, 10)),
]


# --------------------------------------------------------------------------
# DenseNet (D2L 7.7)
# --------------------------------------------------------------------------
def conv_block(in_channels: int, num_channels: int) -> nn.Sequential:
    """bn relu conv3x3 (registration order: bn, relu, conv)."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels), nn.ReLU(),
        nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    def __init__(self, num_convs: int, in_channels: int, num_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*[
            conv_block(in_channels + i * num_channels, num_channels)
            for i in range(num_convs)])
        self.out_channels = in_channels + num_convs * num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            y = blk(x)
            x = torch.cat((x, y), dim=1)
        return x


def transition_block(in_channels: int, num_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(in_channels), nn.ReLU(),
        nn.Conv2d(in_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


def densenet(growth_rate: int = 32,
             num_convs_in_dense_blocks: tuple[int, ...] = (4, 4, 4, 4)) -> nn.Sequential:
    stages: list[tuple[str, nn.Module]] = [("b1", _b1_stem())]
    num_channels = 64
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        block = DenseBlock(num_convs, num_channels, growth_rate)
        stages.append((f"dense{i + 1}", block))
        num_channels = block.out_channels
        if i != len(num_convs_in_dense_blocks) - 1:
            stages.append((f"transition{i + 1}",
                           transition_block(num_channels, num_channels // 2)))
            num_channels //= 2
    stages += [
        ("bn", nn.BatchNorm2d(num_channels)),
        ("relu", nn.ReLU()),
        ("avgpool", nn.AdaptiveAvgPool2d((1, 1))),
        ("flatten", nn.Flatten()),
        ("linear", nn.Linear(num_channels, NUM_CLASSES)),
    ]
    return _seq(*stages)


# DenseNet channel counts after b1 and after every dense/transition block.
DENSENET_CHANNELS = [64, 192, 96, 224, 112, 240, 120, 248]


# --------------------------------------------------------------------------
# Stages and the table of expected figures
# --------------------------------------------------------------------------
def _vgg11_r4() -> nn.Sequential:
    return vgg11(ratio=4)


MODELS: dict[str, tuple] = {
    # name: (builder, input_shape (C,H,W), expected_params, expected_gflops)
    "alexnet": (alexnet, (1, 224, 224), 46_764_746, 1.876),
    "vgg11": (vgg11, (1, 224, 224), 128_806_154, 15.094),
    "vgg11_ratio4": (_vgg11_r4, (1, 224, 224), 43_093_322, 1.024),
    "nin": (nin, (1, 224, 224), 1_992_166, 1.525),
    "googlenet": (googlenet, (1, 96, 96), 5_977_530, 0.552),
    "lenet_bn": (lenet_bn, (1, 28, 28), 44_878, 0.001),
    "resnet18": (resnet18, (1, 96, 96), 11_178_378, 0.637),
    "densenet": (densenet, (1, 96, 96), 758_226, 0.258),
}


STAGES: dict[str, list[str]] = {
    "alexnet": ["b1", "b2", "b3", "flatten", "fc1", "fc2", "fc3"],
    "vgg11": ["b1", "b2", "b3", "b4", "b5", "flatten", "fc1", "fc2", "fc3"],
    "vgg11_ratio4": ["b1", "b2", "b3", "b4", "b5", "flatten", "fc1", "fc2", "fc3"],
    "nin": ["nin1", "pool1", "nin2", "pool2", "nin3", "pool3", "dropout", "nin4",
            "avgpool", "flatten"],
    "googlenet": ["b1", "b2", "b3", "b4", "b5", "fc"],
    "lenet_bn": ["b1", "b2", "flatten", "fc1", "fc2", "fc3"],
    "resnet18": ["b1", "stage1", "stage2", "stage3", "stage4", "avgpool", "flatten",
                 "linear"],
    "densenet": ["b1", "dense1", "transition1", "dense2", "transition2", "dense3",
                 "transition3", "dense4", "bn", "relu", "avgpool", "flatten", "linear"],
}


def stage_outputs(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Output after every top-level stage (the named children, in order)."""
    outs = []
    for stage in model.children():
        x = stage(x)
        outs.append(x)
    return outs


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs (multiply-add = 2) counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def randomize_norms(model: nn.Module) -> None:
    """Give every batchnorm non-trivial running statistics and affine parameters,
    so that eval mode is not close to the identity and a parity test can see it."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                if module.affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0.0, 0.2)
