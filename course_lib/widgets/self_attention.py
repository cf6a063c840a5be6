"""Notebook 03's explorer: self-attention over hand-built word vectors (an illustration, not a trained model)."""

from __future__ import annotations

import math
import re
import zlib
from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..plots import attention_bar, attention_heatmap
from .core import Explorer, _control



FEATURES: tuple[str, ...] = ("noun", "animate", "place", "verb", "pronoun", "describes", "tired", "wide", "grammar")
"""The named dimensions of the hand-built word vectors."""

WORD_FEATURES: dict[str, dict[str, float]] = {
    "the": {"grammar": 1.0}, "a": {"grammar": 1.0}, "on": {"grammar": 1.0}, "because": {"grammar": 1.0},
    "was": {"grammar": 1.0}, "too": {"grammar": 1.0}, "didn't": {"grammar": 1.0}, "very": {"grammar": 1.0},
    "cat": {"noun": 1.0, "animate": 1.0}, "dog": {"noun": 1.0, "animate": 1.0},
    "animal": {"noun": 1.0, "animate": 1.0},
    "mat": {"noun": 1.0, "place": 1.0}, "street": {"noun": 1.0, "place": 1.0},
    "road": {"noun": 1.0, "place": 1.0}, "river": {"noun": 1.0, "place": 1.0},
    "sat": {"verb": 1.0}, "cross": {"verb": 1.0}, "crossed": {"verb": 1.0}, "chased": {"verb": 1.0},
    "it": {"pronoun": 1.0},
    "tired": {"describes": 1.0, "tired": 1.0}, "sleepy": {"describes": 1.0, "tired": 1.0},
    "wide": {"describes": 1.0, "wide": 1.0}, "long": {"describes": 1.0, "wide": 1.0},
}
"""Hand-built word vectors over :data:`FEATURES` (lower-case words). Words not
listed get a small pseudo-random vector seeded by the word itself: they take
part in attention but carry no designed meaning."""

DEFAULT_SENTENCES: dict[str, list[str]] = {
    "The cat sat on the mat": ["The", "cat", "sat", "on", "the", "mat"],
    "... because it was too tired": ["The", "animal", "didn't", "cross", "the", "street", "because", "it",
                                     "was", "too", "tired"],
    "... because it was too wide": ["The", "animal", "didn't", "cross", "the", "street", "because", "it",
                                    "was", "too", "wide"],
}

# What each feature makes a word LOOK FOR (query) in the attention layer that
# the explorer draws; keys OFFER the features noun, animate, place, verb.
_LOOKS_FOR = {"pronoun": "noun", "verb": "noun", "noun": "verb", "tired": "animate", "wide": "place"}
_OFFERS = ("noun", "animate", "place", "verb")
_STRENGTH = 2.0  # size of the projection entries: sets how sharp the weights are at temperature 1
_CONTEXT_STRENGTH = 4.0  # the first (context) layer is made nearly one-hot
_UNKNOWN_SCALE = 0.25


def tokenize(sentence: str) -> list[str]:
    """Split a sentence into words, dropping punctuation but keeping apostrophes ("didn't")."""
    if not isinstance(sentence, str):
        raise TypeError(f"sentence must be a str, got {type(sentence).__name__}")
    return re.findall(r"[A-Za-z0-9']+", sentence)


def _as_tokens(sentence_tokens) -> list[str]:
    tokens = tokenize(sentence_tokens) if isinstance(sentence_tokens, str) else [str(t) for t in sentence_tokens]
    if not tokens:
        raise ValueError("the sentence has no words")
    return tokens


def word_vectors(sentence_tokens) -> torch.Tensor:
    """Hand-built word vectors: tokens (L words, or a sentence string) -> float32 (L, len(FEATURES)).

    Words of :data:`WORD_FEATURES` (case-insensitive) get their listed
    features; any other word a deterministic N(0, 0.25^2) vector seeded by the
    CRC-32 of the lower-cased word.
    """
    tokens = _as_tokens(sentence_tokens)
    rows = []
    for token in tokens:
        word = token.lower()
        if word in WORD_FEATURES:
            rows.append(torch.tensor([WORD_FEATURES[word].get(f, 0.0) for f in FEATURES]))
        else:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode("utf-8")))
            rows.append(_UNKNOWN_SCALE * torch.randn(len(FEATURES), generator=g))
    return torch.stack(rows).float()  # (L, F)


def _feature_matrix(pairs: Mapping[str, str] | Sequence[tuple[str, str]]) -> torch.Tensor:
    """(F, F) matrix W applied as x @ W, with W[from, to] = 1 for each (from, to) pair."""
    W = torch.zeros(len(FEATURES), len(FEATURES))
    for source, target in (pairs.items() if isinstance(pairs, Mapping) else pairs):
        W[FEATURES.index(source), FEATURES.index(target)] = 1.0
    return W


def _contextualize(x: torch.Tensor) -> torch.Tensor:
    """The first, hand-built attention layer, with a residual: x (L, F) -> (L, F).

    A pronoun's query looks for a describing word ("tired", "wide"), whose key
    offers "describes"; the values carry only the tired/wide features. So "it"
    picks up "tired" or "wide" from its sentence. This is the context a trained
    model would have to gather in its earlier layers.
    """
    d = x.shape[-1]
    q = _CONTEXT_STRENGTH * x @ _feature_matrix({"pronoun": "describes"})  # (L, F)
    k = _CONTEXT_STRENGTH * x @ _feature_matrix({"describes": "describes"})  # (L, F)
    v = x @ _feature_matrix({"tired": "tired", "wide": "wide"})  # (L, F)
    weights = torch.softmax(q @ k.T / math.sqrt(d), dim=-1)  # (L, L)
    return x + weights @ v


def query_key_value(sentence_tokens, strength: float = _STRENGTH) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hand-built queries, keys and values of the explorer's attention layer.

    tokens (L words) -> Q, K, V, each float32 (L, len(FEATURES)), in the
    feature space of :data:`FEATURES`:

    * a query says what the word LOOKS FOR: a pronoun or a verb looks for a
      noun, a noun for a verb, "tired" for something animate, "wide" for a
      place; a grammar word looks for nothing (its query is zero);
    * a key says what the word OFFERS: its noun / animate / place / verb features;
    * a value is the word's (contextualised) feature vector itself.

    Before this layer, :func:`_contextualize` lets "it" pick up "tired" or
    "wide" from its sentence, so its query asks for "a noun that is animate"
    or "a noun that is a place". ``strength`` scales the projections.
    """
    h = _contextualize(word_vectors(sentence_tokens))  # (L, F)
    W_q = strength * _feature_matrix(_LOOKS_FOR)  # (F, F)
    W_k = strength * _feature_matrix({f: f for f in _OFFERS})  # (F, F)
    return h @ W_q, h @ W_k, h  # (L, F) each


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0 \
            or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def self_attention_weights(sentence_tokens, temperature: float = 1.0, strength: float = _STRENGTH) -> torch.Tensor:
    """All attention weights of the hand-built layer: tokens (L) -> (L, L), rows sum to 1.

    weights = softmax(Q K^T / (sqrt(d_k) * temperature)) with Q, K from
    :func:`query_key_value` (d_k = len(FEATURES)). temperature 1 is ordinary
    scaled dot-product attention; below 1 the softmax gets sharper, above 1
    flatter, towards uniform.
    """
    temperature = _check_temperature(temperature)
    Q, K, _ = query_key_value(sentence_tokens, strength)
    scores = Q @ K.T / (math.sqrt(Q.shape[-1]) * temperature)  # (L, L)
    return torch.softmax(scores, dim=-1)


def self_attention_row(sentence_tokens, query_index: int, temperature: float = 1.0,
                       strength: float = _STRENGTH) -> torch.Tensor:
    """The attention weights of one query word over the sentence -> (L,), sums to 1.

    tokens (L words or a sentence string); query_index in [0, L) (negative
    counts from the end). See :func:`self_attention_weights`.
    """
    tokens = _as_tokens(sentence_tokens)
    if isinstance(query_index, bool) or not isinstance(query_index, (int, np.integer)):
        raise TypeError(f"query_index must be an int, got {type(query_index).__name__}")
    if not -len(tokens) <= query_index < len(tokens):
        raise IndexError(f"query_index {query_index} is out of range for a sentence of {len(tokens)} words")
    return self_attention_weights(tokens, temperature, strength)[query_index]


def self_attention_figure(sentence_tokens, query_index: int, temperature: float = 1.0,
                          weights: torch.Tensor | None = None) -> Figure:
    """Heatmap of every query's weights (the chosen query's row framed) and a bar
    chart of the chosen row -> Figure. ``weights`` (L, L) may be given to skip
    recomputing them."""
    tokens = _as_tokens(sentence_tokens)
    if weights is None:
        weights = self_attention_weights(tokens, temperature)
    i = query_index % len(tokens)
    row = weights[i]
    L = len(tokens)
    fig = Figure(figsize=(min(3.0 + 0.75 * L, 13.0), min(2.2 + 0.3 * L, 6.0)), layout="constrained")
    ax_map, ax_bar = fig.subplots(1, 2, width_ratios=[1.0, 1.0])
    # the colour scale ends at this map's largest weight: with a fixed 0..1 scale most cells of a flat
    # softmax were nearly black
    attention_heatmap(weights, x_labels=tokens, y_labels=tokens, ax=ax_map, vmin=0.0,
                      vmax=max(float(weights.max()), 1e-6), title="every word's weights")
    ax_map.add_patch(Rectangle((-0.5, i - 0.5), L, 1.0, fill=False, edgecolor="tab:orange", linewidth=2.5))
    attention_bar(row, labels=tokens, ax=ax_bar,
                  title=f"query {tokens[i]!r}: top key {tokens[int(row.argmax())]!r} ({float(row.max()):.2f})")
    ax_bar.set_ylim(0, 1.0)
    fig.suptitle(f"hand-built self-attention, temperature {temperature:.2f}")
    return fig


def _query_options(tokens: Sequence[str]) -> list[tuple[str, int]]:
    return [(f"{i}: {t}", i) for i, t in enumerate(tokens)]


def _default_query(tokens: Sequence[str], previous: str | None = None) -> int:
    lowered = [t.lower() for t in tokens]
    for word in (previous, "it", "cat"):
        if word is not None and word.lower() in lowered:
            return lowered.index(word.lower())
    return min(1, len(tokens) - 1)


def self_attention_explorer(sentences: dict[str, list[str]] | None = None, sentence: str | None = None,
                            query: int | str | None = None, temperature: float = 1.0) -> Explorer:
    """Pick a sentence and a query word; see its attention row as a heatmap and
    bar chart; move the temperature to sharpen or flatten the softmax.

    sentences: {name: tokens (list of words, or a string to split)}; defaults
    to :data:`DEFAULT_SENTENCES`. sentence: the name shown first; query: the
    word (or its index) shown first, by default "it" where present. The
    weights come from :func:`self_attention_weights`: hand-built vectors, an
    illustration in which "it" finds "animal" (tired) or "street" (wide) BY
    CONSTRUCTION, not a trained model. ``last_result`` holds ``tokens``,
    ``weights`` (L, L), ``row`` (L,), ``query_index``, ``top`` (the most
    attended word) and ``temperature``.
    """
    sentences = DEFAULT_SENTENCES if sentences is None else sentences
    if not isinstance(sentences, Mapping) or not sentences:
        raise ValueError("sentences must be a non-empty dict name -> list of words")
    table = {str(name): _as_tokens(tokens) for name, tokens in sentences.items()}
    names = list(table)
    if sentence is None:
        sentence = names[1] if len(names) > 1 else names[0]
    if sentence not in table:
        raise KeyError(f"sentence {sentence!r} is not one of {names}")
    tokens = table[sentence]
    if query is None or isinstance(query, str):
        query_index = _default_query(tokens, query)
    else:
        query_index = int(query) % len(tokens)
    temperature = _check_temperature(temperature)

    layout = {"width": "auto"}
    style = {"description_width": "initial"}  # the default width cut "temperature" to "temperat..."
    controls = {
        "sentence": _control("Dropdown", options=names, value=sentence, description="sentence",
                             layout=layout, style=style),
        "query_index": _control("Dropdown", options=_query_options(tokens), value=query_index,
                                description="query word", style=style),
        "temperature": _control("FloatLogSlider", value=temperature, base=10, min=-1, max=1, step=0.05,
                                description="temperature", continuous_update=False, readout_format=".2f",
                                style=style),
    }

    def compute(sentence, query_index, temperature):
        words = table[sentence]
        weights = self_attention_weights(words, temperature)
        row = weights[query_index]
        return {"tokens": words, "weights": weights, "row": row, "query_index": query_index,
                "top": words[int(row.argmax())], "temperature": temperature}

    def draw(result, **values):
        return self_attention_figure(result["tokens"], result["query_index"], result["temperature"],
                                     weights=result["weights"])

    def on_sentence(change):
        words = table[change["new"]]
        old_words = table.get(change["old"], [])
        old_index = controls["query_index"].value
        previous = old_words[old_index] if 0 <= old_index < len(old_words) else None
        controls["query_index"].options = _query_options(words)
        controls["query_index"].value = _default_query(words, previous)

    return Explorer(controls, compute, draw, title="Self-attention explorer (hand-built vectors)",
                    links={"sentence": on_sentence})


