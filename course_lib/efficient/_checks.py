"""Argument checks shared by the efficient-attention functions: clear messages, never a deep traceback."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validate import check_int, check_shapes, shape_text

__all__ = ["check_int", "check_qkv", "shape_of"]


def shape_of(x: Tensor) -> str:
    return shape_text(x.shape)


def check_qkv(query, key, value, same_length: bool = False) -> None:
    """query (..., L, E), key (..., S, E), value (..., S, Ev): types, feature and length agreement."""
    check_shapes(query=(query, "... L E"), key=(key, "... S E"), value=(value, "... S Ev"),
                 floating=("query", "key", "value"), dims={"E": "feature size E", "S": "number of positions S"})
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
