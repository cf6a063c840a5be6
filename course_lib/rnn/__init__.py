"""Recurrent networks, from a vanilla RNN to a GRU encoder-decoder with attention.

Ordered as notebooks 01 and 02 meet them:

1. ``rnn_forward``: the recurrence h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)
   (Elman 1990) with matrices applied as ``x @ W``, and ``greedy_decode``,
   which feeds a decoder's argmax back to it until every row has produced EOS
   (the reference implementations of exercises 01.1 and 01.2).
2. ``hidden_gradient_norms``: ||d h_T / d h_t|| of a vanilla RNN, the
   vanishing-gradient measurement.
3. ``Seq2Seq``: a GRU encoder-decoder in two variants that share every other
   part, so that comparing them is fair:
   ``attention=False`` squeezes the source into one fixed-size context vector
   (Cho et al. 2014, the "RNNencdec" of Bahdanau et al. 2014);
   ``attention=True`` computes a new context at every output step with
   additive attention over the bidirectional encoder's states (Bahdanau et al.
   2014, "RNNsearch").
4. Training and evaluation helpers: ``seq2seq_loss``, ``train_seq2seq``,
   ``accuracy_by_length``, ``reversal_alignment``.
5. The models notebooks 01 and 02 train are declared in
   ``course_lib.experiments.rnn`` (configs ``REVERSAL``, ``DATES`` and cached
   runs), so that notebook 02 reuses what notebook 01 trained.

One file per idea: ``recurrence`` (1, 2), ``seq2seq`` (3), ``evaluate`` (4).
"""

from __future__ import annotations

import dataclasses

from .evaluate import (
    accuracy_by_length,
    bucket_accuracy,
    reversal_alignment,
    train_seq2seq,
)
from .recurrence import greedy_decode, hidden_gradient_norms, rnn_forward
from .seq2seq import Seq2Seq, seq2seq_loss, translate

__all__ = [
    "Seq2Seq",
    "accuracy_by_length",
    "bucket_accuracy",
    "dates_run",
    "greedy_decode",
    "hidden_gradient_norms",
    "reversal_alignment",
    "rnn_forward",
    "seq2seq_loss",
    "train_seq2seq",
    "translate",
]

# --------------------------------------------------------------------------- 5. the trained models

# The configs and cached runs of notebooks 01 and 02 live in course_lib.experiments.rnn
# (REVERSAL, DATES, reversal_task, the registered runs); these names stay importable here.


def dates_run(seed: int = 0, progress: bool = True, **overrides):
    """The registered experiment ``dates_attention`` (course_lib.experiments.rnn) -> (CachedRun, DatesTask).

    Kept for the notebooks that compare another model with notebook 02's dates model."""
    from ..experiments import rnn as _experiments

    run = _experiments.dates_attention(progress=progress, seed=seed, **overrides)  # checks the overrides
    config = dataclasses.replace(_experiments.DATES, seed=seed, **overrides)
    return run, _experiments.dates_task(config)


def __getattr__(name: str):
    if name in ("REVERSAL", "DATES", "reversal_task"):
        from ..experiments import rnn as _experiments

        return getattr(_experiments, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

