"""Checks for notebook 08 (the Vision Transformer): 08.1 patchify, 08.2 add_cls_and_pos.

Contracts (the exercise notebook states them; solutions/08_vision_transformer.ipynb):

* ``patchify(images, patch_size) -> (B, N, C*p*p)``: images (B, C, H, W) cut
  into non-overlapping p x p patches, N = (H/p) * (W/p) in raster order (left
  to right, then top to bottom), each patch flattened in (C, p, p) order, the
  order in which a strided ``nn.Conv2d(C, E, p, stride=p)`` sees it;
  ValueError if H or W is not a multiple of p.
* ``add_cls_and_pos(patch_embeddings, cls_token, pos_embedding) -> (B, N+1, E)``:
  patch_embeddings (B, N, E); cls_token (1, 1, E) prepended to every image's
  sequence, then pos_embedding (1, N+1, E) added to every token, the class
  token's included (ViT paper, eq. 1).

Expected values come from ``course_lib.vit``. The misconceptions below are
wrong implementations used only to name what went wrong. The first call of each
checker uses sizes that are all different (C >= 2, p >= 2, H != W), so that every
wrong axis order gives different values and, where it can, a different shape.
"""

from __future__ import annotations

import torch

from ..vit import add_cls_and_pos as _pos_reference
from ..vit import patchify as _patch_reference
from .framework import CheckContext, Misconception, checker, fmt_shape

# =========================================================================== 08.1 patchify


def _grid(order):
    """A wrong patchify: cut (B, C, H, W) into (B, C, H/p, p, W/p, p) and let ``order`` flatten it."""
    def impl(images, patch_size):
        B, C, H, W = images.shape
        p = patch_size
        return order(images.reshape(B, C, H // p, p, W // p, p), B, C, H // p, W // p, p)  # (B, C, r, p, c, p)
    return impl


CHANNELS_LAST = Misconception(
    "patch flattened as (p, p, C)",
    "Inside each patch your values seem to be in (p, p, C) order, channels last. The contract (and a strided "
    "Conv2d's weight, of shape (E, C, p, p)) flattens a patch channel first: all pixels of channel 0, then "
    "channel 1... Check where the channel axis goes in your permute.",
    _grid(lambda x, B, C, r, c, p: x.permute(0, 2, 4, 3, 5, 1).reshape(B, r * c, C * p * p)),
)
COLUMN_MAJOR = Misconception(
    "patches in column-major order",
    "Your patches seem to come column by column (top to bottom, then left to right). Raster order reads "
    "the patches like a page: along the first row of patches from left to right, then the next row. "
    "The patch-row axis must come before the patch-column axis in your permute.",
    _grid(lambda x, B, C, r, c, p: x.permute(0, 4, 2, 1, 3, 5).reshape(B, r * c, C * p * p)),
)
TRANSPOSED_PIXELS = Misconception(
    "pixels of a patch transposed",
    "The pixels inside each patch seem transposed (column by column): within a patch, flatten row by row, "
    "the axis of the pixel's row before the axis of its column, as the image itself is stored.",
    _grid(lambda x, B, C, r, c, p: x.permute(0, 2, 4, 1, 5, 3).reshape(B, r * c, C * p * p)),
)
TRANSPOSED_BOTH = Misconception(
    "image transposed",
    "Your result seems to be the patchify of the transposed image: both the order of the patches and the "
    "pixels inside each patch go column by column. Keep the image's row axes before its column axes.",
    _grid(lambda x, B, C, r, c, p: x.permute(0, 4, 2, 1, 5, 3).reshape(B, r * c, C * p * p)),
)
PLAIN_RESHAPE = Misconception(
    "a reshape without permute",
    "Your tokens seem to be consecutive runs of the image's memory (a reshape to (B, N, C*p*p) with no "
    "permute): a run of C*p*p values covers parts of one or more pixel rows, not a p x p square, and mixes "
    "channels. Split H and W into (patch index, pixel in patch), then permute so that the two patch-index "
    "axes come first, before reshaping.",
    lambda images, patch_size: images.reshape(images.shape[0], -1, images.shape[1] * patch_size ** 2),
)
NO_CHANNEL_MOVE = Misconception(
    "channel axis left in front",
    "Your tokens seem to be cut from each channel separately, the channel axis left before the patch axes: "
    "a token must hold all C channels of one patch. Move the channel axis after the two patch-index axes.",
    _grid(lambda x, B, C, r, c, p: x.permute(0, 1, 2, 4, 3, 5).reshape(B, r * c, C * p * p)),
)
STRIDED_SPLIT = Misconception(
    "H and W split as (p, H/p)",
    "Each of your patches seems to gather pixels H/p apart, a strided grid spread over the whole image, "
    "not a p x p square of neighbours: splitting H into (p, H // p) makes the *second* factor the fast one. "
    "Split it as (H // p, p): patch row first, pixel row within the patch second (the same for W).",
    lambda images, patch_size: images.reshape(
        images.shape[0], images.shape[1], patch_size, images.shape[2] // patch_size, patch_size,
        images.shape[3] // patch_size).permute(0, 3, 5, 1, 2, 4).reshape(
        images.shape[0], -1, images.shape[1] * patch_size ** 2),
)
ONE_CHANNEL = Misconception(
    "only the first channel",
    "Your tokens seem to hold p*p values, one channel only: a token holds the patch in all C channels, "
    "C*p*p values (digits have C = 1, colour images C = 3).",
    lambda images, patch_size: _patch_reference(images[:, :1], patch_size),
)
SQUARE_N = Misconception(
    "N computed from H only",
    "Your number of patches seems to be (H/p)**2, as if every image were square: with H != W there are "
    "(H/p) * (W/p) patches. Take the number of patch columns from W.",
    lambda images, patch_size: images.reshape(images.shape[0], (images.shape[2] // patch_size) ** 2, -1),
)
def _square(side):
    """A patchify that assumes square images, taking the side from H (side=2) or W (side=3)."""
    def impl(images, patch_size):
        B, C, p, n = images.shape[0], images.shape[1], patch_size, images.shape[side] // patch_size
        x = images.reshape(B, C, n, p, n, p)  # fails unless H == W
        return x.permute(0, 2, 4, 1, 3, 5).reshape(B, n * n, C * p * p)
    return impl


SQUARE_GRID = Misconception(
    "assumes square images",
    "Your function seems to assume square images (H == W): the grid of patches is (H/p) rows by (W/p) "
    "columns, and the two can differ. Take the rows from H and the columns from W.",
    _square(2),
)
SQUARE_GRID_W = Misconception("assumes square images (side from W)", SQUARE_GRID.hint, _square(3))
CROPS = Misconception(
    "crops an indivisible image",
    "When H or W is not a multiple of patch_size the patches cannot tile the image: the contract asks for "
    "`raise ValueError(...)` with a message that names the sizes and the patch size. Dropping the last "
    "rows or columns (or padding) silently changes the image.",
)
NO_VALUE_ERROR = Misconception(
    "wrong exception for an indivisible size",
    "The contract asks for a ValueError when H or W is not a multiple of patch_size. An error that "
    "reshape happens to raise (RuntimeError) or an `assert` (AssertionError) is not it: test "
    "`H % patch_size` and `W % patch_size` yourself and `raise ValueError(...)` with a clear message.",
)
UNCLEAR_MESSAGE = Misconception(
    "ValueError without the sizes",
    "Your ValueError's message should say what was wrong and what was expected: put the image's height "
    "and width and the patch size in it (an f-string), so that the caller sees which number to fix.",
)

PATCH_MISCONCEPTIONS = [CHANNELS_LAST, COLUMN_MAJOR, TRANSPOSED_PIXELS, TRANSPOSED_BOTH, PLAIN_RESHAPE,
                        NO_CHANNEL_MOVE, STRIDED_SPLIT, ONE_CHANNEL, SQUARE_N, SQUARE_GRID, SQUARE_GRID_W]


def _images(t: CheckContext, B: int, C: int, rows: int, cols: int, p: int, dtype=torch.float32):
    images = t.randn(B, C, rows * p, cols * p, dtype=dtype)
    return images, f"patchify(images, {p}) for images of shape {fmt_shape(images.shape)}"


@checker("08.1", misconceptions=PATCH_MISCONCEPTIONS, mutation_weight=0.25)
def check_patchify(t: CheckContext, patchify) -> None:
    """Sub-checks of 08.1, cheap to deep."""
    # First call: C, p, rows, cols and B all different (C >= 2, p >= 2, rows != cols, so H != W):
    # every wrong axis order moves values, and a square-only N or a single channel changes the shape.
    C, p, rows, cols, B = t.random.sample(range(2, 7), 5)
    images0, what0 = _images(t, B, C, rows, cols, p)
    t.opening(patchify, (images0, p), what=what0, shapes=(B, rows * cols, C * p * p),
              shape_titles=["the output has shape (B, N, C*p*p) with N = (H/p) * (W/p)"])

    @t.subcheck("equals the reference: raster order of patches, each flattened as (C, p, p) "
                "(several sizes, square and not)", weight=1.5, essential=True)
    def _():
        c, q, r, s, b = t.random.sample(range(2, 7), 5)
        # (1, 2, 4, 4): the 8x8 digits in 2x2 patches; p = 1 (one pixel per token); one patch covering the image
        for case in [(B, C, rows, cols, p), (b, c, r, s, q), (b, 1, 4, 4, 2), (2, c, cols, rows, 3),
                     (b, C, r, s, 1), (1, c, 1, 1, q)]:
            images, what = _images(t, *case)
            t.compare(patchify, _patch_reference, (images, case[4]), what=what)

    images64, what64 = _images(t, B, C, cols, rows, p, dtype=torch.float64)
    t.float64_subcheck(patchify, _patch_reference, (images64, p), what=what64, exact=True,
                       title="keeps the input's dtype (float64 stays float64, values unchanged)")

    @t.subcheck("raises ValueError when H or W is not a multiple of patch_size", weight=0.5)
    def _():
        q = t.random.randint(2, 4)
        for H, W in ((q * rows + 1, q * cols), (q * rows, q * cols + q - 1)):  # H, then W, not divisible
            images = t.randn(B, C, H, W)
            what = f"patchify(images, {q}) for images of shape {fmt_shape(images.shape)}"
            exc = t.expect_raises(patchify, (images.clone(), q), ValueError, what, CROPS.hint, NO_VALUE_ERROR.hint)
            message = str(exc)
            if not (str(q) in message and (str(H) in message or str(W) in message)):
                t.fail(f"{what} raised ValueError({message[:80]!r}), whose message does not name the image's "
                       f"size and the patch size", UNCLEAR_MESSAGE.hint)

    images, what = _images(t, B, C, rows, cols, p)
    t.gradient_subcheck(patchify, _patch_reference, (images, p), what=what, wrt=(0,),
                        arg_names=("images", "patch_size"), weight=0.25, title="gradients flow back to the images")


# =========================================================================== 08.2 add_cls_and_pos


def _cat(cls_token, patch_embeddings):
    B, _, E = patch_embeddings.shape
    return torch.cat([cls_token.expand(B, 1, E), patch_embeddings], dim=1)  # (B, N+1, E)


CLS_AT_END = Misconception(
    "class token appended at the end",
    "Your class token seems to come last: the ViT prepends it, at position 0, so that it gets the first "
    "position embedding and the classifier reads token 0.",
    lambda x, cls, pos: torch.cat([x, cls.expand(x.shape[0], 1, x.shape[2])], dim=1) + pos,
)
POS_BEFORE_CLS = Misconception(
    "positions added to the patches only, before the class token",
    "Your positions seem to be added to the patches before the class token is prepended, so the class "
    "token gets no position embedding and the patches get shifted ones. Prepend the class token first, "
    "then add all N+1 position embeddings, the class token's (position 0) included.",
    lambda x, cls, pos: _cat(cls, x + pos[:, 1:]),
)
POS_BEFORE_CLS_SHIFTED = Misconception(
    "positions 0..N-1 added to the patches, then the class token",
    POS_BEFORE_CLS.hint,
    lambda x, cls, pos: _cat(cls, x + pos[:, :-1]),
)
POS_SHIFTED = Misconception(
    "positions shifted by one",
    "Your tokens seem to get the wrong position embeddings, shifted by one: pos_embedding has N+1 rows, "
    "row 0 for the class token and row k for patch k, and all of them are added to the N+1 tokens.",
    lambda x, cls, pos: _cat(cls, x) + torch.cat([pos[:, 1:], pos[:, :1]], dim=1),
)
NO_POS = Misconception(
    "no position embeddings",
    "Your result seems to have no position embeddings: after prepending the class token, add pos_embedding "
    "to every token.",
    lambda x, cls, pos: _cat(cls, x),
)
POS_TWICE = Misconception(
    "position embeddings added twice",
    "Your position embeddings seem to be added twice: add pos_embedding to the N+1 tokens once.",
    lambda x, cls, pos: _cat(cls, x) + 2 * pos,
)
POS_TWICE_PATCHES = Misconception(
    "position embeddings added to the patches twice",
    POS_TWICE.hint,
    lambda x, cls, pos: _cat(cls, x + pos[:, 1:]) + pos,
)
CLS_TIMES_POS = Misconception(
    "class token multiplied by its position",
    "Your class token seems to be multiplied by its position embedding: embeddings are added, to every "
    "token, the class token included.",
    lambda x, cls, pos: torch.cat([cls.expand(x.shape[0], 1, x.shape[2]) * pos[:, :1], x + pos[:, 1:]], dim=1),
)
FIRST_REPLACED = Misconception(
    "first patch replaced by the class token",
    "Your class token seems to replace the first patch instead of being added in front of the sequence: "
    "the result has N+1 tokens, the class token then all N patches.",
    lambda x, cls, pos: _cat(cls, x[:, 1:]) + pos[:, 1:],
)
FIRST_REPLACED_POS = Misconception(
    "first patch replaced, positions 0..N-1",
    FIRST_REPLACED.hint,
    lambda x, cls, pos: _cat(cls, x[:, 1:]) + pos[:, :-1],
)
CLS_ADDED = Misconception(
    "class token added to every patch",
    "Your class token seems to be added to the patch embeddings instead of prepended as a token of its "
    "own: concatenate it in front of the sequence (torch.cat along the token axis), which gives N+1 tokens.",
    lambda x, cls, pos: x + cls + pos[:, 1:],
)
CLS_NOT_EXPANDED = Misconception(
    "class token not expanded to the batch",
    "torch.cat needs the same batch size in every piece: cls_token is (1, 1, E), one vector shared by all "
    "images, so give it the batch size first (cls_token.expand(B, -1, -1) or .repeat(B, 1, 1)). It works "
    "for B = 1 only by luck.",
    lambda x, cls, pos: torch.cat([cls, x], dim=1) + pos,
    error=r"Sizes of tensors must match except in dimension 1",
)

POS_MISCONCEPTIONS = [CLS_AT_END, POS_BEFORE_CLS, POS_BEFORE_CLS_SHIFTED, POS_SHIFTED, NO_POS, POS_TWICE,
                      POS_TWICE_PATCHES, CLS_TIMES_POS, FIRST_REPLACED, FIRST_REPLACED_POS, CLS_ADDED, CLS_NOT_EXPANDED]


def _tokens(t: CheckContext, B: int, N: int, E: int, dtype=torch.float32):
    args = (t.randn(B, N, E, dtype=dtype), t.randn(1, 1, E, dtype=dtype), t.randn(1, N + 1, E, dtype=dtype))
    return args, f"add_cls_and_pos for patch_embeddings of shape {fmt_shape((B, N, E))}"


@checker("08.2", misconceptions=POS_MISCONCEPTIONS, mutation_weight=0.25)
def check_add_cls_and_pos(t: CheckContext, add_cls_and_pos) -> None:
    """Sub-checks of 08.2, cheap to deep."""
    B, N, E = t.random.sample(range(2, 8), 3)
    args0, what0 = _tokens(t, B, N, E)
    t.opening(add_cls_and_pos, args0, what=what0, shapes=(B, N + 1, E),
              shape_titles=["the output has shape (B, N+1, E)"])

    @t.subcheck("equals the reference: class token first, then the N+1 position embeddings added "
                "(several sizes, batch 1 too)", weight=1.0, essential=True)
    def _():
        b, n, e = t.sizes(3)
        for case in [(B, N, E), (b, n, e), (1, N, E), (b, 1, e), (3, 16, 32)]:
            args, what = _tokens(t, *case)
            t.compare(add_cls_and_pos, _pos_reference, args, what=what)

    args64, what64 = _tokens(t, N, B, E, dtype=torch.float64)
    t.float64_subcheck(add_cls_and_pos, _pos_reference, args64, what=what64)

    args, what = _tokens(t, B, N, E)
    t.gradient_subcheck(add_cls_and_pos, _pos_reference, args, what=what, wrt=(0, 1, 2),
                        arg_names=("patch_embeddings", "cls_token", "pos_embedding"), weight=0.5,
                        title="gradients reach the patches, the class token and the position embeddings "
                              "(both are learned)")
