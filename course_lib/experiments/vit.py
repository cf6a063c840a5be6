"""The trained models of notebook 08: the ViT, the same ViT without positions, the small CNN, and the data-size sweep.

Every run trains on ``course_lib.data.load_digits_tensors()`` (the fixed
split), on all of its training images or on ``subset(n_per_class, seed)`` of
them, and stores the test accuracy along the way in ``history.evals["test_acc"]``.

    vit = experiments.run("vit").model                      # notebook 08's ViT (notebook 10 reuses it)
    nopos = experiments.run("vit_no_positions").model       # the same, blind to where a patch is
    cnn = experiments.run("cnn").model
    table = size_sweep((5, 15, 45), seeds=(0, 1, 2))         # accuracy against training-set size

The ViT and the CNN share one recipe (:class:`TrainConfig`): AdamW, linear
warm-up then cosine decay, random batches, no augmentation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..train import CachedRun, History, device, train_loop
from ..vit import CNNConfig, SmallCNN, ViT, ViTConfig
from .core import cached, register
from .parallel import run_many

__all__ = [
    "SWEEP_TRAIN",
    "TRAIN",
    "CNNRun",
    "TrainConfig",
    "ViTRun",
    "cnn",
    "cnn_sweep",
    "digits",
    "size_sweep",
    "test_accuracy",
    "vit",
    "vit_no_positions",
    "vit_sweep",
]


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe: `steps` AdamW steps on random batches of `batch_size` training images
    (all of them when there are fewer), learning rate warmed up linearly over the first `warmup`
    fraction of the steps, then cosine-decayed to 0."""

    steps: int = 600
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 0.05
    warmup: float = 0.1
    eval_every: int = 50


#: The recipe of the models trained on the whole training set.
TRAIN = TrainConfig()
#: The recipe of the data-size sweep: shorter (a small training set is learned quickly) and cheap.
SWEEP_TRAIN = TrainConfig(steps=200, batch_size=32, eval_every=0)


@dataclass(frozen=True)
class ViTRun:
    """A ViT trained on the digits: model config, recipe, training-set size (None = all), seed."""

    model: ViTConfig = ViTConfig()
    train: TrainConfig = TRAIN
    n_per_class: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class CNNRun:
    """A SmallCNN trained on the digits, as :class:`ViTRun`."""

    model: CNNConfig = CNNConfig()
    train: TrainConfig = TRAIN
    n_per_class: int | None = None
    seed: int = 0


def digits(n_per_class: int | None = None, seed: int = 0):
    """The digits (fixed split) on the course's device, the training set cut to n_per_class per digit if given."""
    from ..data.digits import load_digits_tensors

    data = load_digits_tensors()
    if n_per_class is not None:
        data = data.subset(n_per_class=n_per_class, seed=seed)
    return data.to(device())


def test_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images whose argmax logit is the label (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return (model(images).argmax(dim=-1) == labels).float().mean().item()
    finally:
        model.train(was_training)


def _fit(model, data, recipe: TrainConfig, seed: int, desc: str, progress: bool, eval_fn=None) -> History:
    """The training recipe of every ViT and CNN run. eval_fn(model) -> {name: value} replaces the test
    accuracy evaluation (benchmarks/vit_digits.py times the training around it)."""
    generator = torch.Generator().manual_seed(seed)  # the batches: the same for every model of a seed
    n = len(data.y_train)
    batch_size = min(recipe.batch_size, n)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    warmup_steps = max(1, round(recipe.warmup * recipe.steps))

    def batches(step):
        # train_loop's cosine schedule has no warm-up: set the learning rate here, before the step
        warm = min(1.0, (step + 1) / warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * warm * 0.5 * (1.0 + math.cos(math.pi * step / recipe.steps))
        index = torch.randint(0, n, (batch_size,), generator=generator).to(data.y_train.device)
        return data.x_train[index], data.y_train[index]

    def loss_fn(model, batch):
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    def test_acc(model):
        return {"test_acc": test_accuracy(model, data.x_test, data.y_test)}

    # adaptive threads: alone, the ViT trains 5-20% faster on two threads than on one; the data-size
    # sweep's runs, which run_many trains side by side, one per core, stay on one while the other core is busy
    return train_loop(model, batches, loss_fn, steps=recipe.steps, optimizer=optimizer, eval_fn=eval_fn or test_acc,
                      eval_every=recipe.eval_every, progress=progress, desc=desc, adaptive_threads=True)


def _train_vit(config: ViTRun, progress: bool = True) -> CachedRun:
    """A ViT on the digits (config.model.positional says whether it has position embeddings)."""
    data = digits(config.n_per_class, config.seed)

    def build():
        torch.manual_seed(config.seed)
        return ViT(config.model).to(device())

    positions = "" if config.model.positional else " (no positions)"
    size = "" if config.n_per_class is None else f", {config.n_per_class}/digit"
    return cached("vit", config, build,
                  lambda model: _fit(model, data, config.train, config.seed, f"ViT{positions}{size}", progress))


def _train_cnn(config: CNNRun, progress: bool = True) -> CachedRun:
    """The small CNN on the digits."""
    data = digits(config.n_per_class, config.seed)

    def build():
        torch.manual_seed(config.seed)
        return SmallCNN(config.model).to(device())

    size = "" if config.n_per_class is None else f", {config.n_per_class}/digit"
    return cached("cnn", config, build,
                  lambda model: _fit(model, data, config.train, config.seed, f"CNN{size}", progress))


vit = register("vit", "08_vision_transformer", ViTRun(),
               "the ViT of notebook 08 (2x2 patches, learned positions), all training digits")(_train_vit)
vit_no_positions = register("vit_no_positions", "08_vision_transformer",
                            ViTRun(model=replace(ViTConfig(), positional=False)),
                            "the same ViT without position embeddings: a bag of patches")(_train_vit)
cnn = register("cnn", "08_vision_transformer", CNNRun(), "the small CNN baseline, all training digits")(_train_cnn)
# the (size, seed) points notebook 08 sweeps, so that `prepare` trains them too
_SWEEP_POINTS = tuple({"n_per_class": n, "seed": s} for n in (5, 20, 80) for s in (0, 1, 2))
vit_sweep = register("vit_sweep", "08_vision_transformer", ViTRun(train=SWEEP_TRAIN, n_per_class=15),
                     "one point of the data-size sweep: the ViT on 15 digits of each class",
                     variants=_SWEEP_POINTS)(_train_vit)
cnn_sweep = register("cnn_sweep", "08_vision_transformer", CNNRun(train=SWEEP_TRAIN, n_per_class=15),
                     "one point of the data-size sweep: the CNN on 15 digits of each class",
                     variants=_SWEEP_POINTS)(_train_cnn)


def size_sweep(sizes, seeds=(0, 1, 2), vit_run: ViTRun | None = None, cnn_run: CNNRun | None = None,
               progress: bool = True) -> dict[str, dict[int, list[float]]]:
    """Test accuracy against training-set size for the ViT and the CNN.

    sizes: digits per class (None = the whole training set); every (size, seed)
    pair trains each model once (cached) with SWEEP_TRAIN, on the subset drawn
    with that seed, from a model initialised with that seed.
    vit_run / cnn_run: the configs whose n_per_class and seed are replaced
    (default: the registered ``vit_sweep`` and ``cnn_sweep``).
    -> {"vit": {size: [accuracy per seed]}, "cnn": {...}} (size None stays None).
    """
    from ..train import _progress

    points = [(size, seed) for size in sizes for seed in seeds]
    models = (("vit", vit_sweep, vit_run or vit_sweep.default), ("cnn", cnn_sweep, cnn_run or cnn_sweep.default))
    # every run from the cache, or trained now: side by side where the machine has an idle core
    runs = iter(run_many([(experiment.name, replace(base, n_per_class=size, seed=seed))
                          for size, seed in points for _, experiment, base in models], progress=progress))
    result: dict[str, dict] = {"vit": {}, "cnn": {}}
    for size, seed in _progress(points, len(points), "sweep", progress):
        data = digits(size, seed)
        for name, _, _ in models:
            result[name].setdefault(size, []).append(test_accuracy(next(runs).model, data.x_test, data.y_test))
    return result
