"""A stand-in for the step function of a decoder, for exercises that drive a decoding loop (01.2
greedy decoding; any later exercise that decodes step by step).

A ``ScriptedDecoder`` emits logits fixed in advance and records every call: what it was fed,
which state it got, how often it was called. The checker reads the record to judge the
learner's loop; misconceptions (wrong loops) run on fresh copies of the same script
(``fresh_copy``, which the framework's diagnosis calls through ``clone_all``).
"""

from __future__ import annotations

import torch

from .expectations import fmt_shape


class ScriptedDecoder:
    """A fake decoder whose outputs are fixed in advance and which records its calls.

    ``path`` (B, max_len): the tokens each row emits when fed correctly (the
    sos token first, then its own previous argmax); a row ends with eos_id at
    ``ends[b]`` (or never, ends[b] = max_len) and emits non-eos garbage after
    it, whatever it is fed, like a real decoder that knows nothing about
    finished rows. A row fed a wrong token emits a "confused" non-eos token.
    The step index comes from the number of calls; ``h`` is checked (logged),
    not used, so a wrong state does not hide the other mistakes.
    """

    def __init__(self, path: torch.Tensor, ends: list[int], sos_id: int, eos_id: int, noise: torch.Tensor,
                 h_dim: int, max_calls: int):
        self.path, self.ends = path, ends
        self.sos_id, self.eos_id = sos_id, eos_id
        self.noise = noise  # (max_len + extra, B, V)
        self.B, self.V = path.shape[0], noise.shape[-1]
        self.max_len, self.max_calls = path.shape[1], max_calls
        self.h_dim = h_dim
        self.calls = 0
        self.fed: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.h_ok: list[bool] = []
        self.h_is_h0: list[bool] = []
        self.h0: torch.Tensor | None = None
        self._last_h: torch.Tensor | None = None

    def fresh(self, h0: torch.Tensor) -> "ScriptedDecoder":
        """An unused copy of this script, expecting the initial state ``h0``."""
        copy = ScriptedDecoder(self.path, self.ends, self.sos_id, self.eos_id, self.noise, self.h_dim,
                               self.max_calls)
        copy.h0, copy._last_h = h0.clone(), h0.clone()
        return copy

    def fresh_copy(self) -> "ScriptedDecoder":
        """An unused copy for a misconception to run on (the framework's diagnosis
        calls this); some wrong loops run one step more than max_len."""
        copy = self.fresh(self.h0)
        copy.max_calls = self.max_len + 2
        return copy

    def initial_state(self, gen: torch.Generator) -> torch.Tensor:
        self.h0 = torch.randn(self.B, self.h_dim, generator=gen)
        self._last_h = self.h0
        return self.h0.clone()

    def _confused(self, b: int, k: int, fed: int) -> int:
        avoid = {self.eos_id, self.sos_id}
        token = (fed * 7 + b * 3 + k * 5 + 1) % self.V
        while token in avoid:
            token = (token + 1) % self.V
        return token

    def __call__(self, tokens, h):
        self.calls += 1
        k = self.calls - 1
        if self.calls > self.max_calls:
            raise RuntimeError(f"step_fn was called {self.calls} times, more than max_len = {self.max_len}")
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"step_fn expects tokens as a LongTensor of shape ({self.B},), got a "
                            f"{type(tokens).__name__}")
        if tuple(tokens.shape) != (self.B,):
            raise ValueError(f"step_fn expects tokens of shape ({self.B},), got {fmt_shape(tokens.shape)}")
        if tokens.is_floating_point() or tokens.dtype == torch.bool:
            raise TypeError(f"step_fn expects integer token ids, got dtype {tokens.dtype}")
        fed = tokens.detach().clone().long()
        self.fed.append(fed)
        same = isinstance(h, torch.Tensor) and self._last_h is not None and h.shape == self._last_h.shape \
            and bool(torch.equal(h, self._last_h))
        self.h_ok.append(same)
        self.h_is_h0.append(isinstance(h, torch.Tensor) and self.h0 is not None and h.shape == self.h0.shape
                            and bool(torch.equal(h, self.h0)) and k > 0)
        noise = self.noise[min(k, self.noise.shape[0] - 1)]
        logits = noise.clone()
        for b in range(self.B):
            if k > self.ends[b] or k >= self.max_len:
                peak = self._confused(b, k, -1)
            else:
                expected_feed = self.sos_id if k == 0 else int(self.path[b, k - 1])
                peak = int(self.path[b, k]) if int(fed[b]) == expected_feed else self._confused(b, k, int(fed[b]))
            logits[b, peak] = noise[b].max() + 1.0 + noise[b].abs().mean()
        self.logits.append(logits.clone())
        new_h = (self.h0 if self.h0 is not None else torch.zeros(self.B, self.h_dim)) + float(self.calls)
        self._last_h = new_h
        return logits, new_h.clone()

    @classmethod
    def random(cls, t, B: int, max_len: int, V: int, ends: list[int]) -> "ScriptedDecoder":
        """A script from the check context ``t`` where row b emits eos at step ends[b]
        (ends[b] >= max_len: never); sos_id and eos_id are random, eos_id never 0 (so that
        zero padding shows)."""
        sos_id, eos_id = t.random.sample(range(1, V), 2)
        ordinary = torch.tensor([v for v in range(V) if v not in (sos_id, eos_id)])
        path = ordinary[torch.randint(0, len(ordinary), (B, max_len), generator=t.gen)]
        for b, end in enumerate(ends):
            if end < max_len:
                path[b, end] = eos_id
        noise = t.randn(max_len + 4, B, V)
        return cls(path, ends, sos_id, eos_id, noise, h_dim=3, max_calls=max_len)
