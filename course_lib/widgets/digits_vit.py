"""Notebook 08's explorer: one test digit, its patches, the ViT's prediction and each layer's attention from the class token."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from ..vit import patchify
from .core import Explorer, _control

__all__ = ["class_token_attention", "digit_view", "digit_view_figure", "digits_vit_explorer"]


def class_token_attention(attentions: list[torch.Tensor], head: int | None = None) -> torch.Tensor:
    """How much the class token attends to each patch, per layer.

    attentions: the ViT's list of num_layers tensors (B, H, N+1, N+1), token 0
    the class token. head: one head, or None for the mean over heads.
    -> (B, num_layers, N): row 0 of each map without its first entry (the class
    token's attention to itself), so a row sums to 1 minus that entry.
    """
    stacked = torch.stack(attentions, dim=1)  # (B, layers, H, N+1, N+1)
    rows = stacked[:, :, :, 0, 1:]  # (B, layers, H, N): from the class token to the patches
    if head is None:
        return rows.mean(dim=2)  # (B, layers, N)
    if not 0 <= head < rows.shape[2]:
        raise ValueError(f"head must be in [0, {rows.shape[2]}) or None for the mean, got {head}")
    return rows[:, :, head]  # (B, layers, N)


def digit_view(model, images: torch.Tensor, labels: torch.Tensor, index: int, head: int | None = None) -> dict:
    """Everything the explorer shows about test digit `index` (pure: no drawing).

    model: a course_lib.vit.ViT; images (B, 1, H, W), labels (B,).
    -> {"image" (H, W), "patches" (N, p*p), "label", "prediction",
    "probabilities" (num_classes,), "attention" (num_layers, N) from the class
    token (mean over heads, or the chosen head), "grid" (rows, cols)}.
    """
    if not 0 <= index < len(images):
        raise ValueError(f"index must be in [0, {len(images)}), got {index}")
    p = model.config.patch_size
    image = images[index : index + 1]  # (1, 1, H, W)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, attentions = model(image, need_weights=True)
    finally:
        model.train(was_training)
    probabilities = logits.softmax(dim=-1)[0].cpu()  # (num_classes,)
    side = image.shape[-1] // p
    return {
        "image": image[0, 0].cpu(),
        "patches": patchify(image, p)[0].cpu(),  # (N, C*p*p)
        "label": int(labels[index]),
        "prediction": int(probabilities.argmax()),
        "probabilities": probabilities,
        "attention": class_token_attention([a.cpu() for a in attentions], head)[0],  # (layers, N)
        "grid": (image.shape[-2] // p, side),
        "patch_size": p,
    }


def digit_view_figure(view: dict, index: int | None = None, head: int | None = None) -> Figure:
    """The digit with its patch grid, one class-token attention map per layer, the predicted probabilities."""
    layers = view["attention"].shape[0]
    rows, cols = view["grid"]
    p = view["patch_size"]
    fig = Figure(figsize=(2.3 * (layers + 2), 2.9), layout="constrained")
    axes = fig.subplots(1, layers + 2, width_ratios=[1] * (layers + 1) + [1.3])
    ax = axes[0]
    ax.imshow(view["image"].numpy(), cmap="gray_r", vmin=0, vmax=1)
    for k in range(1, rows):
        ax.axhline(k * p - 0.5, color="tab:orange", linewidth=1)
    for k in range(1, cols):
        ax.axvline(k * p - 0.5, color="tab:orange", linewidth=1)
    for n in range(rows * cols):
        ax.text((n % cols) * p - 0.3, (n // cols) * p - 0.1, str(n), color="tab:blue", fontsize=7, va="top")
    ax.set_title(f"digit {view['label']}, its {rows * cols} patches", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    vmax = float(view["attention"].max())
    for layer in range(layers):
        ax = axes[layer + 1]
        image = ax.imshow(view["attention"][layer].reshape(rows, cols).numpy(), cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"layer {layer + 1}: [class] ->", fontsize=9)
        ax.set_xticks(range(cols))
        ax.set_yticks(range(rows))
        ax.set_xlabel("patch column", fontsize=8)
        if layer == 0:
            ax.set_ylabel("patch row", fontsize=8)
    fig.colorbar(image, ax=axes[1 : layers + 1], shrink=0.8, label="attention weight")
    ax = axes[-1]
    probs = view["probabilities"].numpy()
    colours = ["tab:green" if k == view["prediction"] else "tab:gray" for k in range(len(probs))]
    ax.bar(np.arange(len(probs)), probs, color=colours)
    ax.set_xticks(range(len(probs)))
    ax.set_ylim(0, 1)
    ax.set_xlabel("class", fontsize=8)
    ax.set_ylabel("probability", fontsize=8)
    verdict = "right" if view["prediction"] == view["label"] else "WRONG"
    ax.set_title(f"predicts {view['prediction']} ({verdict})", fontsize=9)
    heads = "mean over heads" if head is None else f"head {head}"
    fig.suptitle(f"test digit {'' if index is None else index}: attention from the class token ({heads})",
                 fontsize=10)
    return fig


def digits_vit_explorer(model, images: torch.Tensor, labels: torch.Tensor, index: int = 0) -> Explorer:
    """Pick a test digit (and a head, or their mean): its patches, the prediction, each layer's
    attention from the class token. ``last_result`` is :func:`digit_view`'s dict."""
    num_heads = model.config.num_heads
    controls = {
        "index": _control("IntSlider", value=index, min=0, max=len(images) - 1, description="test digit",
                          continuous_update=False),
        "head": _control("Dropdown", options=[("mean", None)] + [(f"head {h}", h) for h in range(num_heads)],
                         value=None, description="heads"),
    }

    def compute(index, head):
        return digit_view(model, images, labels, index, head)

    def draw(result, index, head):
        return digit_view_figure(result, index, head)

    return Explorer(controls, compute, draw, title="ViT digits explorer")
