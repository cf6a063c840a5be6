"""Interactive explorers: thin ipywidgets layers over pure functions, with a static fallback.

Every explorer here is three things:

1. a PURE function (inputs -> numbers) that tests and notebooks call directly,
   e.g. :func:`self_attention_row` or :func:`position_similarity`;
2. a pure drawing function (inputs -> a new ``matplotlib.figure.Figure``),
   e.g. :func:`self_attention_figure` or :func:`sinusoidal_dims_figure`;
3. an :class:`Explorer`: a few controls whose ``.value`` feeds (1) and (2).

How an explorer shows up
------------------------
An :class:`Explorer` is displayed through ``_repr_mimebundle_``, which offers
the front end three renderings of the *same* current state:

* ``application/vnd.jupyter.widget-view+json``: the live widget (controls and
  a picture that follows them), for front ends with a widget manager
  (JupyterLab, Notebook 7, VS Code, Colab);
* ``image/png``: a static picture of the current state;
* ``text/plain``: one line naming the explorer and its values.

A front end picks the richest type it can render: JupyterLab shows the widget;
``nbconvert`` (HTML) skips the widget type when the notebook carries no saved
state for that widget (its ``WidgetsDataTypeFilter``) and so shows the PNG, as
do viewers that know nothing about widgets (GitHub's notebook view, a
terminal, nbval).
Executing a notebook with ``nbclient`` stores all three types in the cell's
output, so a notebook run headless (``make test``, CI) still contains the
figure. (Checked in ``tests/test_widgets.py`` by executing a small notebook
with nbclient and exporting it to HTML.) One limitation: a notebook saved with
outputs and reopened in JupyterLab without its kernel shows a widget
placeholder rather than the PNG, because JupyterLab prefers the widget type;
re-run the cell. The course commits notebooks without outputs, so a learner
always runs the cell first.

Inside the live widget the picture is a PNG too, written into an
``ipywidgets.Output`` by setting its ``outputs`` trait: no kernel message
routing is involved, so the same code path works headless in tests. Pictures
are drawn only once the explorer has been displayed; before that, changing a
control only recomputes the numbers (``explorer.last_result``), which keeps
tests fast. Figures are plain ``matplotlib.figure.Figure`` objects, not
registered with pyplot: nothing is left open, nothing is shown twice by the
inline backend, and the Agg backend is enough.

If ipywidgets is not installed, the controls are plain objects with a
``.value`` and the explorer displays as the static PNG only.

The explorers
-------------
* :func:`self_attention_explorer` (notebook 03): pick a sentence and a query
  word, see that word's attention row as a heatmap and a bar chart, and a
  temperature slider that sharpens or flattens the softmax. The word vectors
  and projections are BUILT BY HAND (see :data:`WORD_FEATURES`), so that what
  "it" attends to in "... because it was too tired / wide" is true by
  construction: an illustration of the mechanism, not a trained model.
* :func:`positional_explorer` (notebook 05): sinusoidal encoding dimensions and
  the dot-product similarity between positions.
* :func:`alignment_explorer` (notebook 02): a trained encoder-decoder's
  attention, one output step at a time (which source symbols step i read).
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import re
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .plots import attention_bar, attention_heatmap
from .positional import sinusoidal_encoding

try:  # the explorers still work (static pictures only) without ipywidgets
    import ipywidgets as _ipywidgets
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    _ipywidgets = None

__all__ = [
    "WIDGET_MIME",
    "Explorer",
    "FEATURES",
    "WORD_FEATURES",
    "DEFAULT_SENTENCES",
    "tokenize",
    "word_vectors",
    "query_key_value",
    "self_attention_weights",
    "self_attention_row",
    "self_attention_figure",
    "self_attention_explorer",
    "sinusoidal_dims_figure",
    "position_similarity",
    "position_similarity_figure",
    "positional_figure",
    "positional_explorer",
    "alignment_figure",
    "alignment_explorer",
]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# --------------------------------------------------------------------------- the generic core


class _StaticControl:
    """Stand-in for an ipywidgets control when ipywidgets is missing: it holds
    a ``.value`` (and whatever else it was given, e.g. ``options``) and calls
    its observers when the value changes, as a widget would."""

    def __init__(self, value=None, **kwargs):
        self.__dict__["_observers"] = []
        self.__dict__["value"] = value
        for name, v in kwargs.items():
            self.__dict__[name] = v

    def observe(self, handler, names="value"):
        self._observers.append(handler)

    def __setattr__(self, name, new):
        old = self.__dict__.get(name)
        self.__dict__[name] = new
        if name == "value" and new != old:
            for handler in list(self._observers):
                handler({"name": "value", "old": old, "new": new, "owner": self})


def _control(kind: str, **kwargs):
    """An ipywidgets control of class ``kind`` (e.g. "IntSlider"), or a
    :class:`_StaticControl` holding the same arguments when ipywidgets is missing."""
    if _ipywidgets is None:
        return _StaticControl(**kwargs)
    return getattr(_ipywidgets, kind)(**kwargs)


def _png_bytes(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class Explorer:
    """Controls -> a pure function -> a picture, displayable with or without widgets.

    controls: {name: control}; each control has a ``.value`` (ipywidgets
    sliders, dropdowns...). compute(**values) -> result (numbers; pure).
    draw(result, **values) -> a new matplotlib Figure (pure).
    links: {name: fn(change)} run when that control changes, before the
    update, to adjust dependent controls (all in one update).

    ``values`` is the dict of current control values; ``update()`` recomputes
    ``last_result`` (it runs by itself whenever a control's value changes);
    ``figure()`` draws the current state; ``png()`` renders it to PNG bytes.
    Displaying the explorer (``display(explorer)`` or as a cell's last
    expression) shows the live widget where a widget front end exists and the
    PNG elsewhere (see the module docstring). ``widget`` is the ipywidgets box
    (None without ipywidgets); ``output`` the Output area holding the picture.
    ``updates`` and ``renders`` count computations and drawn pictures;
    ``last_error`` holds the exception of the last failed update made by a
    control (shown in the output area instead of a picture), else None.
    """

    def __init__(self, controls: Mapping[str, Any], compute: Callable[..., Any],
                 draw: Callable[..., Figure], title: str = "", dpi: int = 80,
                 links: Mapping[str, Callable[[dict], None]] | None = None):
        if not controls:
            raise ValueError("an Explorer needs at least one control")
        self.controls = dict(controls)
        self.title = title
        self.dpi = dpi
        self._compute = compute
        self._draw = draw
        self.links = dict(links or {})
        unknown = set(self.links) - set(self.controls)
        if unknown:
            raise ValueError(f"links name controls that do not exist: {sorted(unknown)}")
        self._held = 0
        self._live = False  # becomes True once displayed: only then are pictures drawn on change
        self.last_result = None
        self.last_error: Exception | None = None
        self.last_png: bytes | None = None
        self._png_of_update = -1  # the update that last_png shows
        self.updates = 0
        self.renders = 0
        if _ipywidgets is not None:
            self.output = _ipywidgets.Output()
            header = [_ipywidgets.HTML(f"<b>{title}</b>")] if title else []
            self.widget = _ipywidgets.VBox(header + [_ipywidgets.HBox(list(self.controls.values()),
                                                                      layout=_ipywidgets.Layout(flex_flow="row wrap")),
                                                     self.output])
        else:
            self.output = None
            self.widget = None
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    # -- state

    @property
    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    @contextlib.contextmanager
    def hold(self):
        """Change several controls at once with a single update at the end."""
        self._held += 1
        try:
            yield self
        finally:
            self._held -= 1
        if not self._held:
            self._safe_update()

    def update(self):
        """Recompute ``last_result`` from the controls (and redraw if displayed) -> the result."""
        self.last_result = self._compute(**self.values)
        self.last_error = None
        self.updates += 1
        if self._live:
            self._refresh_output()
        return self.last_result

    def _on_change(self, change) -> None:
        if self._held:
            return
        name = next((n for n, c in self.controls.items() if c is change["owner"]), None)
        if name in self.links:
            # a dependent control (e.g. the query words of a new sentence) is
            # adjusted first; the hold makes it all one update
            try:
                with self.hold():
                    self.links[name](change)
            except Exception as err:
                self._show_error(err)
            return
        self._safe_update()

    def _safe_update(self) -> None:
        try:
            self.update()
        except Exception as err:  # a widget callback must not die silently in the kernel log
            self._show_error(err)

    def _show_error(self, err: Exception) -> None:
        self.last_error = err
        if self.output is not None:
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"text/plain": f"could not update: {type(err).__name__}: {err}"}},)

    # -- pictures

    def figure(self) -> Figure:
        """A new Figure of the current state (not registered with pyplot)."""
        return self._draw(self.last_result, **self.values)

    def png(self) -> bytes:
        """PNG bytes of the current state (also kept in ``last_png``; drawn
        again only after an update)."""
        if self.last_png is None or self._png_of_update != self.updates:
            self.last_png = _png_bytes(self.figure(), self.dpi)
            self._png_of_update = self.updates
            self.renders += 1
        return self.last_png

    def _refresh_output(self) -> None:
        data = base64.b64encode(self.png()).decode("ascii")
        if self.output is not None:
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"image/png": data, "text/plain": repr(self)}},)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"<{self.title or 'Explorer'}: {shown}>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        self._live = True
        self._refresh_output()  # the live widget and the static PNG show the same picture
        bundle = {"text/plain": repr(self), "image/png": base64.b64encode(self.last_png).decode("ascii")}
        if self.widget is not None:
            bundle[WIDGET_MIME] = self.widget._repr_mimebundle_()[WIDGET_MIME]
        if include is not None:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude is not None:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle


# --------------------------------------------------------------------------- self-attention, built by hand

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
    attention_heatmap(weights, x_labels=tokens, y_labels=tokens, ax=ax_map, vmin=0.0, vmax=1.0,
                      title="every word's weights")
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
    controls = {
        "sentence": _control("Dropdown", options=names, value=sentence, description="sentence",
                             layout=layout),
        "query_index": _control("Dropdown", options=_query_options(tokens), value=query_index,
                                description="query word"),
        "temperature": _control("FloatLogSlider", value=temperature, base=10, min=-1, max=1, step=0.05,
                                description="temperature", continuous_update=False, readout_format=".2f"),
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


# --------------------------------------------------------------------------- positional encodings


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


# --------------------------------------------------------------------------- encoder-decoder alignments


def _alignment_inputs(weights, src_tokens, out_tokens) -> tuple[np.ndarray, list[str], list[str]]:
    w = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"weights must be one (T, S) alignment (output steps x source positions), got shape "
                         f"{w.shape}")
    src, out = [str(t) for t in src_tokens], [str(t) for t in out_tokens]
    if w.shape != (len(out), len(src)):
        raise ValueError(f"weights has shape {w.shape} but there are {len(out)} output tokens and {len(src)} "
                         f"source tokens; expected ({len(out)}, {len(src)})")
    return w, src, out


def alignment_figure(weights, src_tokens, out_tokens, step: int | None = None, title: str = "") -> Figure:
    """An encoder-decoder alignment: heatmap of weights (T, S) with output tokens on
    the rows and source tokens on the columns; with ``step``, that decoder step's
    row is framed and drawn as a bar chart over the source -> Figure."""
    w, src, out = _alignment_inputs(weights, src_tokens, out_tokens)
    T, S = w.shape
    shown = [repr(t)[1:-1] if t.strip() == t and t else f"'{t}'" for t in src]  # make spaces visible
    if step is None:
        fig = Figure(figsize=(min(2.5 + 0.3 * S, 14.0), min(1.8 + 0.3 * T, 8.0)), layout="constrained")
        ax_map = fig.subplots()
    else:
        if not isinstance(step, (int, np.integer)) or not -T <= step < T:
            raise IndexError(f"step must be an int in 0..{T - 1} (an output position), got {step!r}")
        step = int(step) % T
        fig = Figure(figsize=(min(2.5 + 0.3 * S, 14.0), min(4.0 + 0.3 * T, 10.0)), layout="constrained")
        ax_map, ax_bar = fig.subplots(2, 1, height_ratios=[max(T, 2), 3])
    attention_heatmap(w, x_labels=shown, y_labels=out, ax=ax_map, vmin=0.0, vmax=1.0,
                      title=title or "alignment: which source symbols each output step read")
    ax_map.set_xlabel("source (encoder states)")
    ax_map.set_ylabel("output (decoder steps)")
    if step is not None:
        ax_map.add_patch(Rectangle((-0.5, step - 0.5), S, 1.0, fill=False, edgecolor="tab:orange", linewidth=2.5))
        row = w[step]
        top = int(row.argmax())
        attention_bar(row, labels=shown, ax=ax_bar,
                      title=f"step {step} writes {out[step]!r}: reads {src[top]!r} most ({row[top]:.2f})")
        ax_bar.set_ylim(0, 1.0)
        ax_bar.set_xlabel("source (encoder states)")
    return fig


def alignment_explorer(examples: Sequence[Mapping[str, Any]], example: int = 0, step: int = 0) -> Explorer:
    """Step through a decoder's output positions and see where each one looked.

    examples: a list of {"name": str, "weights": (T, S), "src_tokens": S labels,
    "out_tokens": T labels}, e.g. built from ``rnn.translate``. ``last_result``
    holds the chosen example's ``weights``, ``row`` (the chosen step's weights),
    ``top`` (the most attended source token) and ``step``.
    """
    if not isinstance(examples, Sequence) or isinstance(examples, (str, bytes)) or not examples:
        raise ValueError("examples must be a non-empty list of dicts with name, weights, src_tokens, out_tokens")
    table = []
    for k, ex in enumerate(examples):
        missing = {"name", "weights", "src_tokens", "out_tokens"} - set(ex)
        if missing:
            raise ValueError(f"examples[{k}] lacks {sorted(missing)}; expected name, weights, src_tokens, out_tokens")
        w, src, out = _alignment_inputs(ex["weights"], ex["src_tokens"], ex["out_tokens"])
        table.append((str(ex["name"]), w, src, out))
    if not 0 <= example < len(table):
        raise IndexError(f"example must be in 0..{len(table) - 1}, got {example}")
    steps = len(table[example][3])
    controls = {
        "example": _control("Dropdown", options=[(name, k) for k, (name, *_rest) in enumerate(table)],
                            value=example, description="example", layout={"width": "auto"}),
        "step": _control("IntSlider", value=min(max(step, 0), steps - 1), min=0, max=steps - 1,
                         description="output step", continuous_update=True),
    }

    def compute(example, step):
        name, w, src, out = table[example]
        step = min(step, len(out) - 1)
        row = w[step]
        return {"name": name, "weights": w, "src_tokens": src, "out_tokens": out, "step": step, "row": row,
                "top": src[int(row.argmax())]}

    def draw(result, **values):
        return alignment_figure(result["weights"], result["src_tokens"], result["out_tokens"], result["step"],
                                title=result["name"])

    def on_example(change):
        n = len(table[change["new"]][3])
        slider = controls["step"]
        slider.value = min(slider.value, n - 1)
        slider.max = n - 1

    return Explorer(controls, compute, draw, title="Alignment explorer: one decoder step at a time",
                    links={"example": on_example})
