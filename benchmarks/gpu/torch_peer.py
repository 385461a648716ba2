"""The PyTorch peer: the authors' style of training (TomerGalanti/LowRankBias), one model
at a time, ``torch.optim.SGD`` with weight decay, BatchNorm, on the same shapes.

Only imported when PyTorch is installed (the GPU machine's image has it; the project does
not depend on it). The models mirror ``lowrank.models``: the CIFAR ResNet-18 (3×3 stem,
no max-pool, stages of width w, 2w, 4w, 8w, global average pooling) and MLP-BN-L-H.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, width: int, channels: int = 3, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks, cin = [], width
        for stage in range(4):
            cout = width * 2**stage
            for b in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(cin, classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.classifier(x.mean(dim=(2, 3)))


def mlp_bn(depth: int, width: int, inputs: int, classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else width, width), nn.BatchNorm1d(width), nn.ReLU()]
    layers.append(nn.Linear(width if depth else inputs, classes))
    return nn.Sequential(*layers)


def build(family: str, overrides: dict[str, Any], shape: tuple[int, int, int]) -> nn.Module:
    h, w, c = shape
    if family == "resnet18":
        return ResNet18(overrides["width"], c)
    if family == "mlp_bn":
        return mlp_bn(overrides["depth"], overrides["width"], h * w * c)
    raise ValueError(f"torch_peer: no PyTorch model for {family!r}")


def throughput(
    family: str,
    overrides: dict[str, Any],
    shape: tuple[int, int, int],
    batch_size: int,
    steps: int,
    repeats: int,
    device: str,
) -> dict[str, Any]:
    """Member-samples/s of one model trained the authors' way: a warm-up pass of
    ``steps`` steps, then the median of ``repeats`` timed passes. The data are random
    tensors already on the device (the peer's best case: no data loader)."""
    torch.manual_seed(0)
    model = build(family, overrides, shape).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    h, w, c = shape
    x = torch.randn(steps, batch_size, c, h, w, device=device)
    y = torch.randint(0, 10, (steps, batch_size), device=device)

    def one_pass() -> float:
        sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
        sync()
        start = time.perf_counter()
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[i]), y[i])
            loss.backward()
            opt.step()
        sync()
        return time.perf_counter() - start

    one_pass()  # warm-up (cuDNN autotuning, allocator)
    times = sorted(one_pass() for _ in range(repeats))
    t = times[len(times) // 2]
    return {"member_samples_per_s": steps * batch_size / t, "pass_s": t, "steps": steps}
