"""The exercises of the course, declared once, and the checkers registered for them.

``EXERCISES`` maps every ID of the curriculum to its ``ExerciseSpec``: title, the name
of the learner's function (or class), points, notebook, and the torch built-ins the
exercise asks the learner not to call (``forbidden``, dotted names, read by the
grader). An ID whose checker module ``nbNN.py`` (or package ``nbNN/``) is not written yet stays listed:
``run_check`` then answers "no checker for this exercise yet". The points table of
docs/instructor.md is tested against this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .diagnosis import Misconception


@dataclass(frozen=True)
class ExerciseSpec:
    """A graded exercise: its ID, title, the name the learner's function must
    have, its points, the notebook (``NN_topic``) it lives in, and the torch
    built-ins it forbids (the grader flags a solution that calls one)."""

    id: str
    title: str
    function: str
    points: float
    notebook: str
    forbidden: tuple[str, ...] = ()


NOTEBOOKS = {
    "00": "00_welcome",
    "01": "01_rnn_bottleneck",
    "02": "02_bahdanau_attention",
    "03": "03_self_attention",
    "04": "04_multi_head_attention",
    "05": "05_positional_encoding",
    "06": "06_transformer",
    "07": "07_gpt",
    "08": "08_vision_transformer",
    "09": "09_efficient_attention",
    "10": "10_interpretability",
}

_SOFTMAX = ("torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax", "torch.special.softmax",
            "torch.nn.Softmax")
_SDPA = ("torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
         "torch.nn.functional.multi_head_attention_forward")

# (id, title, function, points, forbidden). Points grow with difficulty: 2 for a one-liner
# with a twist, 5 for a full attention function. An exercise forbids the built-in that
# *is* its answer; building blocks (torch.softmax inside attention, cross_entropy in the
# loss, multinomial in the sampler, Tensor.unfold in patchify) stay allowed.
_TABLE = [
    ("00.1", "Numerically stable softmax", "softmax", 2, _SOFTMAX),
    ("01.1", "A vanilla RNN forward pass", "rnn_forward", 3,
     ("torch.nn.RNN", "torch.nn.RNNCell", "torch.rnn_tanh", "torch.rnn_tanh_cell")),
    ("01.2", "Greedy decoding", "greedy_decode", 4, ()),
    ("02.1", "Additive (Bahdanau) scores", "additive_scores", 3, ()),
    ("02.2", "Masked softmax", "masked_softmax", 3, ()),
    ("02.3", "Bahdanau attention: weights and context", "bahdanau_attend", 3, ()),
    ("03.1", "Scaled dot-product attention", "scaled_dot_product_attention", 5, _SDPA),
    ("03.2", "Causal mask", "causal_mask", 2, ()),
    ("03.3", "Padding mask", "padding_mask", 2, ()),
    ("04.1", "Split into heads", "split_heads", 2, ()),
    ("04.2", "Merge heads", "merge_heads", 2, ()),
    ("04.3", "Multi-head attention", "multi_head_attention", 5, _SDPA),
    ("05.1", "Sinusoidal positional encoding", "sinusoidal_encoding", 3, ()),
    ("05.2", "Rotary position embedding (RoPE)", "apply_rope", 4, ()),
    ("06.1", "Layer normalisation", "layer_norm", 3,
     ("torch.nn.functional.layer_norm", "torch.nn.LayerNorm", "torch.layer_norm", "torch.native_layer_norm")),
    ("06.2", "Transformer encoder block", "EncoderBlock", 5,
     ("torch.nn.TransformerEncoderLayer", "torch.nn.TransformerEncoder", "torch.nn.Transformer")),
    ("06.3", "Decoder self-attention mask", "decoder_self_mask", 3, ()),
    ("07.1", "Next-token loss", "next_token_loss", 3, ()),
    ("07.2", "Sampling the next token", "sample_next", 4, ()),
    ("08.1", "Patchify", "patchify", 3, ("torch.nn.functional.unfold", "torch.nn.Unfold")),
    ("08.2", "Class token and position embeddings", "add_cls_and_pos", 2, ()),
    ("09.1", "Tiled attention with an online softmax", "tiled_attention", 5, _SDPA),
    ("09.2", "Linear attention", "linear_attention", 4, ()),
    ("09.3", "Sliding-window mask", "sliding_window_mask", 2, ()),
    ("10.1", "Attention rollout", "attention_rollout", 4, ()),
]

EXERCISES: dict[str, ExerciseSpec] = {
    i: ExerciseSpec(i, title, fn, float(points), NOTEBOOKS[i[:2]], tuple(forbidden))
    for i, title, fn, points, forbidden in _TABLE
}


def exercises_of(notebook: str) -> list[ExerciseSpec]:
    """The exercises of one notebook, by name ("03_self_attention") or number ("03")."""
    key = notebook[:2]
    return [e for e in EXERCISES.values() if e.id.startswith(key + ".")]


@dataclass
class Checker:
    """A registered checker: ``fn(t, learner_fn)`` declares the sub-checks of one exercise.

    ``match_tolerances``: the (rtol, atol) pairs, tried in order, within which a
    learner's wrong output is taken to be a misconception's output."""

    id: str
    fn: Callable
    misconceptions: tuple[Misconception, ...]
    mutation_weight: float
    match_tolerances: tuple[tuple[float, float], ...] = ((1e-4, 1e-6),)


_CHECKERS: dict[str, Checker] = {}


def checker(exercise_id: str, *, misconceptions: list[Misconception] | tuple = (), mutation_weight: float = 1.0,
            match_tolerances: tuple[tuple[float, float], ...] = ((1e-4, 1e-6),)):
    """Register ``fn(t, learner_fn)`` as the checker of ``exercise_id``."""
    if exercise_id not in EXERCISES:
        raise KeyError(f"checker for unknown exercise id {exercise_id!r}; add it to EXERCISES first")

    def register(fn):
        _CHECKERS[exercise_id] = Checker(exercise_id, fn, tuple(misconceptions), float(mutation_weight),
                                      tuple(match_tolerances))
        return fn

    return register


def _load_checker(exercise_id: str) -> Checker | None:
    """Import ``course_lib.checks.nbNN`` (which registers its checkers) and
    return the checker of this ID, or None when none is written yet."""
    if exercise_id not in _CHECKERS:
        module = f"{__package__.rsplit('.', 1)[0]}.nb{exercise_id[:2]}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but one of its imports is missing: a real bug
                raise
    return _CHECKERS.get(exercise_id)
