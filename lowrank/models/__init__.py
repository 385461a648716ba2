"""The paper's five model families and a registry that builds them from a config.

Every model takes float32 NHWC images ``(B, H, W, C)`` and returns logits
``(B, num_classes)``::

    model = build_model(config.model, num_classes=10)
    variables = model.init({"params": k, "dropout": k2}, x, train=False)
    logits, updates = model.apply(
        variables, x, train=True, rngs={"dropout": k3}, mutable=["batch_stats"]
    )  # training: BatchNorm uses batch statistics and updates its running averages
    logits = model.apply(variables, x, train=False)  # evaluation: running averages

Models with BatchNorm have a ``batch_stats`` collection; the ViT (LayerNorm) has none.
The final Dense layer is named ``classifier`` in every model.
"""

from __future__ import annotations

import numbers

import flax.linen as nn
import ml_collections

from lowrank.models.common import ACTIVATIONS
from lowrank.models.mlp import MLPBN
from lowrank.models.resmlp import ResBN
from lowrank.models.resnet import ResNet18
from lowrank.models.vgg import VGG16
from lowrank.models.vit import POOLINGS, ViT

MODELS: dict[str, type[nn.Module]] = {
    "mlp_bn": MLPBN,
    "res_bn": ResBN,
    "vgg16": VGG16,
    "resnet18": ResNet18,
    "vit": ViT,
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
# Families with no BatchNorm (and so no ``batch_stats``): none of their weights is
# scale-invariant, so weight decay sets every weight's norm (lowrank.figures.horizon_rule).
WITHOUT_BATCHNORM: frozenset[str] = frozenset({"vit"})
# Families with convolutions (the ViT's patch embedding is one): on CPUs the engine runs
# their epochs from a host loop, one member at a time (XLA:CPU is slow with convolutions
# inside compiled loops and with vmapped, i.e. grouped, convolutions).
CONVOLUTIONAL: tuple[str, ...] = ("vgg16", "resnet18", "vit")

# Config fields each family reads (besides `name`); they are the module's attributes.
_BN_FIELDS = ("width", "activation", "leaky_slope", "use_bias", "bn_momentum")
_FIELDS: dict[str, tuple[str, ...]] = {
    "mlp_bn": ("width", "depth", *_BN_FIELDS[1:]),
    "res_bn": ("width", "depth", *_BN_FIELDS[1:]),
    "vgg16": _BN_FIELDS,
    "resnet18": _BN_FIELDS,
    "vit": (
        "width", "patch_size", "num_heads", "num_layers", "mlp_dim", "dropout", "pooling",
        "use_bias",
    ),
}  # fmt: skip


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"model.name={name!r} is not known; choose one of {list(MODEL_NAMES)}.")


def default_model_config(name: str) -> ml_collections.ConfigDict:
    """The paper's configuration of one model family (``config.model``).

    Args:
      name: one of ``MODEL_NAMES``.

    Returns:
      A ``ConfigDict`` with ``name`` and exactly the fields that family reads.
    """
    _check_name(name)
    c = ml_collections.ConfigDict()
    c.name = name  # model family: "mlp_bn" | "res_bn" | "vgg16" | "resnet18" | "vit"
    if name == "mlp_bn":
        c.width = 100  # H: width of every hidden layer (MLP-BN-10-100; Fig. 18: 10000)
        c.depth = 10  # L: number of hidden Dense → BatchNorm → activation layers
    elif name == "res_bn":
        c.width = 500  # H: width of the residual stream (RES-BN-5-500)
        c.depth = 5  # L: number of residual blocks z + σ(bn2(W2 σ(bn1(W1 z))))
    elif name in ("vgg16", "resnet18"):
        c.width = 64  # base width: VGG-16 64-128-256-512-512, ResNet-18 64-128-256-512
    elif name == "vit":
        c.width = 512  # hidden dimension d of the tokens (divisible by num_heads)
        c.patch_size = 4  # side of the square patches (must divide the image size)
        c.num_heads = 8  # attention heads per block
        c.num_layers = 6  # encoder blocks
        c.mlp_dim = 512  # hidden width of each block's MLP (GELU between its two Dense)
        c.dropout = 0.1  # dropout rate (embeddings, attention, MLP); training mode only
        c.pooling = "cls"  # "cls": class token; "mean": mean over the patch tokens
        c.use_bias = True  # biases in Dense, attention and patch-embedding layers
        return c
    c.activation = "relu"  # "relu" | "leaky_relu" (the authors' code defaults to leaky)
    c.leaky_slope = 0.01  # negative slope of leaky_relu (PyTorch nn.LeakyReLU default)
    # Dense (and VGG conv) biases; ResNet-18 convs never have one (BatchNorm follows).
    c.use_bias = True
    # BatchNorm running-average momentum, Flax convention: new = m·old + (1−m)·batch.
    # Flax 0.9 = PyTorch momentum 0.1 (PyTorch's default and the authors').
    c.bn_momentum = 0.9
    return c


def _positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"model.{name}={value!r}: must be an integer ≥ {minimum}.")


def validate_model_config(cfg: ml_collections.ConfigDict, num_classes: int = 1) -> None:
    """Refuses a bad model config before anything is traced.

    Raises:
      ValueError: naming the field, its value and what is allowed.
    """
    _check_name(cfg.name)
    allowed = _FIELDS[cfg.name]
    unknown = sorted(set(cfg.keys()) - {"name", *allowed})
    if unknown:
        raise ValueError(
            f"model fields {unknown} are not used by model.name={cfg.name!r}; "
            f"its fields are {list(allowed)}."
        )
    _positive_int("num_classes", num_classes)
    get = lambda k: cfg.get(k, getattr(MODELS[cfg.name], k))
    for k in ("width", "patch_size", "num_heads", "mlp_dim"):
        if k in allowed:
            _positive_int(k, get(k))
    for k in ("depth", "num_layers"):
        if k in allowed:
            _positive_int(k, get(k), minimum=0)
    if "activation" in allowed and get("activation") not in ACTIVATIONS:
        raise ValueError(f"model.activation={get('activation')!r}: choose one of {ACTIVATIONS}.")
    if "leaky_slope" in allowed and not isinstance(get("leaky_slope"), numbers.Real):
        raise ValueError(f"model.leaky_slope={get('leaky_slope')!r}: must be a number.")
    if not isinstance(get("use_bias"), bool):
        raise ValueError(f"model.use_bias={get('use_bias')!r}: must be True or False.")
    if "bn_momentum" in allowed and not 0.0 <= get("bn_momentum") < 1.0:
        raise ValueError(
            f"model.bn_momentum={get('bn_momentum')!r}: must be in [0, 1) "
            "(Flax convention: 0.9 = PyTorch momentum 0.1)."
        )
    if "dropout" in allowed and not 0.0 <= get("dropout") < 1.0:
        raise ValueError(f"model.dropout={get('dropout')!r}: must be in [0, 1).")
    if "pooling" in allowed and get("pooling") not in POOLINGS:
        raise ValueError(f"model.pooling={get('pooling')!r}: choose one of {POOLINGS}.")
    if "num_heads" in allowed and get("width") % get("num_heads"):
        raise ValueError(
            f"model.width={get('width')} must be divisible by model.num_heads={get('num_heads')}."
        )


def build_model(cfg: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The Flax module a model config describes.

    Fields the config leaves out take the module's defaults (the paper's values).

    Args:
      cfg: ``config.model``; ``cfg.name`` picks the family (see ``default_model_config``).
      num_classes: number of logits (from the dataset).

    Raises:
      ValueError: unknown name, unknown field or bad value (see ``validate_model_config``).
    """
    validate_model_config(cfg, num_classes)
    kwargs = {k: cfg[k] for k in _FIELDS[cfg.name] if k in cfg}
    return MODELS[cfg.name](num_classes=num_classes, **kwargs)


__all__ = [
    "MLPBN",
    "MODELS",
    "MODEL_NAMES",
    "VGG16",
    "ResBN",
    "ResNet18",
    "ViT",
    "build_model",
    "default_model_config",
    "validate_model_config",
]
