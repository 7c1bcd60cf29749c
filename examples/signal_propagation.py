"""Signal propagation at initialization: the figures of docs/diagnostics.md.

Run from the repository root (needs matplotlib, the ``plot`` extra):

    python examples/signal_propagation.py [output_dir]    # default: docs/img

It writes three PNG files and prints the numbers the docs quote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

import torchinit as ti
from torchinit.datadep import lsuv
from torchinit.diagnostics import inspect


def mlp(depth: int, width: int, activation: type[nn.Module]) -> nn.Sequential:
    """``depth`` Linear layers with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(width, width))
        if i < depth - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


def convnet(depth: int = 20, channels: int = 16) -> nn.Sequential:
    """``depth`` 3x3 conv layers with ReLU and no normalization, then a linear classifier."""
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * 8 * 8, 10))


def weights_and_zero_biases(weight: ti.Initializer) -> ti.Plan:
    return ti.Plan([ti.Rule(role="weight", init=weight), ti.Rule(role="bias", init=ti.Zeros())])


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)

    x = torch.randn(512, 256, generator=generator)
    reports = []
    for label, weight in (("Xavier/Glorot normal", ti.XavierNormal()),
                          ("Kaiming/He normal (relu)", ti.KaimingNormal(nonlinearity="relu"))):
        model = mlp(30, 256, nn.ReLU)
        manifest = ti.apply(model, weights_and_zero_biases(weight), seed=0)
        reports.append(inspect(model, x, manifest=manifest, label=label))
        print(f"30-layer ReLU MLP, {label}: last/first activation std"
              f" {reports[-1].activation_ratio():.3g}, warnings:"
              f" {[w.kind for w in reports[-1].warnings]}")
    reports[0].plot(out / "relu_mlp_xavier_vs_kaiming.png", reports[1], only=["Linear"],
                    title="30-layer ReLU MLP, width 256: the Linear layers")

    x = torch.randn(256, 256, generator=generator)
    reports = []
    for label, weight in (("N(0, 1)", ti.Normal(0.0, 1.0)),
                          ("orthogonal, gain 5/3", ti.Orthogonal(ti.calculate_gain("tanh")))):
        model = mlp(50, 256, nn.Tanh)
        manifest = ti.apply(model, weights_and_zero_biases(weight), seed=0)
        reports.append(inspect(model, x, manifest=manifest, label=label))
        saturated = max(s.saturated_fraction or 0.0 for s in reports[-1].layers)
        print(f"50-layer tanh MLP, {label}: most saturated layer {saturated:.1%}, warnings:"
              f" {sorted({w.kind for w in reports[-1].warnings})}")
    reports[0].plot(out / "tanh_mlp_normal_vs_orthogonal.png", reports[1], only=["Tanh"],
                    title="50-layer tanh MLP, width 256: the tanh outputs")

    x = torch.randn(64, 3, 8, 8, generator=generator)
    model = convnet()
    ti.apply(model, ti.Plan([ti.Rule(init={"factory": "torch_default"})]), seed=0)
    before = inspect(model, x, label="torch default init")
    manifest = lsuv(model, x)
    after = inspect(model, x, manifest=manifest, label="LSUV")
    print(f"20-layer conv net: last/first activation std {before.activation_ratio():.3g} with"
          f" torch's default init, {after.activation_ratio():.3g} after LSUV")
    before.plot(out / "convnet_lsuv.png", after, only=["Conv2d", "Linear"],
                title="20-layer conv net without normalization: the conv and linear layers")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img"))
