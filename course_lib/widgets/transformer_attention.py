"""Notebook 06's explorer: every attention map of a trained encoder-decoder Transformer, for one input.

Pick an example (e.g. a held-out date), the kind of attention (encoder
self-attention, decoder self-attention, cross-attention) and a layer: one
heatmap per head. The maps come from ``Transformer.attention_maps`` on the
model's own greedy output, so the decoder rows are the symbols it wrote.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..plots import attention_heatmap
from .core import Explorer, _control

__all__ = ["ATTENTION_KINDS", "transformer_attention_maps", "attention_kind_figure", "transformer_attention_explorer"]

#: kind -> (key in Transformer.attention_maps, rows, columns)
ATTENTION_KINDS = {
    "encoder self-attention": ("encoder", "source", "source"),
    "decoder self-attention": ("decoder", "output", "output"),
    "cross-attention": ("cross", "output", "source"),
}


def _visible(tokens: Sequence[str]) -> list[str]:
    return ["␣" if t == " " else str(t) for t in tokens]


@torch.no_grad()
def transformer_attention_maps(model, src_vocab, tgt_vocab, source: str, max_len: int) -> dict:
    """Greedy-decode one source string and return its attention maps (numpy) and token labels.

    -> {"source": S labels, "output": T labels (<sos> + written symbols),
    "prediction": the written string, "encoder"/"decoder"/"cross": arrays
    (layers, H, rows, columns)}.
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"source must be a non-empty string, got {source!r}")
    dev = next(model.parameters()).device
    src, lengths = src_vocab.encode_batch([source])  # (1, S), (1,)
    src, lengths = src.to(dev), lengths.to(dev)
    tokens = model.generate(src, lengths, max_len)[0].tolist()  # (max_len,)
    written = tokens[: tokens.index(model.eos_id)] if model.eos_id in tokens else tokens
    tgt_in = torch.tensor([[model.sos_id] + written], device=dev)  # (1, T)
    maps = model.attention_maps(src, lengths, tgt_in)
    symbols = [tgt_vocab.itos[i] for i in written]
    result = {"source": _visible(list(source)), "output": ["<sos>"] + symbols, "prediction": "".join(symbols)}
    for key, layers in maps.items():
        result[key] = np.stack([w[0].cpu().numpy() for w in layers])  # (layers, H, rows, cols)
    return result


def attention_kind_figure(maps: dict, kind: str, layer: int, title: str = "") -> Figure:
    """One heatmap per head of one layer of one kind of attention (see ATTENTION_KINDS) -> Figure."""
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"kind must be one of {list(ATTENTION_KINDS)}, got {kind!r}")
    key, rows, cols = ATTENTION_KINDS[kind]
    w = maps[key]  # (layers, H, rows, cols)
    if not 0 <= layer < w.shape[0]:
        raise IndexError(f"layer must be in 0..{w.shape[0] - 1}, got {layer}")
    H = w.shape[1]
    n_rows, n_cols = w.shape[2], w.shape[3]
    width = min(max(4.0, 0.22 * n_cols * H + 1.5 * H), 15.0)
    height = min(max(3.0, 0.25 * n_rows + 1.8), 7.0) if H <= 2 else min(max(3.0, 0.2 * n_rows * 2 + 2.5), 9.0)
    fig = Figure(figsize=(width, height), layout="constrained")
    ncols = H if n_cols <= 14 or H <= 2 else 2
    axes = np.atleast_1d(fig.subplots(int(np.ceil(H / ncols)), ncols)).ravel()
    for h in range(H):
        attention_heatmap(w[layer, h], x_labels=maps[cols], y_labels=maps[rows], ax=axes[h], vmin=0.0, vmax=1.0,
                          title=f"head {h}", colorbar=h == H - 1)
        axes[h].set_xlabel(f"{cols} (key)")
        axes[h].set_ylabel(f"{rows} (query)" if h % ncols == 0 else "")
    for ax in axes[H:]:
        ax.set_visible(False)
    fig.suptitle(title or f"{kind}, layer {layer}")
    return fig


def transformer_attention_explorer(model, src_vocab, tgt_vocab, sources: Sequence[str], max_len: int,
                                   example: int = 0, kind: str = "cross-attention", layer: int = 0) -> Explorer:
    """Pick a source (e.g. a held-out date), a kind of attention and a layer; see every head.

    sources: the strings offered in the dropdown. ``last_result`` holds the
    maps of the chosen source (see transformer_attention_maps) plus "kind",
    "layer" and "weights" (H, rows, columns), the maps drawn.
    """
    sources = [str(s) for s in sources]
    if not sources:
        raise ValueError("sources must hold at least one string to explore")
    if not 0 <= example < len(sources):
        raise IndexError(f"example must be in 0..{len(sources) - 1}, got {example}")
    num_layers = {"encoder": len(model.encoder), "decoder": len(model.decoder), "cross": len(model.decoder)}
    cache: dict[int, dict] = {}

    def maps_of(k: int) -> dict:
        if k not in cache:
            cache[k] = transformer_attention_maps(model, src_vocab, tgt_vocab, sources[k], max_len)
        return cache[k]

    controls = {
        "example": _control("Dropdown", options=[(s, k) for k, s in enumerate(sources)], value=example,
                            description="source", layout={"width": "auto"}),
        "kind": _control("ToggleButtons", options=list(ATTENTION_KINDS), value=kind, description="attention"),
        "layer": _control("IntSlider", value=layer, min=0, max=max(num_layers.values()) - 1, description="layer"),
    }

    def compute(example, kind, layer):
        maps = dict(maps_of(example))
        key = ATTENTION_KINDS[kind][0]
        layer = min(layer, num_layers[key] - 1)
        maps.update(kind=kind, layer=layer, weights=maps[key][layer])
        return maps

    def draw(result, **values):
        title = (f"{result['kind']}, layer {result['layer']}: {sources[values['example']]!r} -> "
                 f"{result['prediction']!r}")
        return attention_kind_figure(result, result["kind"], result["layer"], title=title)

    return Explorer(controls, compute, draw, title="Transformer attention explorer: every layer and head")
