"""course_lib._validate.check_shapes: argument checks that read like the docstring's shape
spec, with messages that name the argument, what it got and what was expected."""

import pytest
import torch

from course_lib import attention as A
from course_lib._validate import check_shapes


def test_sizes_are_returned_and_shared_letters_must_agree():
    q, k = torch.randn(2, 3), torch.randn(2, 5, 4)
    assert check_shapes(query=(q, "B Hd"), keys=(k, "B S Hk")) == {"B": 2, "Hd": 3, "S": 5, "Hk": 4}
    with pytest.raises(ValueError, match=r"query \(2, 3\) and keys \(3, 5, 4\) must have the same batch size B: "
                                         r"expected keys of shape \(B, S, Hk\) with B = 2, got 3"):
        check_shapes(query=(q, "B Hd"), keys=(torch.randn(3, 5, 4), "B S Hk"), dims={"B": "batch size B"})


@pytest.mark.parametrize("value, spec, error, match", [
    ([1, 2], "B S", TypeError, r"x must be a torch.Tensor of shape \(B, S\), got list"),
    (torch.randn(2), "B S", ValueError, r"x must be 2-D, of shape \(B, S\), got shape \(2\)"),
    (torch.randn(2), "... L E", ValueError, r"x must have at least 2 dimensions, of shape \(\.\.\., L, E\)"),
    (torch.ones(2, 3, dtype=torch.long), "B S", TypeError, r"x must be a floating-point tensor .* torch.int64"),
    (torch.randn(2, 3), "B 4", ValueError, r"x must have shape \(B, 4\), got shape \(2, 3\)"),
])
def test_messages_say_what_was_wrong_and_what_was_expected(value, spec, error, match):
    with pytest.raises(error, match=match):
        check_shapes(x=(value, spec), floating=("x",))


def test_the_attention_functions_use_it():
    with pytest.raises(ValueError, match=r"W_k \(5, 4\) .*same Hk"):
        A.additive_scores(torch.randn(2, 3), torch.randn(2, 6, 4), torch.randn(3, 4), torch.randn(5, 4),
                          torch.randn(4))
    with pytest.raises(ValueError, match="same feature size E"):
        A.multi_head_attention(*(torch.randn(2, 3, 8) for _ in range(3)), *(torch.randn(8, 8) for _ in range(3)),
                               torch.randn(6, 6), 2)
