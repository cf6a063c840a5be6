"""Argument checks shared by the modules: messages name the argument, what it got and what was expected."""

from __future__ import annotations

import operator


def check_int(name: str, value, minimum: int = 1) -> int:
    """`value` as an int >= minimum; accepts numpy and 0-d torch integers, never bools."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value
