"""Argument checks shared by the attention functions: each names the argument, what it got and what was expected."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validate import shape_text


def _shape(x: Tensor) -> str:
    return shape_text(x.shape)


def _require_tensor(name: str, x, min_dim: int | None = None, ndim: int | tuple[int, ...] | None = None,
                    floating: bool = False, expected: str = "") -> None:
    hint = f" {expected}" if expected else ""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{hint}, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.dim() not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}{hint}, got shape {_shape(x)}")
    if min_dim is not None and x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions{hint}, got shape {_shape(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor{hint}, got dtype {x.dtype}")


def _check_mask_dtype(name: str, mask: Tensor, like: Tensor) -> None:
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(
            f"{name} must be a bool mask or a float mask added to the scores, got dtype {mask.dtype}; "
            "convert integer 0/1 masks with mask.bool() after deciding which convention they follow"
        )


def _check_broadcast(name: str, mask: Tensor, target: tuple[int, ...], target_desc: str) -> None:
    try:
        shape = torch.broadcast_shapes(tuple(mask.shape), target)
    except RuntimeError:
        shape = None
    if shape != tuple(target):
        raise ValueError(
            f"{name} of shape {_shape(mask)} does not broadcast to the scores' shape "
            f"{tuple(target)} {target_desc}"
        )


# --------------------------------------------------------------------------- 1. additive attention
