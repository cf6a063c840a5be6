"""A GRU encoder-decoder with one context vector (Cho et al. 2014) or with additive attention
(Bahdanau et al. 2014), its loss, and greedy translation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validate import check_int, check_source_batch
from .._validate import describe as _describe
from ..attention import AdditiveAttention
from .recurrence import greedy_decode


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
