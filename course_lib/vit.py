"""The Vision Transformer (Dosovitskiy et al. 2020) and a small CNN to compare it with (notebook 08).

Ordered by dependency:

1. ``patchify`` / ``unpatchify`` / ``shuffle_patches``: an image as a
   sequence of flattened patches ("an image is worth 16x16 words"; here the
   8x8 digits are worth 4x4 words of 2x2 pixels).
2. ``PatchEmbedding``: one linear map per patch, which is exactly a Conv2d
   whose kernel and stride are the patch size (``as_conv`` builds it).
3. ``add_cls_and_pos``: prepend the class token, add the position embeddings
   (ViT paper, eq. 1).
4. ``ViTConfig`` and ``ViT``: patches -> tokens -> ``course_lib.transformer.
   EncoderBlock`` x num_layers -> LayerNorm of the class token -> classes.
5. ``CNNConfig`` and ``SmallCNN``: the baseline with a similar number of
   parameters, built from the two priors the ViT lacks (locality and
   translation equivariance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._validate import check_int as _check_int
from .transformer import EncoderBlock

__all__ = [
    "CNNConfig",
    "PatchEmbedding",
    "SmallCNN",
    "ViT",
    "ViTConfig",
    "add_cls_and_pos",
    "patchify",
    "shuffle_patches",
    "unpatchify",
]


def _check_images(images, name: str = "images") -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a float tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    return images


# --------------------------------------------------------------------------- 1. patches as tokens


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping square patches and flatten each: (B, C, H, W) -> (B, N, C*p*p).

    N = (H/p) * (W/p) patches in raster order (left to right, then top to
    bottom); each patch is flattened in (C, p, p) order, the order in which
    ``nn.Conv2d(C, E, kernel_size=p, stride=p)`` sees it, so that a linear map
    on these vectors is that convolution (ViT paper, sec. 3.1, "hybrid" note).
    ValueError if H or W is not a multiple of p.
    """
    images = _check_images(images)
    p = _check_int("patch_size", patch_size)
    B, C, H, W = images.shape
    if H % p or W % p:
        raise ValueError(f"the image size {H}x{W} must be divisible by patch_size = {p} "
                         f"(images of shape {tuple(images.shape)})")
    x = images.reshape(B, C, H // p, p, W // p, p)  # (B, C, rows, p, cols, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, N, C*p*p)


def unpatchify(patches: Tensor, patch_size: int, image_shape: tuple[int, int, int]) -> Tensor:
    """The inverse of :func:`patchify`: (B, N, C*p*p) -> (B, C, H, W) for image_shape = (C, H, W)."""
    C, H, W = image_shape
    p = _check_int("patch_size", patch_size)
    if H % p or W % p:
        raise ValueError(f"the image size {H}x{W} must be divisible by patch_size = {p}")
    B, N, D = patches.shape
    if N != (H // p) * (W // p) or D != C * p * p:
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not fit images {image_shape} cut into "
                         f"{p}x{p} patches: expected (B, {(H // p) * (W // p)}, {C * p * p})")
    x = patches.reshape(B, H // p, W // p, C, p, p)  # (B, rows, cols, C, p, p)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)  # (B, C, H, W)


def shuffle_patches(images: Tensor, patch_size: int, order: Tensor) -> Tensor:
    """Images whose patches are moved around: patch k of the result is patch order[k] of the input.

    images (B, C, H, W), order (N,) a permutation of range(N), or (B, N) one
    permutation per image -> (B, C, H, W). Pixels inside a patch stay put.
    """
    images = _check_images(images)
    patches = patchify(images, patch_size)  # (B, N, C*p*p)
    B, N, _ = patches.shape
    order = torch.as_tensor(order, device=images.device).long()
    if order.shape not in ((N,), (B, N)) or not torch.equal(order.sort(dim=-1).values,
                                                            torch.arange(N, device=order.device).expand_as(order)):
        raise ValueError(f"order must be a permutation of range({N}) of shape ({N},) or ({B}, {N}), "
                         f"got shape {tuple(order.shape)}")
    index = order.expand(B, N)[..., None].expand_as(patches)  # (B, N, C*p*p)
    return unpatchify(patches.gather(1, index), patch_size, tuple(images.shape[1:]))


# --------------------------------------------------------------------------- 2. patch embedding


class PatchEmbedding(nn.Module):
    """Linear projection of flattened patches (ViT paper, eq. 1, the matrix E): (B, C, H, W) -> (B, N, d_model).

    ``self.proj`` is an nn.Linear(C*p*p, d_model) applied to :func:`patchify`'s
    vectors. It computes exactly what ``nn.Conv2d(C, d_model, p, stride=p)``
    computes, flattened in raster order; :meth:`as_conv` returns that Conv2d
    with the same weights.
    """

    def __init__(self, in_channels: int, patch_size: int, d_model: int):
        super().__init__()
        self.in_channels = _check_int("in_channels", in_channels)
        self.patch_size = _check_int("patch_size", patch_size)
        self.proj = nn.Linear(in_channels * patch_size**2, _check_int("d_model", d_model))

    def forward(self, images: Tensor) -> Tensor:
        images = _check_images(images)
        if images.shape[1] != self.in_channels:
            raise ValueError(f"images have {images.shape[1]} channels (shape {tuple(images.shape)}), "
                             f"expected in_channels = {self.in_channels}")
        return self.proj(patchify(images, self.patch_size))  # (B, N, E)

    def as_conv(self) -> nn.Conv2d:
        """The equivalent strided convolution, with a copy of this module's weights."""
        p, C, E = self.patch_size, self.in_channels, self.proj.out_features
        conv = nn.Conv2d(C, E, kernel_size=p, stride=p)
        with torch.no_grad():
            conv.weight.copy_(self.proj.weight.reshape(E, C, p, p))  # (E, C*p*p) -> (E, C, p, p)
            conv.bias.copy_(self.proj.bias)
        return conv.to(self.proj.weight.device)


# --------------------------------------------------------------------------- 3. class token and positions


def add_cls_and_pos(patch_embeddings: Tensor, cls_token: Tensor, pos_embedding: Tensor | None) -> Tensor:
    """z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos (ViT paper, eq. 1).

    patch_embeddings (B, N, E); cls_token (1, 1, E), the same learned vector
    for every image, prepended at position 0; pos_embedding (1, N+1, E) added
    to every token, the class token included (None: no positions) -> (B, N+1, E).
    """
    B, N, E = patch_embeddings.shape
    if cls_token.shape != (1, 1, E):
        raise ValueError(f"cls_token must have shape (1, 1, {E}), got {tuple(cls_token.shape)}")
    x = torch.cat([cls_token.expand(B, 1, E), patch_embeddings], dim=1)  # (B, N+1, E)
    if pos_embedding is None:
        return x
    if pos_embedding.shape != (1, N + 1, E):
        raise ValueError(f"pos_embedding must have shape (1, N+1, E) = (1, {N + 1}, {E}), "
                         f"got {tuple(pos_embedding.shape)}")
    return x + pos_embedding  # (B, N+1, E)


# --------------------------------------------------------------------------- 4. the Vision Transformer


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of :class:`ViT`. The defaults are notebook 08's model (8x8 digits, 2x2 patches).

    positional: True adds learned position embeddings; False leaves the
    tokens a bag of patches (the model is then blind to where a patch is).
    """

    image_size: int = 8
    patch_size: int = 2
    in_channels: int = 1
    num_classes: int = 10
    d_model: int = 32
    num_heads: int = 4
    num_layers: int = 4
    d_ff: int = 64
    dropout: float = 0.0
    positional: bool = True

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_channels", "num_classes", "d_model", "num_heads",
                     "num_layers", "d_ff"):
            _check_int(name, getattr(self, name))
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size = {self.image_size} must be divisible by patch_size = {self.patch_size}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model = {self.d_model} must be divisible by num_heads = {self.num_heads}")
        if not isinstance(self.positional, bool):
            raise TypeError(f"positional must be a bool, got {type(self.positional).__name__} {self.positional!r}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class ViT(nn.Module):
    """Vision Transformer (Dosovitskiy et al. 2020, eqs. 1-4), pre-LayerNorm encoder.

    images (B, C, H, W) -> logits (B, num_classes):

        z_0 = add_cls_and_pos(PatchEmbedding(images), cls_token, pos_embedding)   (B, N+1, E)
        z_l = EncoderBlock(z_{l-1}),  l = 1..num_layers                             (B, N+1, E)
        y   = head(LayerNorm(z_L[:, 0]))                                            (B, num_classes)

    The blocks are ``course_lib.transformer.EncoderBlock`` (notebook 06).
    ``forward(images, need_weights=True)`` returns (logits, attentions) with
    attentions a list of num_layers tensors (B, H, N+1, N+1), token 0 being
    the class token, as each block computes them (``EncoderBlock.
    forward_with_weights``: the teaching attention path, equal to the fast one).
    """

    def __init__(self, config: ViTConfig = ViTConfig()):
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"config must be a ViTConfig, got {type(config).__name__}")
        self.config = c = config
        self.patch_embed = PatchEmbedding(c.in_channels, c.patch_size, c.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos_embedding = (nn.Parameter(torch.randn(1, c.num_patches + 1, c.d_model) * 0.02)
                              if c.positional else None)
        self.blocks = nn.ModuleList(EncoderBlock(c.d_model, c.num_heads, c.d_ff, dropout=c.dropout, norm_first=True)
                                    for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def tokens(self, images: Tensor) -> Tensor:
        """The encoder's input z_0: (B, C, H, W) -> (B, N+1, E)."""
        c = self.config
        if tuple(images.shape[1:]) != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"images must have shape (B, {c.in_channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(images.shape)}")
        return add_cls_and_pos(self.patch_embed(images), self.cls_token, self.pos_embedding)  # (B, N+1, E)

    def forward(self, images: Tensor, need_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        x = self.tokens(_check_images(images))  # (B, N+1, E)
        attentions = []
        for block in self.blocks:
            x, weights = block.forward_with_weights(x, need_weights=need_weights)  # (B, N+1, E), (B, H, N+1, N+1)
            attentions.append(weights)
        logits = self.head(self.norm(x[:, 0]))  # (B, num_classes): the class token only
        return (logits, attentions) if need_weights else logits


# --------------------------------------------------------------------------- 5. the CNN baseline


@dataclass(frozen=True)
class CNNConfig:
    """Hyper-parameters of :class:`SmallCNN`: two 3x3 conv blocks with max-pooling, then a linear classifier."""

    in_channels: int = 1
    num_classes: int = 10
    channels: tuple[int, int] = (32, 96)
    image_size: int = 8

    def __post_init__(self):
        _check_int("in_channels", self.in_channels)
        _check_int("num_classes", self.num_classes)
        if len(self.channels) != 2:
            raise ValueError(f"channels must hold two ints (one per conv block), got {self.channels!r}")
        for c in self.channels:
            _check_int("channels", c)
        if self.image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 (two 2x2 poolings), got {self.image_size}")


class SmallCNN(nn.Module):
    """A small convolutional network: (B, C, H, W) -> logits (B, num_classes).

    conv3x3 -> ReLU -> maxpool2 -> conv3x3 -> ReLU -> maxpool2 -> flatten -> linear.
    Each output pixel sees only a 3x3 neighbourhood (locality), and the same
    filter slides over the whole image (translation equivariance): the priors
    about images that the ViT has to learn from data.
    """

    def __init__(self, config: CNNConfig = CNNConfig()):
        super().__init__()
        if not isinstance(config, CNNConfig):
            raise TypeError(f"config must be a CNNConfig, got {type(config).__name__}")
        self.config = c = config
        c1, c2 = c.channels
        self.features = nn.Sequential(
            nn.Conv2d(c.in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, H/2, W/2)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, H/4, W/4)
        )
        self.head = nn.Linear(c2 * (c.image_size // 4) ** 2, c.num_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = self.features(_check_images(images))  # (B, c2, H/4, W/4)
        return self.head(x.flatten(1))  # (B, num_classes)
