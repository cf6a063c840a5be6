"""Catalogue for exercises 08.1 (patchify) and 08.2 (add_cls_and_pos): common wrong answers, each rejected
with its hint, and valid variants, each accepted with full points.

The wrong answers are written as a learner would write them (not the checker's own misconception
implementations) and double as the instructor's list of misconceptions (docs/instructor.md).
"""

import pytest
import torch
import torch.nn.functional as F
from catalogue import assert_full_points, assert_rejected, not_implemented

from course_lib.checks import NOT_IMPLEMENTED, run_check

SEEDS = (0, 1)


@pytest.mark.parametrize("exercise_id", ["08.1", "08.2"])
def test_stub_is_not_implemented_yet_with_zero_points(exercise_id):
    result = run_check(exercise_id, not_implemented, seed=0)
    assert not result.passed and result.points == 0
    assert result.messages[0] == NOT_IMPLEMENTED


# =============================================================================== 08.1 patchify


def _divisible(images, p):
    B, C, H, W = images.shape
    if H % p or W % p:
        raise ValueError(f"image size {H}x{W} is not divisible by patch_size={p}")
    return B, C, H, W


def channels_last(images, patch_size):
    B, C, H, W = _divisible(images, patch_size)
    p = patch_size
    x = images.permute(0, 2, 3, 1)  # (B, H, W, C), "like an image library"
    x = x.reshape(B, H // p, p, W // p, p, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, -1, p * p * C)


def column_major(images, patch_size):
    B, _C, H, W = _divisible(images, patch_size)
    p = patch_size
    patches = []
    for j in range(W // p):  # columns in the outer loop
        for i in range(H // p):
            patches.append(images[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(B, -1))
    return torch.stack(patches, dim=1)


def plain_reshape(images, patch_size):
    B, C, H, W = _divisible(images, patch_size)
    return images.reshape(B, (H // patch_size) * (W // patch_size), C * patch_size * patch_size)


def wrong_permute(images, patch_size):  # the channel axis left in front of the patch axes
    B, C, H, W = _divisible(images, patch_size)
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def transposed_pixels(images, patch_size):  # p_w before p_h
    B, C, H, W = _divisible(images, patch_size)
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 5, 3)
    return x.reshape(B, -1, C * p * p)


def split_p_first(images, patch_size):  # view(B, C, p, H // p, ...): strided "patches"
    B, C, H, W = _divisible(images, patch_size)
    p = patch_size
    x = images.view(B, C, p, H // p, p, W // p).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(B, -1, C * p * p)


def crops(images, patch_size):  # silently drops the last rows and columns
    B, C, H, W = images.shape
    p = patch_size
    images = images[:, :, :H - H % p, :W - W % p]
    H, W = images.shape[-2:]
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, -1, C * p * p)


def asserts(images, patch_size):  # an assert instead of a ValueError
    B, C, H, W = images.shape
    p = patch_size
    assert H % p == 0 and W % p == 0
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, -1, C * p * p)


def no_check(images, patch_size):  # lets reshape fail with a RuntimeError
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, -1, C * p * p)


def vague_error(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError("bad input")
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, -1, C * p * p)


def square_only(images, patch_size):
    B, C, H, _W = _divisible(images, patch_size)
    p, n = patch_size, H // patch_size
    x = images.reshape(B, C, n, p, n, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, n * n, C * p * p)


def square_n(images, patch_size):
    B, _C, H, _W = _divisible(images, patch_size)
    N = (H // patch_size) ** 2
    return images.reshape(B, N, -1)


def first_channel_only(images, patch_size):
    B, _C, H, W = _divisible(images, patch_size)
    p = patch_size
    x = images[:, 0].reshape(B, H // p, p, W // p, p).permute(0, 1, 3, 2, 4)
    return x.reshape(B, -1, p * p)


def image_transposed(images, patch_size):  # W read as the row axis: (B, C, W, H) patchified
    return patch_ok(images.transpose(2, 3), patch_size)


_CACHE = {}


def cached_answer(images, patch_size):  # hard-codes the first answer it computed
    if "out" not in _CACHE:
        from course_lib.vit import patchify
        _CACHE["out"] = patchify(images, patch_size)
    return _CACHE["out"].clone()


PATCH_WRONG = {
    "channels last (p, p, C)": (channels_last, "(p, p, C) order"),
    "column-major patch order": (column_major, "column by column (top to bottom"),
    "reshape without permute": (plain_reshape, "no permute"),
    "permute of the wrong axes": (wrong_permute, "channel axis left before the patch axes"),
    "transposed pixels (p_w before p_h)": (transposed_pixels, "pixels inside each patch seem transposed"),
    "the transposed image": (image_transposed, "patchify of the transposed image"),
    "H split as (p, H/p)": (split_p_first, "strided grid"),
    "crops instead of raising": (crops, "Dropping the last rows or columns"),
    "assert instead of ValueError": (asserts, "or an `assert` (AssertionError) is not it"),
    "RuntimeError from reshape": (no_check, "An error that reshape happens to raise"),
    "ValueError without the sizes": (vague_error, "put the image's height and width and the patch size"),
    "square images only": (square_only, "assume square images"),
    "N from H only": (square_n, "(H/p)**2, as if every image were square"),
    "first channel only": (first_channel_only, "one channel only"),
    "hard-coded answer": (cached_answer, "Compare your steps with the formula"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(PATCH_WRONG))
def test_patchify_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = PATCH_WRONG[name]
    _CACHE.clear()
    assert_rejected("08.1", fn, hint, seed, name)


def test_patchify_mutating_the_images_is_reported():
    def normalises_in_place(images, patch_size):
        B, C, H, W = _divisible(images, patch_size)
        p = patch_size
        images -= images.mean()
        return images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)

    result = run_check("08.1", normalises_in_place, seed=0)
    assert not result.passed and result.points < result.max_points


def test_patchify_with_f_unfold_is_flagged_by_the_grader():
    from course_lib.checks.grading import load_definitions, work_problems

    source = ("import torch.nn.functional as F\n"
              "def patchify(images, patch_size):\n"
              "    return F.unfold(images, patch_size, stride=patch_size).transpose(1, 2)\n")
    namespace, rejected = load_definitions({"source": source}, [])
    assert rejected == {}
    assert work_problems("08.1", source, namespace)


def patch_ok(images, patch_size):
    B, C, H, W = _divisible(images, patch_size)
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def patch_tensor_unfold(images, patch_size):  # Tensor.unfold stays allowed
    B, C, _H, _W = _divisible(images, patch_size)
    p = patch_size
    x = images.unfold(2, p, p).unfold(3, p, p)  # (B, C, rows, cols, p, p)
    return x.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * p * p)


def patch_loops(images, patch_size):
    _B, _C, H, W = _divisible(images, patch_size)
    p = patch_size
    tokens = [images[:, :, i:i + p, j:j + p].flatten(1) for i in range(0, H, p) for j in range(0, W, p)]
    return torch.stack(tokens, dim=1)


def patch_conv_identity(images, patch_size):  # a strided conv whose kernels pick one input value each
    _B, C, _H, _W = _divisible(images, patch_size)
    p = patch_size
    eye = torch.eye(C * p * p, dtype=images.dtype).reshape(C * p * p, C, p, p)
    return F.conv2d(images, eye, stride=p).flatten(2).transpose(1, 2)  # (B, N, C*p*p)


PATCH_VALID = [patch_ok, patch_tensor_unfold, patch_loops, patch_conv_identity]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", PATCH_VALID)
def test_patchify_valid_variant_gets_full_points(fn, seed):
    assert_full_points("08.1", fn, seed, fn.__name__)


def test_patchify_reference_passes():
    from course_lib.vit import patchify
    assert_full_points("08.1", patchify, 2, "course_lib.vit.patchify")


# =============================================================================== 08.2 add_cls_and_pos


def _cls(cls_token, B):
    return cls_token.expand(B, -1, -1)


def cls_at_end(patch_embeddings, cls_token, pos_embedding):
    B = patch_embeddings.shape[0]
    return torch.cat([patch_embeddings, _cls(cls_token, B)], dim=1) + pos_embedding


def pos_before_concat(patch_embeddings, cls_token, pos_embedding):
    x = patch_embeddings + pos_embedding[:, 1:]
    return torch.cat([_cls(cls_token, x.shape[0]), x], dim=1)


def pos_sliced_to_n(patch_embeddings, cls_token, pos_embedding):
    N = patch_embeddings.shape[1]
    x = patch_embeddings + pos_embedding[:, :N]
    return torch.cat([_cls(cls_token, x.shape[0]), x], dim=1)


def cls_not_expanded(patch_embeddings, cls_token, pos_embedding):
    return torch.cat([cls_token, patch_embeddings], dim=1) + pos_embedding


def cls_times_pos(patch_embeddings, cls_token, pos_embedding):
    B = patch_embeddings.shape[0]
    cls = _cls(cls_token, B) * pos_embedding[:, :1]
    return torch.cat([cls, patch_embeddings + pos_embedding[:, 1:]], dim=1)


def first_patch_replaced(patch_embeddings, cls_token, pos_embedding):
    x = patch_embeddings.clone()
    x[:, 0] = cls_token[:, 0]
    return x + pos_embedding[:, 1:]


def pos_twice(patch_embeddings, cls_token, pos_embedding):
    x = torch.cat([_cls(cls_token, patch_embeddings.shape[0]), patch_embeddings + pos_embedding[:, 1:]], dim=1)
    return x + pos_embedding


def no_pos(patch_embeddings, cls_token, pos_embedding):
    return torch.cat([_cls(cls_token, patch_embeddings.shape[0]), patch_embeddings], dim=1)


def cls_added_to_patches(patch_embeddings, cls_token, pos_embedding):
    return patch_embeddings + cls_token + pos_embedding[:, 1:]


def in_place(patch_embeddings, cls_token, pos_embedding):
    patch_embeddings += pos_embedding[:, 1:]
    cls = _cls(cls_token, patch_embeddings.shape[0]) + pos_embedding[:, :1]
    return torch.cat([cls, patch_embeddings], dim=1)


def detached_cls(patch_embeddings, cls_token, pos_embedding):
    cls = _cls(cls_token.detach(), patch_embeddings.shape[0])
    return torch.cat([cls, patch_embeddings], dim=1) + pos_embedding


def pos_data(patch_embeddings, cls_token, pos_embedding):
    return torch.cat([_cls(cls_token, patch_embeddings.shape[0]), patch_embeddings], dim=1) + pos_embedding.data


POS_WRONG = {
    "class token at the end": (cls_at_end, "class token seems to come last"),
    "positions before the class token": (pos_before_concat, "before the class token is prepended"),
    "pos_embedding[:, :N] before the class token": (pos_sliced_to_n, "before the class token is prepended"),
    "class token not expanded": (cls_not_expanded, "give it the batch size first"),
    "class token times its position": (cls_times_pos, "multiplied by its position embedding"),
    "first patch replaced": (first_patch_replaced, "replace the first patch"),
    "positions twice": (pos_twice, "added twice"),
    "no positions": (no_pos, "no position embeddings"),
    "class token added to the patches": (cls_added_to_patches, "prepended as a token of its own"),
    "in-place on the input": (in_place, "An in-place operation"),
    "cls_token.detach()": (detached_cls, "no .detach(), no .data"),
    "pos_embedding.data": (pos_data, "no .detach(), no .data"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(POS_WRONG))
def test_add_cls_and_pos_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = POS_WRONG[name]
    assert_rejected("08.2", fn, hint, seed, name)


def pos_ok(patch_embeddings, cls_token, pos_embedding):
    B, _N, E = patch_embeddings.shape
    x = torch.cat([cls_token.expand(B, 1, E), patch_embeddings], dim=1)  # (B, N+1, E)
    return x + pos_embedding


def pos_repeat_first(patch_embeddings, cls_token, pos_embedding):  # positions added piecewise, then joined
    B = patch_embeddings.shape[0]
    cls = cls_token.repeat(B, 1, 1) + pos_embedding[:, :1]
    return torch.cat((cls, patch_embeddings + pos_embedding[:, 1:]), 1)


def pos_new_tensor(patch_embeddings, cls_token, pos_embedding):  # fills a new tensor (autograd follows)
    B, N, E = patch_embeddings.shape
    x = patch_embeddings.new_zeros(B, N + 1, E)
    x[:, 0] = cls_token[0, 0]
    x[:, 1:] = patch_embeddings
    return x + pos_embedding[0]


def pos_float64_inside(patch_embeddings, cls_token, pos_embedding):
    dtype = patch_embeddings.dtype
    x = torch.cat([cls_token.double().expand(patch_embeddings.shape[0], -1, -1), patch_embeddings.double()], 1)
    return (x + pos_embedding.double()).to(dtype)


POS_VALID = [pos_ok, pos_repeat_first, pos_new_tensor, pos_float64_inside]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", POS_VALID)
def test_add_cls_and_pos_valid_variant_gets_full_points(fn, seed):
    assert_full_points("08.2", fn, seed, fn.__name__)


def test_add_cls_and_pos_reference_passes():
    from course_lib.vit import add_cls_and_pos
    assert_full_points("08.2", add_cls_and_pos, 2, "course_lib.vit.add_cls_and_pos")
