"""course_lib.vit: patches, the strided-convolution identity, class token and positions, the ViT, the CNN."""

import pytest
import torch
from torch import nn

from course_lib import experiments
from course_lib.train import count_parameters
from course_lib.vit import (
    CNNConfig,
    PatchEmbedding,
    SmallCNN,
    ViT,
    ViTConfig,
    add_cls_and_pos,
    patchify,
    shuffle_patches,
    unpatchify,
)

SMALL = ViTConfig(d_model=16, num_heads=2, num_layers=2, d_ff=32)


def test_patchify_cuts_raster_order_patches_flattened_channel_first():
    images = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)  # C=2, H=W=4
    patches = patchify(images, 2)
    assert patches.shape == (1, 4, 8)
    # patch 1 is the top-right 2x2 block: channel 0's four pixels, then channel 1's
    assert patches[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]
    # patch 2 is the bottom-left block (raster order: left to right, then down)
    assert patches[0, 2].tolist() == [8, 9, 12, 13, 24, 25, 28, 29]


@pytest.mark.parametrize("channels, height, width, p", [(1, 8, 8, 2), (3, 8, 12, 4), (2, 6, 4, 1), (1, 8, 8, 8)])
def test_patch_embedding_equals_a_strided_convolution(channels, height, width, p):
    torch.manual_seed(0)
    embed = PatchEmbedding(channels, p, d_model=5)
    images = torch.randn(3, channels, height, width)
    conv = embed.as_conv()
    expected = conv(images).flatten(2).transpose(1, 2)  # (B, E, rows, cols) -> (B, N, E)
    torch.testing.assert_close(embed(images), expected, atol=1e-5, rtol=1e-5)
    # and the other way round: a conv's weights used on patchify's vectors
    conv2 = nn.Conv2d(channels, 5, p, stride=p)
    via_patches = patchify(images, p) @ conv2.weight.reshape(5, -1).T + conv2.bias
    torch.testing.assert_close(via_patches, conv2(images).flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_unpatchify_inverts_patchify():
    images = torch.randn(2, 3, 8, 12)
    torch.testing.assert_close(unpatchify(patchify(images, 4), 4, (3, 8, 12)), images, atol=0, rtol=0)


def test_patchify_rejects_indivisible_sizes_and_bad_input_clearly():
    with pytest.raises(ValueError, match="divisible by patch_size = 3"):
        patchify(torch.zeros(1, 1, 8, 8), 3)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        patchify(torch.zeros(8, 8), 2)
    with pytest.raises(TypeError, match="float tensor"):
        patchify([[0.0]], 2)
    with pytest.raises(ValueError, match="patch_size must be an int >= 1"):
        patchify(torch.zeros(1, 1, 8, 8), 0)


def test_shuffle_patches_moves_whole_patches():
    images = torch.randn(2, 1, 8, 8)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = shuffle_patches(images, 2, order)
    torch.testing.assert_close(patchify(shuffled, 2), patchify(images, 2)[:, order], atol=0, rtol=0)
    per_image = torch.stack([order, order.flip(0)])
    torch.testing.assert_close(patchify(shuffle_patches(images, 2, per_image), 2)[1], patchify(images, 2)[1, order.flip(0)])
    with pytest.raises(ValueError, match="permutation of range\\(16\\)"):
        shuffle_patches(images, 2, torch.zeros(16, dtype=torch.long))


def test_add_cls_and_pos_prepends_the_class_token_then_adds_positions():
    B, N, E = 3, 4, 5
    patches, cls, pos = torch.randn(B, N, E), torch.randn(1, 1, E), torch.randn(1, N + 1, E)
    out = add_cls_and_pos(patches, cls, pos)
    assert out.shape == (B, N + 1, E)
    torch.testing.assert_close(out[:, 0], (cls[0, 0] + pos[0, 0]).expand(B, E))
    torch.testing.assert_close(out[:, 1:], patches + pos[:, 1:])
    torch.testing.assert_close(add_cls_and_pos(patches, cls, None)[:, 1:], patches)
    with pytest.raises(ValueError, match=r"pos_embedding must have shape \(1, N\+1, E\) = \(1, 5, 5\)"):
        add_cls_and_pos(patches, cls, torch.randn(1, N, E))


def test_vit_shapes_and_attention_weights_per_layer():
    torch.manual_seed(0)
    model = ViT(SMALL).eval()
    images = torch.rand(5, 1, 8, 8)
    logits = model(images)
    assert logits.shape == (5, 10)
    again, attentions = model(images, need_weights=True)
    torch.testing.assert_close(again, logits, atol=1e-5, rtol=1e-5)  # asking for weights changes nothing
    assert len(attentions) == SMALL.num_layers
    for a in attentions:
        assert a.shape == (5, SMALL.num_heads, 17, 17)
        torch.testing.assert_close(a.sum(-1), torch.ones(5, SMALL.num_heads, 17))


def test_vit_weights_are_those_of_the_blocks_own_attention():
    """The recorded weights of layer 1 are what layer 1's attention module computes on its input."""
    torch.manual_seed(1)
    model = ViT(SMALL).eval()
    images = torch.rand(4, 1, 8, 8)
    seen = {}
    handle = model.blocks[1].self_attn.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(args=args, kwargs=kwargs), with_kwargs=True)
    try:
        _, attentions = model(images, need_weights=True)
    finally:
        handle.remove()
    q, k, v = seen["args"][:3]
    _, expected = model.blocks[1].self_attn(q, k, v, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(attentions[1], expected)


def test_without_positions_the_vit_ignores_where_the_patches_are():
    torch.manual_seed(0)
    blind = ViT(ViTConfig(**{**SMALL.__dict__, "positional": False})).eval()
    sighted = ViT(SMALL).eval()
    with torch.no_grad():
        sighted.pos_embedding.normal_()  # positions that matter, as after training
    images = torch.rand(6, 1, 8, 8)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    shuffled = shuffle_patches(images, 2, order)
    with torch.no_grad():
        torch.testing.assert_close(blind(shuffled), blind(images), atol=1e-5, rtol=1e-5)
        assert (sighted(shuffled) - sighted(images)).abs().max() > 1e-3
    assert blind.pos_embedding is None


def test_vit_input_and_config_errors_are_clear():
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, 8, 8\)"):
        ViT(SMALL)(torch.zeros(2, 1, 6, 6))
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ViTConfig(patch_size=3)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ViTConfig(d_model=30, num_heads=4)
    with pytest.raises(TypeError, match="positional must be a bool"):
        ViTConfig(positional="learned")
    with pytest.raises(TypeError, match="ViTConfig"):
        ViT({"d_model": 32})


def test_the_cnn_has_a_parameter_count_similar_to_the_vit():
    cnn, vit = count_parameters(SmallCNN(CNNConfig())), count_parameters(ViT(ViTConfig()))
    assert 0.75 < cnn / vit < 1.25, (cnn, vit)
    assert SmallCNN()(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="two ints"):
        CNNConfig(channels=(8, 8, 8))


def test_notebook_08_experiments_are_registered_and_train_through_the_cache(monkeypatch, tmp_path):
    from course_lib.experiments import vit as V

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    for name in ("vit", "vit_no_positions", "cnn", "vit_sweep", "cnn_sweep"):
        assert experiments.experiment(name).notebook == "08_vision_transformer"
    assert experiments.experiment("vit").default.model.positional
    assert not experiments.experiment("vit_no_positions").default.model.positional
    tiny = V.TrainConfig(steps=4, batch_size=8, eval_every=2)
    first = experiments.run("vit", model=SMALL, train=tiny, n_per_class=2)
    second = experiments.run("vit", model=SMALL, train=tiny, n_per_class=2)
    assert not first.from_cache and second.from_cache
    assert [s for s, _ in second.history.evals["test_acc"]] == [2, 4]


def test_size_sweep_reports_one_accuracy_per_seed_for_both_models(monkeypatch, tmp_path):
    from course_lib.experiments import vit as V

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    tiny = V.TrainConfig(steps=2, batch_size=8, eval_every=0)
    table = V.size_sweep([1, 3], seeds=(0, 1), vit_run=V.ViTRun(model=SMALL, train=tiny),
                         cnn_run=V.CNNRun(model=CNNConfig(channels=(4, 8)), train=tiny), progress=False)
    assert set(table) == {"vit", "cnn"}
    for accuracies in table.values():
        assert sorted(accuracies) == [1, 3]
        assert all(len(a) == 2 and all(0.0 <= x <= 1.0 for x in a) for a in accuracies.values())


# --------------------------------------------------------------------------- the digits explorer


def test_class_token_attention_reads_row_zero_without_the_class_token():
    from course_lib.widgets.digits_vit import class_token_attention

    a = torch.rand(2, 3, 5, 5).softmax(-1)  # (B, H, N+1, N+1), one layer
    b = torch.rand(2, 3, 5, 5).softmax(-1)
    out = class_token_attention([a, b])
    assert out.shape == (2, 2, 4)
    torch.testing.assert_close(out[:, 0], a[:, :, 0, 1:].mean(1))
    torch.testing.assert_close(class_token_attention([a, b], head=2)[:, 1], b[:, 2, 0, 1:])
    with pytest.raises(ValueError, match=r"head must be in \[0, 3\)"):
        class_token_attention([a], head=3)


def test_digits_explorer_follows_its_controls():
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.widgets.digits_vit import digit_view, digits_vit_explorer

    torch.manual_seed(0)
    model = ViT(SMALL)
    images, labels = torch.rand(6, 1, 8, 8), torch.arange(6)
    view = digit_view(model, images, labels, 3)
    assert view["label"] == 3 and view["patches"].shape == (16, 4) and view["attention"].shape == (2, 16)
    torch.testing.assert_close(view["probabilities"].sum(), torch.tensor(1.0))
    explorer = digits_vit_explorer(model, images, labels)
    first = explorer.png()
    assert first.startswith(b"\x89PNG")
    explorer.controls["index"].value = 4
    assert explorer.last_result["label"] == 4 and explorer.last_error is None
    assert explorer.png() != first
    explorer.controls["head"].value = 1
    torch.testing.assert_close(explorer.last_result["attention"], digit_view(model, images, labels, 4, head=1)["attention"])
    with pytest.raises(ValueError, match=r"index must be in \[0, 6\)"):
        digit_view(model, images, labels, 6)
