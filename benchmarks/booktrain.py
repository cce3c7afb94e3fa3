"""The book's training loop (d2l `train_ch6`), the baseline of the end-to-end benchmark.

Written as *Dive into Deep Learning* writes it: the plain-PyTorch network
(tests/reference_models.py), Xavier-uniform init of conv and linear weights,
SGD without momentum, cross-entropy, float32, Fashion-MNIST through
torchvision's `Resize` + `ToTensor` per image in a `DataLoader` with 4
workers, the loss and accuracy of each batch accumulated on the side
(`float(...)` per batch, as `d2l.accuracy`), test accuracy after each epoch.

    python -m benchmarks.booktrain resnet18 --resize 96 --epochs 1 --limit-train 1536

The last line has the book's form (`loss …, train acc …, test acc …, N
examples/sec on DEVICE`); N counts the training pass's wall clock, data
loading included, as netspec train does. `--book-timer` reports instead the
book's own timer, which stops while the loop waits for data.

On a GPU (`--device cuda`) it is the same loop, each batch moved with
`.to(device)`, still float32 and NCHW: what the book runs on its GPU.
"""

from __future__ import annotations

import argparse
import sys
import time

from .common import ROOT, data_dir

RECIPES = {  # the book's: (resize, batch size, learning rate)
    "alexnet": (224, 128, 0.01), "vgg11_ratio4": (224, 128, 0.05), "nin": (224, 128, 0.1),
    "googlenet": (96, 128, 0.1), "lenet_bn": (28, 256, 1.0), "resnet18": (96, 256, 0.05),
    "densenet": (96, 256, 0.1),
}


def load_data_fashion_mnist(batch_size, resize, workers, limit_train=None, limit_test=None):
    """d2l.load_data_fashion_mnist, with an optional fixed subset (the first N images)."""
    import torchvision
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    trans = [transforms.ToTensor()]
    if resize and resize != 28:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    train = torchvision.datasets.FashionMNIST(root=data_dir(), train=True, transform=trans, download=False)
    test = torchvision.datasets.FashionMNIST(root=data_dir(), train=False, transform=trans, download=False)
    if limit_train:
        train = Subset(train, range(min(limit_train, len(train))))
    if limit_test:
        test = Subset(test, range(min(limit_test, len(test))))
    return (DataLoader(train, batch_size, shuffle=True, num_workers=workers),
            DataLoader(test, batch_size, shuffle=False, num_workers=workers))


def accuracy(y_hat, y):
    """d2l.accuracy: the number of correct predictions, as a Python float."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def evaluate_accuracy_gpu(net, data_iter, device):
    import torch

    net.eval()
    correct = count = 0.0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += accuracy(net(X), y)
            count += y.numel()
    return correct / count


def train_ch6(net, train_iter, test_iter, num_epochs, lr, device):
    """d2l.train_ch6 without the animator; returns (loss, train acc, test acc, wall s, book-timer s, n)."""
    import torch
    from torch import nn

    def init_weights(m):
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    net.apply(init_weights)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    wall = timer = 0.0
    for epoch in range(num_epochs):
        wall0, timer0 = wall, timer
        metric = [0.0, 0.0, 0.0]  # sum of loss, correct, examples
        net.train()
        start = time.perf_counter()
        for X, y in train_iter:
            t0 = time.perf_counter()
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric[0] += float(l) * X.shape[0]
                metric[1] += accuracy(y_hat, y)
                metric[2] += X.shape[0]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timer += time.perf_counter() - t0
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall += time.perf_counter() - start
        test_acc = evaluate_accuracy_gpu(net, test_iter, device)
        print(f"# epoch {epoch + 1}: wall {wall - wall0:.3f} s, book timer {timer - timer0:.3f} s, "
              f"{metric[2]:.0f} examples, {metric[2] / (wall - wall0):.1f} examples/sec, test acc {test_acc:.3f}",
              flush=True)
    n = metric[2] * num_epochs
    return metric[0] / metric[2], metric[1] / metric[2], test_acc, wall, timer, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.booktrain", description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=sorted(RECIPES))
    p.add_argument("--resize", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit-train", type=int)
    p.add_argument("--limit-test", type=int)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers (d2l: 4)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--book-timer", action="store_true", help="examples/sec by the book's timer (data waits left out)")
    args = p.parse_args(argv)

    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    import reference_models as rm

    resize, batch, lr = RECIPES[args.model]
    resize, batch, lr = args.resize or resize, args.batch_size or batch, args.lr or lr
    torch.manual_seed(args.seed)
    net = rm.MODELS[args.model][0]()
    train_iter, test_iter = load_data_fashion_mnist(batch, resize, args.workers, args.limit_train, args.limit_test)
    device = torch.device(args.device)
    loss, train_acc, test_acc, wall, timer, n = train_ch6(net, train_iter, test_iter, args.epochs, lr, device)
    rate = n / (timer if args.book_timer else wall)
    print(f"loss {loss:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}, "
          f"{rate:.1f} examples/sec on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
