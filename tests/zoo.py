"""Small models covering every layer type of the layout registry, for plan and apply tests."""

from __future__ import annotations

import torch
from torch import nn

import torchinit as ti


class TiedLM(nn.Module):
    """A transformer LM whose output head shares the embedding matrix."""

    def __init__(self, vocab: int = 50, dim: int = 16, reverse_order: bool = False) -> None:
        super().__init__()
        # Optionally build the submodules in another order; registration order stays the same.
        parts = {}
        order = ["embed", "encoder", "norm", "head"]
        for name in reversed(order) if reverse_order else order:
            parts[name] = {
                "embed": lambda: nn.Embedding(vocab, dim, padding_idx=0),
                "encoder": lambda: nn.TransformerEncoder(
                    nn.TransformerEncoderLayer(dim, 2, 32, batch_first=True), 2,
                    enable_nested_tensor=False),
                "norm": lambda: nn.LayerNorm(dim),
                "head": lambda: nn.Linear(dim, vocab, bias=False),
            }[name]()
        for name in order:
            setattr(self, name, parts[name])
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.embed(tokens))))


class Everything(nn.Module):
    """One of each layer type the layout registry knows."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(6, 8), nn.PReLU(8), nn.Linear(8, 4), nn.BatchNorm1d(4))
        self.bilinear = nn.Bilinear(3, 4, 5)
        self.cnn = nn.Sequential(
            nn.Conv1d(2, 4, 3), nn.Conv2d(4, 8, 3, groups=2), nn.Conv2d(8, 8, 3, groups=8),
            nn.Conv3d(2, 4, 2), nn.BatchNorm2d(8), nn.GroupNorm(2, 8),
            nn.ConvTranspose1d(4, 2, 3), nn.ConvTranspose2d(8, 4, 3, groups=2),
            nn.ConvTranspose3d(4, 2, 2))
        self.rnn = nn.RNN(5, 6)
        self.lstm = nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3)
        self.gru = nn.GRU(5, 6)
        self.cells = nn.ModuleList([nn.RNNCell(4, 5), nn.LSTMCell(4, 5), nn.GRUCell(4, 5)])
        self.attn = nn.MultiheadAttention(8, 2, add_bias_kv=True)
        self.cross = nn.MultiheadAttention(8, 2, kdim=6, vdim=5)
        self.embed = nn.Embedding(20, 8, padding_idx=3)
        self.bag = nn.EmbeddingBag(20, 8)
        self.lm = TiedLM()


def full_plan(**options) -> ti.Plan:
    """A plan with a rule for every parameter of the zoo models (optional rules: not every
    model has every layer)."""
    rules = [
        ti.Rule(role="weight", init=ti.KaimingNormal(nonlinearity="relu")),
        ti.Rule(role="bias", init="zeros"),
        ti.Rule(role="scale", init="ones"),
        ti.Rule(role="prelu", init=ti.Constant(0.25)),
        ti.Rule(role="embedding", init=ti.Normal(0.0, 0.02)),
        ti.Rule(path="*head.weight", init=ti.Normal(0.0, 0.02)),  # tied to the embedding
        ti.Rule(role="recurrent", init=ti.Orthogonal()),
        ti.Rule(type="LSTM", name="bias_hh_*", block="f", init=ti.Constant(1.0)),
        ti.Rule(type="MultiheadAttention", name="bias_[kv]", init=ti.Normal(0.0, 0.1)),
    ]
    for rule in rules:
        rule.optional = True
    return ti.Plan(rules, **options)
