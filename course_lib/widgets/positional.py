"""Notebook 05's explorer: sinusoidal encoding dimensions and the similarity between positions."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..positional import sinusoidal_encoding
from .core import Explorer, _control




def _default_dims(d_model: int) -> tuple[int, ...]:
    """Both dimensions of the fastest clock, and the sin dimension of two slower ones."""
    return tuple(sorted({0, 1, 2 * (d_model // 8), 2 * (d_model // 4)}))


def _check_dims(dims, d_model: int) -> tuple[int, ...]:
    dims = tuple(int(d) for d in dims)
    bad = [d for d in dims if not 0 <= d < d_model]
    if bad:
        raise ValueError(f"dims {bad} are out of range for d_model = {d_model} (0 .. {d_model - 1})")
    return dims


def position_similarity(max_len: int = 64, d_model: int = 32, base: float = 10000.0) -> torch.Tensor:
    """Dot products between sinusoidal position encodings: PE @ PE^T -> (max_len, max_len).

    PE = :func:`course_lib.positional.sinusoidal_encoding`. Each sin/cos pair
    contributes cos((p - q) * omega_i), so the entry depends only on the offset
    p - q and the diagonal equals d_model / 2, the largest value of each row.
    """
    pe = sinusoidal_encoding(max_len, d_model, base)  # (max_len, d_model)
    return pe @ pe.T  # (max_len, max_len)


def _wavelength(dim: int, d_model: int, base: float) -> float:
    """Period, in positions, of dimension ``dim``: 2 pi base^(2i/d_model) with i = dim // 2."""
    return 2 * math.pi * base ** (2 * (dim // 2) / d_model)


def _draw_dims(ax_table, ax_lines, pe: torch.Tensor, dims: Sequence[int], base: float) -> None:
    max_len, d_model = pe.shape
    image = ax_table.imshow(pe.numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax_table.figure.colorbar(image, ax=ax_table, shrink=0.8, label="value")
    for d in dims:
        ax_table.axvline(d, color="black", linewidth=0.8, linestyle=":")
    ax_table.set_xlabel("dimension (even = sin, odd = cos)")
    ax_table.set_ylabel("position")
    ax_table.set_title(f"sinusoidal encoding, {max_len} positions x {d_model} dims")
    positions = np.arange(max_len)
    for d in dims:
        kind = "sin" if d % 2 == 0 else "cos"
        ax_lines.plot(positions, pe[:, d].numpy(), label=f"dim {d} ({kind}, period {_wavelength(d, d_model, base):.3g})",
                      linewidth=1.5)
    ax_lines.set_xlabel("position")
    ax_lines.set_ylabel("encoding value")
    ax_lines.set_ylim(-1.15, 1.15 + 0.25 * math.ceil(len(dims) / 2))  # headroom for the legend
    ax_lines.set_title("chosen dimensions: clocks of different speeds")
    ax_lines.grid(alpha=0.3)
    if dims:
        ax_lines.legend(fontsize=7, loc="upper center", ncol=2, framealpha=0.9)


def _draw_similarity(ax_map, ax_row, similarity: torch.Tensor, position: int) -> None:
    max_len = similarity.shape[0]
    image = ax_map.imshow(similarity.numpy(), cmap="viridis", interpolation="nearest")
    ax_map.figure.colorbar(image, ax=ax_map, shrink=0.8, label="PE[p] . PE[q]")
    ax_map.axhline(position, color="tab:orange", linewidth=1.2)
    ax_map.set_xlabel("position q")
    ax_map.set_ylabel("position p")
    ax_map.set_title("dot product between positions")
    row = similarity[position].numpy()
    ax_row.plot(np.arange(max_len), row, color="tab:orange", linewidth=1.5)
    ax_row.axvline(position, color="gray", linewidth=0.8, linestyle="--")
    ax_row.set_xlabel("position q")
    ax_row.set_ylabel(f"PE[{position}] . PE[q]")
    ax_row.set_title(f"similarity of position {position} to every position")
    ax_row.grid(alpha=0.3)


def sinusoidal_dims_figure(max_len: int = 64, d_model: int = 32, dims: Sequence[int] | None = None,
                           base: float = 10000.0) -> Figure:
    """The whole sinusoidal table (positions x dimensions) and the chosen
    dimensions against position -> Figure. dims default to both dimensions of
    the fastest clock and the sin dimension of two slower ones."""
    pe = sinusoidal_encoding(max_len, d_model, base)
    dims = _default_dims(d_model) if dims is None else _check_dims(dims, d_model)
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    _draw_dims(*fig.subplots(1, 2), pe, dims, base)
    return fig


def position_similarity_figure(max_len: int = 64, d_model: int = 32, base: float = 10000.0,
                               position: int | None = None) -> Figure:
    """Heatmap of PE @ PE^T and one position's row of it -> Figure. position
    defaults to the middle one."""
    position = max_len // 2 if position is None else int(position)
    if not 0 <= position < max_len:
        raise ValueError(f"position must be in [0, {max_len}), got {position}")
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    _draw_similarity(*fig.subplots(1, 2), position_similarity(max_len, d_model, base), position)
    return fig


def positional_figure(max_len: int = 64, d_model: int = 32, base: float = 10000.0,
                      dims: Sequence[int] | None = None, position: int | None = None) -> Figure:
    """Both figures above in one (2 x 2 panels): what the explorer draws."""
    pe = sinusoidal_encoding(max_len, d_model, base)
    dims = _default_dims(d_model) if dims is None else _check_dims(dims, d_model)
    position = max_len // 2 if position is None else int(position)
    fig = Figure(figsize=(11, 7.2), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    _draw_dims(a, b, pe, dims, base)
    _draw_similarity(c, d, pe @ pe.T, position)
    return fig


def positional_explorer(max_len: int = 64, d_model: int = 32, base: float = 10000.0,
                        dims: Sequence[int] | None = None, position: int | None = None) -> Explorer:
    """Explore sinusoidal position encodings (Vaswani et al. 2017, sec. 3.5).

    Controls: max_len, d_model (even), base, the dimensions to plot, and a
    position whose similarity row (PE[position] . PE[q] for every q) is shown.
    ``last_result`` holds ``pe`` (max_len, d_model), ``similarity`` (max_len,
    max_len), ``row`` (max_len,), ``dims`` and ``position``. Works with no
    arguments.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even (sin/cos come in pairs), got {d_model}")
    dims = _default_dims(d_model) if dims is None else _check_dims(dims, d_model)
    position = max_len // 2 if position is None else int(position)
    if not 0 <= position < max_len:
        raise ValueError(f"position must be in [0, {max_len}), got {position}")
    controls = {
        "max_len": _control("IntSlider", value=max_len, min=8, max=max(512, max_len), step=8,
                            description="max_len", continuous_update=False),
        "d_model": _control("IntSlider", value=d_model, min=2, max=max(256, d_model), step=2,
                            description="d_model", continuous_update=False),
        "base": _control("FloatLogSlider", value=base, base=10, min=1, max=6, step=0.25,
                         description="base", continuous_update=False, readout_format=".3g"),
        "position": _control("IntSlider", value=position, min=0, max=max_len - 1, description="position",
                             continuous_update=False),
        "dims": _control("SelectMultiple", options=list(range(d_model)), value=dims, rows=5,
                         description="dims"),
    }

    def compute(max_len, d_model, base, position, dims):
        pe = sinusoidal_encoding(max_len, d_model, base)
        similarity = pe @ pe.T  # (max_len, max_len)
        return {"pe": pe, "similarity": similarity, "row": similarity[position], "dims": tuple(dims),
                "position": position}

    def draw(result, base, **values):
        fig = Figure(figsize=(11, 7.2), layout="constrained")
        (a, b), (c, d) = fig.subplots(2, 2)
        _draw_dims(a, b, result["pe"], result["dims"], base)
        _draw_similarity(c, d, result["similarity"], result["position"])
        return fig

    def on_d_model(change):
        new = change["new"]
        kept = tuple(d for d in controls["dims"].value if d < new) or _default_dims(new)
        controls["dims"].options = list(range(new))
        controls["dims"].value = kept

    def on_max_len(change):
        controls["position"].value = min(controls["position"].value, change["new"] - 1)
        controls["position"].max = change["new"] - 1

    return Explorer(controls, compute, draw, title="Sinusoidal positions explorer",
                    links={"d_model": on_d_model, "max_len": on_max_len})


