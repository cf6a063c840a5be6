"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs").

Replace the softmax's similarity exp(q . k) by a product of features
phi(q) . phi(k), with phi(x) = elu(x) + 1 > 0 (their eq. 7). Then

    out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / phi(q_i)^T (sum_j phi(k_j))     (eq. 5)

and the two sums do not depend on i: computed once, they serve every query,
so the cost is O(L D Dv) instead of O(L S D). Causal (eq. 8-9), the sums run
over j <= i only: a state S_i = S_{i-1} + phi(k_i) v_i^T (a D x Dv matrix) and
z_i = z_{i-1} + phi(k_i), updated once per token. That is an RNN whose hidden
state is a matrix: constant memory and constant work per generated token,
whatever the context length, and everything the model remembers of the past
must fit in those D x Dv numbers.

Three forms of the same function, tested equal:
* parallel (``linear_attention``, non-causal; causal via cumulative sums),
* the quadratic form with an explicit (L, L) causal matrix (``linear_attention_quadratic``),
* the recurrent form, one token at a time (``linear_attention_recurrent``, ``LinearAttentionState``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_qkv

__all__ = ["elu_feature_map", "linear_attention", "linear_attention_quadratic", "linear_attention_recurrent",
           "LinearAttentionState"]


def elu_feature_map(x: Tensor) -> Tensor:
    """phi(x) = elu(x) + 1, elementwise (Katharopoulos et al. 2020, eq. 7): exp(x) for x < 0, x + 1 otherwise.

    Positive (in float32 it rounds to 0 below about x = -17; the ``eps`` of the denominators covers that)."""
    return F.elu(x) + 1.0


def _check(query, key, value, causal, eps, same_length=False) -> None:
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__} {causal!r}")
    check_qkv(query, key, value, same_length=same_length)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")


def linear_attention(query: Tensor, key: Tensor, value: Tensor, causal: bool = False, eps: float = 1e-6) -> Tensor:
    """Linear attention, parallel form. query (..., L, D), key (..., S, D), value (..., S, Dv) -> (..., L, Dv).

    Non-causal: the sums over all keys, phi(K)^T V (D, Dv) and phi(K)^T 1 (D,), once.
    Causal (needs L == S): the same sums up to each position, as cumulative sums over
    the sequence of the outer products phi(k_j) v_j^T: O(L D Dv) time and memory.
    ``eps`` is added to the denominator.
    """
    _check(query, key, value, causal, eps, same_length=causal)
    q, k = elu_feature_map(query), elu_feature_map(key)  # (..., L, D), (..., S, D)
    if not causal:
        kv = k.transpose(-2, -1) @ value  # (..., D, Dv): sum_j phi(k_j) v_j^T
        z = k.sum(dim=-2)  # (..., D): sum_j phi(k_j)
        return (q @ kv) / ((q * z[..., None, :]).sum(dim=-1, keepdim=True) + eps)  # (..., L, Dv)
    kv = torch.cumsum(k[..., :, :, None] * value[..., :, None, :], dim=-3)  # (..., L, D, Dv) running S_i
    z = torch.cumsum(k, dim=-2)  # (..., L, D) running z_i
    numerator = (q[..., :, None, :] @ kv).squeeze(-2)  # (..., L, Dv)
    return numerator / ((q * z).sum(dim=-1, keepdim=True) + eps)


def linear_attention_quadratic(query: Tensor, key: Tensor, value: Tensor, causal: bool = False,
                               eps: float = 1e-6) -> Tensor:
    """The same function written like softmax attention, with an explicit (L, S) matrix
    A_ij = phi(q_i) . phi(k_j) (masked to j <= i when causal), normalised by its row sums.
    O(L S) memory: for teaching and testing, the form linear attention avoids."""
    _check(query, key, value, causal, eps)
    a = elu_feature_map(query) @ elu_feature_map(key).transpose(-2, -1)  # (..., L, S)
    if causal:
        a = a.tril()
    return (a @ value) / (a.sum(dim=-1, keepdim=True) + eps)


@dataclass
class LinearAttentionState:
    """The whole memory of causal linear attention: kv (..., D, Dv) and z (..., D).

    ``step(q, k, v)`` reads one token, q and k (..., D), v (..., Dv), updates the sums
    and returns its output (..., Dv): the same constant work at token 10 and at token 10,000.
    """

    kv: Tensor
    z: Tensor
    eps: float = 1e-6

    @classmethod
    def empty(cls, batch_shape: tuple[int, ...], dim: int, value_dim: int, dtype=torch.float32, device=None,
              eps: float = 1e-6) -> "LinearAttentionState":
        return cls(torch.zeros(*batch_shape, dim, value_dim, dtype=dtype, device=device),
                   torch.zeros(*batch_shape, dim, dtype=dtype, device=device), eps)

    def step(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        fq, fk = elu_feature_map(q), elu_feature_map(k)  # (..., D)
        self.kv = self.kv + fk[..., :, None] * v[..., None, :]  # (..., D, Dv): S_i = S_{i-1} + phi(k_i) v_i^T
        self.z = self.z + fk  # z_i = z_{i-1} + phi(k_i)
        numerator = (fq[..., None, :] @ self.kv).squeeze(-2)  # (..., Dv)
        return numerator / ((fq * self.z).sum(dim=-1, keepdim=True) + self.eps)

    def nbytes(self) -> int:
        return self.kv.element_size() * self.kv.numel() + self.z.element_size() * self.z.numel()


def linear_attention_recurrent(query: Tensor, key: Tensor, value: Tensor, eps: float = 1e-6) -> Tensor:
    """Causal linear attention as an RNN: a Python loop over positions, state (D, Dv) + (D,).

    query, key (..., L, D), value (..., L, Dv) -> (..., L, Dv); equals
    ``linear_attention(query, key, value, causal=True)``.
    """
    _check(query, key, value, True, eps, same_length=True)
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    state = LinearAttentionState.empty(tuple(batch), query.shape[-1], value.shape[-1], query.dtype, query.device, eps)
    outputs = [state.step(query[..., t, :], key[..., t, :], value[..., t, :]) for t in range(query.shape[-2])]
    return torch.stack(outputs, dim=-2)  # (..., L, Dv)
