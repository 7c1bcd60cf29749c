"""The embedded dataset: 28x28 digit images drawn from a built-in 5x7 bitmap font.

Nothing is downloaded or shipped but the font below: every image is rendered from its glyph with
a random affine distortion (rotation, anisotropic scale, shear, shift), a random stroke width, a
random ink level, a faint distractor glyph and pixel noise, all drawn from one seeded
``torch.Generator`` on the CPU, so the same ``(n, seed)`` gives the same images on every run.

Like MNIST, the images are bright strokes on a dark background, but every pixel carries
noise: an initialization that makes every weight positive (``U(0, 1)``) blows the activations up
from the first layer on, while variance-preserving schemes train within two epochs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["FONT", "render_digits"]

FONT: dict[int, tuple[str, ...]] = {
    0: (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    1: ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    2: (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    3: ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    4: ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    5: ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    6: ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    7: ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    8: (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    9: (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
}
"""The glyphs of the digits 0-9, 7 rows of 5 cells (``#`` ink, ``.`` paper)."""

SIZE = 28
_CELL = 3  # pixels per font cell in the template: 21 x 15 glyphs on a 28 x 28 canvas


def _templates() -> torch.Tensor:
    """The 10 glyphs as soft-edged ``(10, 1, 28, 28)`` images in [0, 1]."""
    cells = torch.tensor([[[c == "#" for c in row] for row in FONT[d]] for d in range(10)],
                         dtype=torch.float32).unsqueeze(1)
    big = F.interpolate(cells, scale_factor=_CELL, mode="nearest")
    rows, cols = big.shape[-2:]
    top, left = (SIZE - rows) // 2, (SIZE - cols) // 2
    canvas = F.pad(big, (left, SIZE - cols - left, top, SIZE - rows - top))
    return F.avg_pool2d(canvas, 3, stride=1, padding=1, count_include_pad=False)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _affine_grids(n: int, generator: torch.Generator, shift: float,
                  scale: tuple[float, float]) -> torch.Tensor:
    """Sampling grids of random affine maps (output pixel -> template position)."""
    angle = _uniform(n, -0.3, 0.3, generator)
    sx = _uniform(n, *scale, generator)
    sy = _uniform(n, *scale, generator)
    shear = _uniform(n, -0.3, 0.3, generator)
    tx = _uniform(n, -shift, shift, generator)
    ty = _uniform(n, -shift, shift, generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([cos / sx, (-sin + shear * cos) / sx, tx], dim=1),
        torch.stack([sin / sy, (cos + shear * sin) / sy, ty], dim=1),
    ], dim=1)
    return F.affine_grid(theta, [n, 1, SIZE, SIZE], align_corners=False)


def _warp(glyphs: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(glyphs, grids, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def render_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` labelled digit images.

    Each image: the glyph of a uniformly drawn digit, warped by a random affine map (rotation
    +-0.3 rad, scale 0.8-1.2 per axis, shear +-0.3, shift +-15% of the width); stroke width from
    a random threshold of the soft glyph; ink level in [0.6, 1]; a distractor glyph at 40-70%
    scale, pushed towards a border, with ink in [0, 0.5]; Gaussian pixel noise with std in
    [0.05, 0.25]; clipped to [0, 1].

    Args:
        n: Number of images.
        seed: Seed of the generator that draws everything.

    Returns:
        ``(images, labels)``: float32 ``(n, 1, 28, 28)`` in [0, 1] and int64 ``(n,)``.
    """
    generator = torch.Generator().manual_seed(seed)
    templates = _templates()
    labels = torch.randint(0, 10, (n,), generator=generator)
    ink = _warp(templates[labels], _affine_grids(n, generator, 0.15, (0.8, 1.2)))
    threshold = _uniform(n, 0.1, 0.5, generator).view(n, 1, 1, 1)
    strokes = ((ink - threshold) / 0.2).clamp(0.0, 1.0)
    images = strokes * _uniform(n, 0.6, 1.0, generator).view(n, 1, 1, 1)
    distractors = torch.randint(0, 10, (n,), generator=generator)
    side = torch.randint(0, 4, (n,), generator=generator).float() * (math.pi / 2)
    grids = _affine_grids(n, generator, 0.1, (1.5, 2.5))
    grids = grids + 0.9 * torch.stack([torch.cos(side), torch.sin(side)], 1).view(n, 1, 1, 2)
    clutter = _warp(templates[distractors], grids) * _uniform(n, 0.0, 0.5, generator).view(
        n, 1, 1, 1)
    noise = torch.randn(images.shape, generator=generator) * _uniform(
        n, 0.05, 0.25, generator).view(n, 1, 1, 1)
    return (images + clutter + noise).clamp(0.0, 1.0), labels
