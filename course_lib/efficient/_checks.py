"""Argument checks shared by the efficient-attention functions: clear messages, never a deep traceback."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validate import check_int

__all__ = ["check_int", "check_qkv", "shape_of"]


def shape_of(x: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def _check_tensor(name: str, x, expected: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {expected}, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dimensions {expected}, got shape {shape_of(x)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor {expected}, got {x.dtype}")


def check_qkv(query, key, value, same_length: bool = False) -> None:
    """query (..., L, E), key (..., S, E), value (..., S, Ev): types, feature and length agreement."""
    _check_tensor("query", query, "of shape (..., L, E)")
    _check_tensor("key", key, "of shape (..., S, E)")
    _check_tensor("value", value, "of shape (..., S, Ev)")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query {shape_of(query)} and key {shape_of(key)} must have the same feature size E "
                         "in their last dimension")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"key {shape_of(key)} and value {shape_of(value)} must have the same number of "
                         "positions S in their second-to-last dimension")
    if key.shape[-2] == 0:
        raise ValueError(f"key has no positions (S = 0, shape {shape_of(key)}): there is nothing to attend to")
    if same_length and query.shape[-2] != key.shape[-2]:
        raise ValueError(f"this form needs as many queries as keys (self-attention), got L = {query.shape[-2]} "
                         f"queries and S = {key.shape[-2]} keys")
    try:
        torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the batch dimensions of query {shape_of(query)}, key {shape_of(key)} and value "
                         f"{shape_of(value)} do not broadcast") from None
