"""Notebook 07's explorer: a language model writes a continuation, and the distribution it drew each character from."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..gpt.sampling import generate, sampling_probs
from .core import Explorer, _control

__all__ = ["show_char", "sample_steps", "sampler_figure", "sampler_explorer"]


def show_char(c: str) -> str:
    """A character as it can be read in a plot: space, newline and tab made visible."""
    return {" ": "␣", "\n": "⏎", "\t": "⇥"}.get(c, c)


def _encode_prompt(corpus, prompt: str) -> torch.Tensor:
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty str (the model needs at least one character to continue)")
    unknown = sorted({c for c in prompt if c not in corpus.vocab.stoi})
    if unknown:
        raise ValueError(f"the prompt has characters the corpus never uses: {unknown}; "
                         "use characters of the Python documentation")
    return corpus.encode(prompt)[None]  # (1, T0)


def sample_steps(model, corpus, prompt: str = "def ", length: int = 40, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0) -> dict:
    """Continue `prompt` by `length` characters and keep each step's distribution (pure but for the seed).

    -> {"prompt", "text" (the continuation), "chosen" (length,) ids,
    "probs" (length, V): the distribution each character was drawn from,
    after temperature and top-k (course_lib.gpt.sampling.sampling_probs)}.
    top_k None or 0 means no top-k.
    """
    top_k = None if not top_k else int(top_k)
    x = _encode_prompt(corpus, prompt).to(model.wte.weight.device)
    out, logits = generate(model, x, int(length), temperature=float(temperature), top_k=top_k,
                           generator=torch.Generator().manual_seed(int(seed)), return_logits=True)
    chosen = out[0, x.shape[1]:].cpu()  # (length,)
    probs = sampling_probs(logits[0].float().cpu(), float(temperature), top_k)  # (length, V)
    return {"prompt": prompt, "text": corpus.decode(chosen.tolist()), "chosen": chosen, "probs": probs}


def sampler_figure(result: dict, corpus, ranks: int = 6, max_steps: int = 40) -> Figure:
    """Each generated character (columns) and its `ranks` most likely candidates (rows, most likely
    on top), coloured by probability; the drawn one is framed -> Figure."""
    probs = result["probs"][:max_steps].numpy()  # (T, V)
    chosen = result["chosen"][:max_steps].tolist()
    T = probs.shape[0]
    order = np.argsort(-probs, axis=1)[:, :ranks]  # (T, ranks) candidate ids, most likely first
    p_top = np.take_along_axis(probs, order, axis=1).T  # (ranks, T)
    fig = Figure(figsize=(12, 1.6 + 0.42 * ranks), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(p_top, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="probability", shrink=0.9)
    for t in range(T):
        for r in range(ranks):
            if p_top[r, t] <= 0:
                continue
            char = show_char(corpus.vocab.itos[order[t, r]])
            ax.text(t, r, char, ha="center", va="center", fontsize=9,
                    color="white" if p_top[r, t] > 0.6 else "black")
        drawn = np.nonzero(order[t] == chosen[t])[0]
        if drawn.size:
            ax.add_patch(Rectangle((t - 0.5, drawn[0] - 0.5), 1, 1, fill=False, edgecolor="tab:orange", linewidth=2))
    ax.set_xticks(range(T), [show_char(corpus.vocab.itos[c]) for c in chosen], fontsize=9)
    ax.set_yticks(range(ranks), [f"#{r + 1}" for r in range(ranks)])
    ax.set_xlabel("generated character (step by step); orange frame = the one drawn")
    ax.set_ylabel("candidates by rank")
    shown = result["text"][:max_steps].replace("\n", "⏎")
    ax.set_title(f"{result['prompt']!r} → {shown!r}", fontsize=10, loc="left")
    return fig


def sampler_explorer(model, corpus, prompt: str = "def ", temperature: float = 1.0, top_k: int = 0,
                     length: int = 40, seed: int = 0) -> Explorer:
    """Sample from a language model with a prompt, temperature, top-k (0 = off) and length, and see,
    for every generated character, the distribution it was drawn from. ``last_result`` is
    ``sample_steps(...)``'s dict."""
    controls = {
        "temperature": _control("FloatSlider", value=temperature, min=0.0, max=2.0, step=0.1,
                                description="temperature", continuous_update=False),
        "top_k": _control("IntSlider", value=top_k, min=0, max=corpus.vocab_size, description="top-k (0 = off)",
                          continuous_update=False),
        "length": _control("IntSlider", value=length, min=1, max=80, description="length", continuous_update=False),
        "seed": _control("IntSlider", value=seed, min=0, max=20, description="seed", continuous_update=False),
        "prompt": _control("Text", value=prompt, description="prompt", continuous_update=False),
    }

    def compute(temperature, top_k, length, seed, prompt):
        return sample_steps(model, corpus, prompt, length, temperature, top_k, seed)

    def draw(result, **values):
        return sampler_figure(result, corpus)

    return Explorer(controls, compute, draw, title="Sampler: what the model could have written at each step")
