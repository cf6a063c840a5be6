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


def shape_text(shape) -> str:
    """``(2, 3)`` for a shape, as the error messages write it."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_shapes(floating: tuple[str, ...] = (), dims: dict[str, str] | None = None,
                 dtype_error: type[Exception] = TypeError, **specs) -> dict[str, int]:
    """Check tensor arguments against a shape spec written as in the docstring::

        check_shapes(query=(query, "B Hd"), keys=(keys, "B S Hk"), floating=("query", "keys"))

    A spec is dimension names separated by spaces; a name used twice must have one size
    everywhere; a number is a fixed size; a leading ``...`` allows any leading dimensions.
    Tensors named in ``floating`` must be floating point; ``dims`` gives a dimension a
    longer name for the messages ("E": "feature size E"). Raises TypeError or ValueError
    naming the argument, what it got and what was expected (``dtype_error`` for a tensor
    that is not floating point, where a module's contract says ValueError); returns
    {name: size}.
    """
    import torch

    dims = dims or {}
    sizes: dict[str, tuple[int, str, object]] = {}  # dimension name -> (size, argument, shape)
    for name, (value, spec) in specs.items():
        letters = spec.split()
        leading = bool(letters) and letters[0] == "..."
        letters = letters[1:] if leading else letters
        want = "(" + ", ".join((["..."] if leading else []) + letters) + (",)" if len(letters) == 1 and not leading
                                                                         else ")")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape {want}, got {type(value).__name__}")
        shape = tuple(value.shape)
        if leading and len(shape) < len(letters):
            raise ValueError(f"{name} must have at least {len(letters)} dimensions, of shape {want}, "
                             f"got shape {shape_text(shape)}")
        if not leading and len(shape) != len(letters):
            raise ValueError(f"{name} must be {len(letters)}-D, of shape {want}, got shape {shape_text(shape)}")
        if name in floating and not value.is_floating_point():
            raise dtype_error(f"{name} must be a floating-point tensor of shape {want}, got dtype {value.dtype}")
        for letter, size in zip(letters, shape[len(shape) - len(letters):]):
            if letter.isdigit():
                if size != int(letter):
                    raise ValueError(f"{name} must have shape {want}, got shape {shape_text(shape)}")
            elif letter in sizes and sizes[letter][0] != size:
                first, first_name, first_shape = sizes[letter]
                raise ValueError(f"{first_name} {shape_text(first_shape)} and {name} {shape_text(shape)} must have "
                                 f"the same {dims.get(letter, letter)}: expected {name} of shape {want} with "
                                 f"{letter} = {first}, got {size}")
            else:
                sizes.setdefault(letter, (size, name, shape))
    return {letter: size for letter, (size, _, _) in sizes.items()}


def describe(x) -> str:
    """``torch.float32 tensor of shape (2, 3)``, or the type name of a non-tensor, for error messages."""
    import torch

    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {shape_text(x.shape)}"
    return type(x).__name__


def check_source_batch(src, src_lengths) -> None:
    """A padded batch of source ids for an encoder-decoder: src LongTensor (B, S), src_lengths (B,) in 1..S."""
    import torch

    if not isinstance(src, torch.Tensor) or src.dim() != 2 or src.dtype != torch.long:
        raise ValueError(f"src must be a LongTensor (B, S) of token ids, got {describe(src)}")
    if not isinstance(src_lengths, torch.Tensor) or src_lengths.shape != src.shape[:1]:
        raise ValueError(f"src_lengths must be a tensor ({src.shape[0]},) of source lengths, got "
                         f"{describe(src_lengths)}")
    if src.shape[1] == 0 or bool((src_lengths < 1).any()) or bool((src_lengths > src.shape[1]).any()):
        raise ValueError(f"src_lengths must lie in 1..{src.shape[1]} (the width of src), got "
                         f"{src_lengths.tolist()}")
