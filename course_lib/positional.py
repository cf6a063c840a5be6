"""Positional information: sinusoidal, learned and rotary (RoPE).

Self-attention without positions is permutation equivariant: shuffle the
tokens and the outputs are shuffled the same way. Three ways to tell the model
where each token is, in the order the course meets them:

* sinusoidal encodings added to the embeddings (Vaswani et al. 2017, sec. 3.5);
* learned position embeddings added to the embeddings (GPT, BERT, ViT);
* rotary embeddings (RoPE, Su et al. 2021), which rotate queries and keys so
  that q . k depends only on the offset between their positions.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ._validate import check_int as _check_size
from ._validate import check_shapes

__all__ = [
    "sinusoidal_encoding",
    "sinusoidal_shift_matrix",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "apply_rope",
    "RotaryEmbedding",
]


def _check_even(name: str, value: int) -> int:
    value = _check_size(name, value)
    if value % 2:
        raise ValueError(f"{name} must be even (sin/cos come in pairs), got {value}")
    return value


def _check_base(base) -> float:
    if isinstance(base, bool) or not isinstance(base, numbers.Real) or not math.isfinite(base) or base <= 0:
        raise ValueError(f"base must be a positive finite number, got {base!r}")
    return float(base)


def _inverse_frequencies(dim: int, base: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """omega_i = base^(-2i/dim) for i = 0 .. dim/2 - 1 -> (dim/2,)."""
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (dim/2,), float64 on the CPU (MPS has no float64)
    return (base ** (-two_i / dim)).to(dtype=dtype, device=device)


# --- sinusoidal ---------------------------------------------------------------


def sinusoidal_encoding(max_len: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """Sinusoidal position encodings (Vaswani et al. 2017, sec. 3.5) -> float32 (max_len, d_model).

    PE[p, 2i] = sin(p / base^(2i/d_model)), PE[p, 2i+1] = cos(p / base^(2i/d_model)):
    dimension pair i is a clock of angular frequency base^(-2i/d_model), from
    1 radian per position (i = 0) down to about 1/base. Computed in float64,
    returned as float32. ValueError for odd d_model or non-positive sizes.
    """
    max_len = _check_size("max_len", max_len)
    d_model = _check_even("d_model", d_model)
    base = _check_base(base)
    positions = torch.arange(max_len, dtype=torch.float64)  # (max_len,)
    angles = positions[:, None] * _inverse_frequencies(d_model, base)[None, :]  # (max_len, d_model/2)
    pe = torch.stack((angles.sin(), angles.cos()), dim=-1)  # (max_len, d_model/2, 2)
    return pe.reshape(max_len, d_model).float()  # (max_len, d_model): sin, cos, sin, cos, ...


def sinusoidal_shift_matrix(k: float, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The fixed linear map that moves a sinusoidal encoding k positions forward.

    -> float32 (d_model, d_model), block diagonal with one 2x2 rotation per
    frequency omega_i = base^(-2i/d_model):

        M_k[2i:2i+2, 2i:2i+2] = [[ cos(k omega_i), sin(k omega_i)],
                                 [-sin(k omega_i), cos(k omega_i)]]

    so that, for every position p, with PE = sinusoidal_encoding(...):

        PE[p + k] = M_k @ PE[p]          (PE[p] as a column vector)
        PE[k:]    = PE[:-k] @ M_k.T      (all rows at once)

    M_k does not depend on p: this is the property Vaswani et al. (2017, sec.
    3.5) give for choosing sinusoids ("PE_{pos+k} can be represented as a linear
    function of PE_pos"). It follows from sin(a + b) and cos(a + b). k may be
    any real number, negative included (M_{-k} = M_k^T = M_k^{-1}).
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k):
        raise TypeError(f"k must be a finite int or float, got {type(k).__name__} {k!r}")
    d_model = _check_even("d_model", d_model)
    base = _check_base(base)
    angles = float(k) * _inverse_frequencies(d_model, base)  # (d_model/2,)
    cos, sin = angles.cos(), angles.sin()
    blocks = torch.stack((torch.stack((cos, sin), -1), torch.stack((-sin, cos), -1)), -2)  # (d_model/2, 2, 2)
    return torch.block_diag(*blocks).float()  # (d_model, d_model)


def _check_sequence_input(x, d_model: int, max_len: int, offset: int) -> None:
    check_shapes(x=(x, "B L E"), floating=("x",), dtype_error=ValueError)
    if x.shape[-1] != d_model:
        raise ValueError(f"x has E = {x.shape[-1]} features (shape {tuple(x.shape)}), expected d_model = {d_model}")
    if offset + x.shape[1] > max_len:
        raise ValueError(
            f"x has L = {x.shape[1]} positions (shape {tuple(x.shape)})"
            + (f" starting at offset {offset}" if offset else "")
            + f", more than max_len = {max_len}; build the module with a larger max_len"
        )


class SinusoidalPositionalEncoding(nn.Module):
    """Adds fixed sinusoidal encodings to a batch of embeddings (Vaswani et al. 2017, sec. 3.5).

    forward(x (B, L, E), offset=0) -> dropout(x + PE[offset : offset + L]), (B, L, E).
    The table PE (max_len, d_model) is a non-persistent buffer: it follows
    ``.to(device)`` but is not a parameter and not in the state_dict (it is a
    function of the sizes). ``offset`` shifts the positions, e.g. for one new
    token at position t during generation. Dropout after the sum, as in sec. 5.4.
    """

    def __init__(self, d_model: int, max_len: int = 5000, base: float = 10000.0, dropout: float = 0.0):
        super().__init__()
        self.d_model = _check_even("d_model", d_model)
        self.max_len = _check_size("max_len", max_len)
        self.base = _check_base(base)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model, base), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        offset = _check_size("offset", offset, minimum=0)
        _check_sequence_input(x, self.d_model, self.max_len, offset)
        pe = self.pe[offset : offset + x.shape[1]].to(x.dtype)  # (L, E)
        return self.dropout(x + pe[None])  # (B, L, E)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, base={self.base:g}"


class LearnedPositionalEmbedding(nn.Module):
    """Adds a learned vector per position (as in GPT-2, BERT and ViT).

    Note the argument order (max_len, d_model), that of ``nn.Embedding``.
    forward(x (B, L, E), offset=0) -> x + table[offset : offset + L], (B, L, E).
    The table is ``self.embedding.weight`` (max_len, d_model), initialised
    N(0, 0.02^2) as GPT-2 and ViT do, so that it starts small next to the token
    embeddings. Errors as for SinusoidalPositionalEncoding.
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = _check_size("max_len", max_len)
        self.d_model = _check_size("d_model", d_model)
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    @property
    def weight(self) -> torch.Tensor:
        """The position table, (max_len, d_model)."""
        return self.embedding.weight

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        offset = _check_size("offset", offset, minimum=0)
        _check_sequence_input(x, self.d_model, self.max_len, offset)
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)  # (L,)
        return x + self.embedding(positions)[None].to(x.dtype)  # (B, L, E)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


# --- rotary -------------------------------------------------------------------


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _rope_angles(positions: torch.Tensor, dim: int, base: float, dtype, device) -> torch.Tensor:
    """theta[l, i] = positions[l] * base^(-2i/dim) -> (L, dim/2)."""
    inv_freq = _inverse_frequencies(dim, base, dtype=dtype, device=device)  # (dim/2,)
    return positions.to(device=device, dtype=dtype)[:, None] * inv_freq[None, :]  # (L, dim/2)


def _rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each interleaved pair (x[..., 2i], x[..., 2i+1]) of x (..., L, D)
    by the angle whose cos/sin (L, D/2) are given -> (..., L, D), x's dtype."""
    x_even = x[..., 0::2].to(cos.dtype)  # (..., L, D/2)
    x_odd = x[..., 1::2].to(cos.dtype)  # (..., L, D/2)
    rotated = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1)  # (..., L, D/2, 2)
    return rotated.flatten(-2).to(x.dtype)  # (..., L, D)


def _check_rope_input(name: str, x) -> None:
    check_shapes(**{name: (x, "... L D")}, floating=(name,), dtype_error=ValueError)
    if x.shape[-1] % 2:
        raise ValueError(f"{name} must have an even last dimension D (pairs are rotated), got shape {tuple(x.shape)}")


def _as_positions(name: str, positions, length: int, device) -> torch.Tensor:
    if not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(positions)
    if positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"{name} must hold integers or floats, got dtype {str(positions.dtype).replace('torch.', '')}")
    if positions.dim() != 1 or positions.shape[0] != length:
        raise ValueError(
            f"{name} must have shape ({length},) to match L = {length}, got shape {tuple(positions.shape)}"
        )
    return positions.to(device)


def apply_rope(x: torch.Tensor, positions, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (RoFormer, Su et al. 2021, eq. 34).

    x (..., L, D) with D even; positions (L,), ints or floats (tensor or list)
    -> (..., L, D), x's dtype. Each interleaved pair (x[..., 2i], x[..., 2i+1])
    at position m is rotated by the angle m * base^(-2i/D):

        out[2i]   = x[2i] cos(m w_i) - x[2i+1] sin(m w_i)
        out[2i+1] = x[2i] sin(m w_i) + x[2i+1] cos(m w_i)

    i.e. the complex number x[2i] + j x[2i+1] is multiplied by exp(j m w_i).
    Applied to queries at m and keys at n, the dot product depends on m - n
    only, and norms are preserved. (Some libraries rotate the halves
    (x[i], x[i + D/2]) instead; that is a fixed permutation of the same idea.)
    Angles are computed in float32 (float64 for float64 inputs).
    """
    _check_rope_input("x", x)
    base = _check_base(base)
    positions = _as_positions("positions", positions, x.shape[-2], x.device)
    angles = _rope_angles(positions, x.shape[-1], base, _compute_dtype(x), x.device)  # (L, D/2)
    return _rotate_pairs(x, angles.cos(), angles.sin())


class RotaryEmbedding(nn.Module):
    """Rotary embeddings for queries and keys (Su et al. 2021), with a cos/sin cache.

    forward(q (..., L, Dh), k (..., S, Dh), positions=None, k_positions=None)
    -> (q rotated, k rotated), same shapes and dtypes; equals apply_rope on each.
    positions are the query positions, (L,), default arange(L); k_positions
    default to positions (so L must equal S), or to arange(S) when positions is
    also None and L == S. When L != S (e.g. one new query against cached keys)
    both must be given. The cos/sin table for arange(n) is cached and grown on
    demand; explicit positions are computed directly. Nothing here is learned
    (no parameters, empty state_dict).
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim = _check_even("head_dim", head_dim)
        self.base = _check_base(base)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin (n, Dh/2)

    def _cos_sin(self, length: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self._cache
        if cache is None or cache[0].shape[0] < length or cache[0].dtype != dtype or cache[0].device != device:
            n = max(length, 0 if cache is None else cache[0].shape[0])
            angles = _rope_angles(torch.arange(n), self.head_dim, self.base, dtype, device)  # (n, Dh/2)
            self._cache = cache = (angles.cos(), angles.sin())
        return cache[0][:length], cache[1][:length]  # (length, Dh/2) each

    def _rotate(self, name: str, x: torch.Tensor, positions) -> torch.Tensor:
        _check_rope_input(name, x)
        if x.shape[-1] != self.head_dim:
            raise ValueError(
                f"{name} has last dimension {x.shape[-1]} (shape {tuple(x.shape)}), expected head_dim = {self.head_dim}"
            )
        dtype = _compute_dtype(x)
        if positions is None:
            cos, sin = self._cos_sin(x.shape[-2], dtype, x.device)
        else:
            angles = _rope_angles(positions, self.head_dim, self.base, dtype, x.device)  # (L, Dh/2)
            cos, sin = angles.cos(), angles.sin()
        return _rotate_pairs(x, cos, sin)

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions=None, k_positions=None):
        _check_rope_input("q", q)
        _check_rope_input("k", k)
        L, S = q.shape[-2], k.shape[-2]
        if positions is not None:
            positions = _as_positions("positions", positions, L, q.device)
        if k_positions is None:
            if positions is None and L != S:
                raise ValueError(
                    f"q has L = {L} positions but k has S = {S}; pass positions (for q) and k_positions "
                    "(for k), e.g. positions=[S - 1] and k_positions=arange(S) for one new token"
                )
            k_positions = positions
        else:
            k_positions = _as_positions("k_positions", k_positions, S, k.device)
        return self._rotate("q", q, positions), self._rotate("k", k, k_positions)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base:g}"
