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
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._validate import check_int, check_source_batch
from ._validate import describe as _describe
from .attention import AdditiveAttention
from .train import train_loop

__all__ = ["rnn_forward", "greedy_decode", "hidden_gradient_norms", "Seq2Seq", "seq2seq_loss", "translate",
           "train_seq2seq", "accuracy_by_length", "bucket_accuracy", "reversal_alignment", "dates_run"]


def _shape(x: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def rnn_forward(x: Tensor, h0: Tensor, W_xh: Tensor, W_hh: Tensor, b_h: Tensor) -> tuple[Tensor, Tensor]:
    """Run a vanilla (Elman) RNN over a sequence.

    x (B, T, D), h0 (B, H), W_xh (D, H), W_hh (H, H), b_h (H,)
    -> outputs (B, T, H) holding h_1..h_T, and h_last (B, H) = h_T (h0 when T = 0).
    """
    for name, t, nd in (("x", x, 3), ("h0", h0, 2), ("W_xh", W_xh, 2), ("W_hh", W_hh, 2), ("b_h", b_h, 1)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != nd:
            raise ValueError(f"{name} must be {nd}-D, got shape {_shape(t)}")
    B, T, D = x.shape
    H = h0.shape[1]
    if h0.shape[0] != B:
        raise ValueError(f"h0 has batch size {h0.shape[0]} but x has {B}; expected h0 of shape ({B}, H)")
    if W_xh.shape != (D, H) or W_hh.shape != (H, H) or b_h.shape != (H,):
        raise ValueError(
            f"W_xh {_shape(W_xh)}, W_hh {_shape(W_hh)}, b_h {_shape(b_h)} do not fit x {_shape(x)} and "
            f"h0 {_shape(h0)}; expected W_xh ({D}, {H}), W_hh ({H}, {H}), b_h ({H},)"
        )
    inputs = x @ W_xh + b_h  # (B, T, H): the input part of every step at once
    h = h0
    outputs = []
    for t in range(T):
        h = torch.tanh(inputs[:, t] + h @ W_hh)  # (B, H)
        outputs.append(h)
    stacked = torch.stack(outputs, dim=1) if outputs else x.new_zeros(B, 0, H)  # (B, T, H)
    return stacked, h


def greedy_decode(step_fn: Callable[[Tensor, object], tuple[Tensor, object]], h0, sos_id: int, eos_id: int,
                  max_len: int, batch_size: int | None = None) -> Tensor:
    """Greedy decoding: feed back the argmax token until every row emitted EOS.

    step_fn(tokens (B,), h) -> (logits (B, V), h). h0 is the decoder's initial
    state: a (B, H) tensor, or any object step_fn understands (a tuple, torch's
    (num_layers, B, H) layout...) together with ``batch_size=B``, because the
    batch size cannot be read reliably from such a state (a (B, S, H) tensor and
    a (num_layers, B, H) one have the same rank). Returns a LongTensor
    (B, max_len): after a row emits eos_id, every later position of that row is
    eos_id, and step_fn is not called again once all rows have finished.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable, got {type(step_fn).__name__}")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if batch_size is not None:
        B = check_int("batch_size", batch_size, 1)
    elif isinstance(h0, Tensor) and h0.dim() == 2:
        B = h0.shape[0]  # (B, H)
    else:
        got = f"a tensor of shape {_shape(h0)}" if isinstance(h0, Tensor) else f"a {type(h0).__name__}"
        raise ValueError(f"h0 is {got}: pass batch_size=B (the batch size is read from h0 only when h0 is a "
                         "(B, H) tensor)")
    first = _first_tensor(h0)
    device = first.device if first is not None else torch.device("cpu")
    out = torch.full((B, max_len), eos_id, dtype=torch.long, device=device)
    tokens = torch.full((B,), sos_id, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != B:
            raise ValueError(f"step_fn must return logits of shape ({B}, V) for {B} rows, got {_describe(logits)}")
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)  # (B,)
        out[:, t] = tokens
        finished |= tokens == eos_id
        if bool(finished.all()):
            break
    return out


def _first_tensor(h) -> Tensor | None:
    if isinstance(h, Tensor):
        return h
    if isinstance(h, (tuple, list)):
        for item in h:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------- 2. vanishing gradients


def hidden_gradient_norms(x: Tensor, h0: Tensor, W_xh: Tensor, W_hh: Tensor, b_h: Tensor) -> Tensor:
    """Frobenius norms of d h_T / d h_t for a vanilla RNN, t = 1..T, averaged over the batch.

    Same arguments as ``rnn_forward``. Returns norms (T,): norms[t - 1] =
    mean over the batch of ||d h_T / d h_t||. With h_k = tanh(a_k) the chain
    rule gives d h_k / d h_{k-1} = diag(1 - h_k^2) W_hh^T, so the Jacobian is
    a product of T - t such factors; each factor with norm below one shrinks
    it, which is the vanishing gradient (Bengio et al. 1994; Pascanu et al.
    2013). Computed exactly, one matrix product per step; tests compare it
    with autograd. The norms shrink geometrically, so in float32 they reach
    exactly 0 after a few dozen steps of a small W_hh; pass float64 tensors
    to follow them further (notebook 01 does).
    """
    outputs, _ = rnn_forward(x, h0, W_xh, W_hh, b_h)  # (B, T, H)
    B, T, H = outputs.shape
    if T == 0:
        return outputs.new_zeros(0)
    jac = torch.eye(H, dtype=outputs.dtype, device=outputs.device).expand(B, H, H)  # d h_T / d h_T
    norms = [jac.norm(dim=(1, 2)).mean()]
    for k in range(T - 1, 0, -1):  # extend d h_T / d h_{k+1} to d h_T / d h_k
        step = (1 - outputs[:, k] ** 2).unsqueeze(2) * W_hh.T  # (B, H, H): d h_{k+1} / d h_k
        jac = jac @ step
        norms.append(jac.norm(dim=(1, 2)).mean())
    return torch.stack(norms[::-1]).detach()


# --------------------------------------------------------------------------- 3. the encoder-decoder


class Seq2Seq(nn.Module):
    """A GRU encoder-decoder, with one context vector or with additive attention.

    Encoder: embedding, bidirectional GRU -> states h_j (B, S, 2H) and a
    summary (B, 2H), the last forward and the last backward state.
    Decoder: s_0 = tanh(W_init summary); then at every step i
        c_i = summary                                  (attention=False)
        c_i = sum_j alpha_ij h_j, alpha_i = softmax_j(v^T tanh(W_q s_{i-1} + W_k h_j))
                                                       (attention=True, Bahdanau et al. 2014, eqs. 5-6)
        s_i = GRU([embed(y_{i-1}); c_i], s_{i-1})
        logits_i = W_out [s_i; c_i; embed(y_{i-1})]
    Both variants share every module except the attention scorer, so the only
    difference between them is whether c_i may change with i.

    forward(src (B, S), src_lengths (B,), tgt_in (B, T)) -> (logits (B, T, V),
    weights (B, T, S) or None): teacher forcing. ``translate`` decodes greedily.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, emb_dim: int = 32, hidden_dim: int = 64,
                 attention: bool = True, attn_dim: int | None = None, pad_id: int = 0, sos_id: int = 1,
                 eos_id: int = 2):
        super().__init__()
        src_vocab_size = check_int("src_vocab_size", src_vocab_size, 1)
        tgt_vocab_size = check_int("tgt_vocab_size", tgt_vocab_size, 1)
        emb_dim = check_int("emb_dim", emb_dim, 1)
        hidden_dim = check_int("hidden_dim", hidden_dim, 1)
        attn_dim = hidden_dim if attn_dim is None else check_int("attn_dim", attn_dim, 1)
        if not isinstance(attention, bool):
            raise TypeError(f"attention must be True or False, got {attention!r}")
        self.config = dict(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, emb_dim=emb_dim,
                           hidden_dim=hidden_dim, attention=attention, attn_dim=attn_dim, pad_id=pad_id,
                           sos_id=sos_id, eos_id=eos_id)
        self.pad_id, self.sos_id, self.eos_id = pad_id, sos_id, eos_id
        self.src_embed = nn.Embedding(src_vocab_size, emb_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(emb_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden_dim, hidden_dim)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, emb_dim, padding_idx=pad_id)
        self.attention = AdditiveAttention(hidden_dim, 2 * hidden_dim, attn_dim) if attention else None
        self.decoder = nn.GRU(emb_dim + 2 * hidden_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim + 2 * hidden_dim + emb_dim, tgt_vocab_size)

    @property
    def uses_attention(self) -> bool:
        return self.attention is not None

    def extra_repr(self) -> str:
        return "attention" if self.uses_attention else "one context vector"

    # -- encoder ---------------------------------------------------------------

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """src (B, S), src_lengths (B,) -> states (B, S, 2H) (zero at padding),
        summary (B, 2H), mask (B, S) bool True = real symbol."""
        src, src_lengths = self._check_src(src, src_lengths)
        S = src.shape[1]
        mask = torch.arange(S, device=src.device) < src_lengths.unsqueeze(1)  # (B, S)
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), src_lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        states, h_n = self.encoder(packed)  # h_n (2, B, H): last forward and last backward state
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=S)  # (B, S, 2H)
        summary = torch.cat([h_n[0], h_n[1]], dim=-1)  # (B, 2H)
        return states, summary, mask

    def _check_src(self, src, src_lengths) -> tuple[Tensor, Tensor]:
        check_source_batch(src, src_lengths)
        vocab = self.src_embed.num_embeddings
        if bool(((src < 0) | (src >= vocab)).any()):
            raise ValueError(f"src holds ids outside 0..{vocab - 1}, the source vocabulary of this model")
        return src, src_lengths.long()

    # -- decoder ---------------------------------------------------------------

    def start(self, src: Tensor, src_lengths: Tensor) -> tuple:
        """Encode and return the decoder's initial state (s_0, states, projected keys, mask, summary)."""
        states, summary, mask = self.encode(src, src_lengths)
        s0 = torch.tanh(self.bridge(summary))  # (B, H)
        keys = self.attention.project_keys(states) if self.uses_attention else None  # (B, S, A)
        return s0, states, keys, mask, summary

    def _gru_cell(self, x: Tensor, s: Tensor) -> Tensor:
        """One step of the decoder GRU (the same weights nn.GRU uses over a whole sequence)."""
        d = self.decoder
        return torch.gru_cell(x, s, d.weight_ih_l0, d.weight_hh_l0, d.bias_ih_l0, d.bias_hh_l0)

    def step(self, tokens: Tensor, state: tuple) -> tuple[Tensor, tuple, Tensor | None]:
        """One decoder step. tokens (B,) = y_{i-1} -> (logits (B, V), next state, weights (B, S) or None)."""
        s, states, keys, mask, summary = state
        emb = self.tgt_embed(tokens)  # (B, E)
        if self.uses_attention:
            context, weights = self.attention(s, states, mask, projected_keys=keys)  # (B, 2H), (B, S)
        else:
            context, weights = summary, None
        s = self._gru_cell(torch.cat([emb, context], dim=-1), s)  # (B, H)
        logits = self.out(torch.cat([s, context, emb], dim=-1))  # (B, V)
        return logits, (s, states, keys, mask, summary), weights

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]:
        if not isinstance(tgt_in, Tensor) or tgt_in.dim() != 2 or tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"tgt_in must be a LongTensor ({src.shape[0]}, T): <sos> + target, got "
                             f"{_describe(tgt_in)}")
        state = self.start(src, src_lengths)
        s0, _, _, _, summary = state
        emb = self.tgt_embed(tgt_in)  # (B, T, E)
        if not self.uses_attention:
            # The context never changes, so the whole target runs through nn.GRU at once.
            context = summary.unsqueeze(1).expand(-1, tgt_in.shape[1], -1)  # (B, T, 2H)
            s, _ = self.decoder(torch.cat([emb, context], dim=-1), s0.unsqueeze(0))  # (B, T, H)
            return self.out(torch.cat([s, context, emb], dim=-1)), None
        # With attention, c_i depends on s_{i-1}: one GRU step per output position,
        # each step batched over the whole batch and every source position.
        s, states, keys, mask, _ = state
        s_all, c_all, w_all = [], [], []
        for i in range(tgt_in.shape[1]):
            context, weights = self.attention(s, states, mask, projected_keys=keys)  # (B, 2H), (B, S)
            s = self._gru_cell(torch.cat([emb[:, i], context], dim=-1), s)  # (B, H)
            s_all.append(s)
            c_all.append(context)
            w_all.append(weights)
        s_all, c_all = torch.stack(s_all, dim=1), torch.stack(c_all, dim=1)  # (B, T, H), (B, T, 2H)
        logits = self.out(torch.cat([s_all, c_all, emb], dim=-1))  # (B, T, V)
        return logits, torch.stack(w_all, dim=1)  # (B, T, S)




def seq2seq_loss(model: Seq2Seq, batch) -> Tensor:
    """Mean cross-entropy per target token (padding ignored), teacher forcing. batch: a Seq2SeqBatch."""
    logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1),
                           ignore_index=model.pad_id)


@torch.no_grad()
def translate(model: Seq2Seq, src: Tensor, src_lengths: Tensor, max_len: int) -> tuple[Tensor, Tensor | None]:
    """Greedy decoding with ``greedy_decode``.

    -> tokens (B, max_len) (EOS after the end of each row, as greedy_decode
    gives them) and, for an attention model, weights (B, max_len, S): the
    attention of every output step (zero after the step that emitted EOS).
    """
    was_training = model.training
    model.eval()
    try:
        state = model.start(src, src_lengths)
        B, S = src.shape
        recorded: list[Tensor] = []
        finished = torch.zeros(B, dtype=torch.bool, device=src.device)

        def step_fn(tokens, st):
            nonlocal finished
            logits, st, weights = model.step(tokens, st)
            if weights is not None:
                recorded.append(weights.masked_fill(finished.unsqueeze(1), 0.0))
            finished = finished | (logits.argmax(-1) == model.eos_id)
            return logits, st

        tokens = greedy_decode(step_fn, state, model.sos_id, model.eos_id, max_len, batch_size=B)
        if not model.uses_attention:
            return tokens, None
        weights = src.new_zeros((B, max_len, S), dtype=torch.float32)
        if recorded:
            weights[:, : len(recorded)] = torch.stack(recorded, dim=1)
        return tokens, weights
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- 4. training, evaluation, cache


def train_seq2seq(model: Seq2Seq, batches: Callable[[int], object], steps: int, lr: float = 3e-3,
                  progress: bool = True, desc: str = "training", schedule: str = "cosine"):
    """Teacher-forced training with ``train.train_loop`` (AdamW, gradient clipping at 1,
    cosine learning-rate decay by default).

    batches(step) -> Seq2SeqBatch. Returns the History (losses, seconds)."""
    dev = next(model.parameters()).device
    return train_loop(model, lambda step: batches(step).to(dev), seq2seq_loss, steps, lr=lr, progress=progress,
                      desc=desc, schedule=schedule)


@torch.no_grad()
def accuracy_by_length(model: Seq2Seq, task, lengths, per_length: int = 100, seed: int = 1234) -> dict[int, float]:
    """Exact-match accuracy of greedy decoding for sources of each length.

    task: a SequenceTask; lengths: iterable of source lengths; per_length
    random sources of each length, drawn from a generator seeded with `seed`
    (the same sources for every model). A row counts as correct when every
    target symbol and the EOS after it are right. -> {length: accuracy}.
    """
    per_length = check_int("per_length", per_length, 1)
    dev = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for length in lengths:
        length = check_int("length", length, 1)
        batch = task.fixed_length_batch(per_length, length, generator).to(dev)
        tokens, _ = translate(model, batch.src, batch.src_lengths, max_len=batch.tgt_out.shape[1])
        correct = (tokens == batch.tgt_out).all(dim=1)  # tgt_out ends with EOS and has no padding here
        result[length] = float(correct.float().mean())
    return result


def bucket_accuracy(by_length: dict[int, float], width: int = 5) -> dict[str, float]:
    """{length: accuracy} -> {"a-b": mean accuracy over lengths a..b}, buckets of `width` lengths
    starting at the shortest length."""
    width = check_int("width", width, 1)
    if not by_length:
        raise ValueError("by_length is empty; expected {length: accuracy}")
    lengths = sorted(by_length)
    buckets: dict[str, float] = {}
    start = lengths[0]
    while start <= lengths[-1]:
        inside = [n for n in lengths if start <= n < start + width]
        if inside:
            buckets[f"{inside[0]}-{inside[-1]}"] = sum(by_length[n] for n in inside) / len(inside)
        start += width
    return buckets


def reversal_alignment(weights: Tensor, src_lengths: Tensor) -> float:
    """Fraction of output steps whose most attended source position is the mirrored one.

    weights (B, T, S) from ``translate`` on a reversal task, src_lengths (B,).
    Output step i of a row of length L should attend to source position
    L - 1 - i; only the L steps that write a symbol are counted (not the EOS step).
    """
    if not isinstance(weights, Tensor) or weights.dim() != 3:
        raise ValueError(f"weights must be a (B, T, S) tensor of attention weights, got {_describe(weights)}")
    B, T, S = weights.shape
    steps = torch.arange(T, device=weights.device)
    lengths = src_lengths.to(weights.device).unsqueeze(1)  # (B, 1)
    counted = steps < torch.minimum(lengths, torch.tensor(T))  # (B, T)
    mirrored = lengths - 1 - steps  # (B, T)
    hits = (weights.argmax(dim=-1) == mirrored) & counted
    return float(hits.sum()) / max(int(counted.sum()), 1)


# --------------------------------------------------------------------------- 5. the trained models

# The configs and cached runs of notebooks 01 and 02 live in course_lib.experiments.rnn
# (REVERSAL, DATES, reversal_task, the registered runs); these names stay importable here.


def dates_run(seed: int = 0, progress: bool = True, **overrides):
    """The registered experiment ``dates_attention`` (course_lib.experiments.rnn) -> (CachedRun, DatesTask).

    Kept for the notebooks that compare another model with notebook 02's dates model."""
    from .experiments import rnn as _experiments

    run = _experiments.dates_attention(progress=progress, seed=seed, **overrides)  # checks the overrides
    config = dataclasses.replace(_experiments.DATES, seed=seed, **overrides)
    return run, _experiments.dates_task(config)


def __getattr__(name: str):
    if name in ("REVERSAL", "DATES", "reversal_task"):
        from .experiments import rnn as _experiments

        return getattr(_experiments, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
