"""Baselines shared by the papers: ResNet-18/34/50 with DEX, CORAL or
regression heads, at any input size, random init offline.

- ResNet-18/34 are `agekeras.models.backbones.resnet_v1` (basic blocks,
  2-2-2-2 and 3-4-6-3), random init.
- ResNet-50 uses `keras.applications.ResNet50V2` (pre-activation ResNet-50),
  whose ImageNet weights expect inputs in [-1, 1], the same scaling as the
  other backbones here; `pretrained=True` downloads them (online only: never in
  tests).

Every model takes float images in [0, 255] and scales them to [-1, 1] with a
`Rescaling` layer (`backbones.scale_inputs`), pools the last feature map globally (layer "embedding"),
and ends with a head in float32 (mixed-precision safe).
"""

import keras

from agekeras.layers import ArgmaxAge, CORALDecode, CORALHead, DEXHead, ORCNNHead
from agekeras.models.backbones import RESNET_BLOCKS, resnet_v1, scale_inputs
from agekeras.models.registry import register


def resnet_backbone(depth, input_shape, pretrained=False, max_pool=True, name=None):
    """A ResNet feature extractor `(H, W, 3) in [-1, 1] -> (h, w, C)`.

    Args:
        depth: 18, 34 or 50.
        input_shape: `(H, W, 3)`; any size >= 32.
        pretrained: ImageNet weights (ResNet-50 only; needs internet).
        max_pool: keep the stem's max-pool (total stride 32). False (ResNet-18
            and 34 only) gives total stride 16: a 64 px face ends on a 4x4
            map instead of 2x2, for about 3.8 times the FLOPs.
        name: model name.
    """
    if depth in RESNET_BLOCKS:
        if pretrained:
            raise ValueError("No ImageNet weights are bundled for ResNet-18/34; use depth=50 or pretrained=False.")
        return resnet_v1(depth, input_shape, max_pool=max_pool, name=name)
    if not max_pool:
        raise ValueError("max_pool=False is only available for ResNet-18 and ResNet-34.")
    if depth == 50:
        return keras.applications.ResNet50V2(
            include_top=False,
            weights="imagenet" if pretrained else None,
            input_shape=tuple(input_shape),
            name=name or "resnet50_backbone",
        )
    raise ValueError(f"depth must be 18, 34 or 50, got {depth}")


def age_model(
    features_fn, *, input_shape, head, num_classes, age_min, dropout=0.0, name, gender=False, age_prior=None
):
    """Wrap a feature extractor with input scaling, pooling and an age head.

    Args:
        features_fn: callable `(scaled images) -> feature map (B, h, w, C)`.
        input_shape: `(H, W, 3)`.
        head: "dex", "coral", "orcnn" (K-1 independent binary tasks, decoded
            by counting), "regression" or "classification" (softmax only,
            the predicted age is the arg-max class).
        num_classes: number of age classes K (ages age_min..age_min+K-1).
        age_min: age of class 0.
        dropout: dropout rate before the head.
        name: model name.
        gender: add a "gender_probs" output.
        age_prior: optional P(class = k) of the training labels (length K):
            the DEX / classification / CORAL / OR-CNN heads start their
            biases at it (see `CORALHead`, `DEXHead`); ignored by "regression".

    Returns:
        A `keras.Model` with dict outputs (see `agekeras.models.outputs`).
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    x = scale_inputs(inputs)
    x = features_fn(x)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    return keras.Model(inputs, age_outputs(x, head, num_classes, age_min, dropout, gender, age_prior), name=name)


def age_outputs(x, head, num_classes, age_min, dropout=0.0, gender=False, age_prior=None):
    """The conventional output dict for features `x` `(B, d)` (see `age_model`, also for `age_prior`)."""
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = {}
    if head == "dex":
        probs, age = DEXHead(num_classes, age_min=age_min, age_prior=age_prior, dtype="float32", name="dex_head")(x)
        outputs.update(age_probs=probs, age=age)
    elif head == "coral":
        logits = CORALHead(num_classes, age_prior=age_prior, dtype="float32", name="coral_head")(x)
        outputs.update(age_logits=logits, age=CORALDecode(age_min, dtype="float32", name="coral_age")(logits))
    elif head == "orcnn":
        logits = ORCNNHead(num_classes, age_prior=age_prior, dtype="float32", name="orcnn_head")(x)
        outputs.update(age_logits=logits, age=CORALDecode(age_min, dtype="float32", name="orcnn_age")(logits))
    elif head == "classification":
        probs, _ = DEXHead(num_classes, age_min=age_min, age_prior=age_prior, dtype="float32", name="cls_head")(x)
        outputs.update(age_probs=probs, age=ArgmaxAge(age_min, dtype="float32", name="argmax_age")(probs))
    elif head == "regression":
        y = keras.layers.Dense(1, dtype="float32", name="age_dense")(x)
        outputs.update(age=keras.layers.Reshape((), name="age_reshape")(y))
    else:
        raise ValueError(f"head must be dex, coral, orcnn, classification or regression; got {head!r}")
    if gender:
        outputs["gender_probs"] = keras.layers.Dense(2, activation="softmax", dtype="float32", name="gender_head")(x)
    return outputs


def _resnet(depth, head):
    def build(input_shape=(64, 64, 3), num_classes=101, age_min=0, dropout=0.0, pretrained=False, gender=False,
              age_prior=None, max_pool=True):
        backbone = resnet_backbone(depth, input_shape, pretrained=pretrained, max_pool=max_pool)
        return age_model(
            backbone,
            input_shape=input_shape,
            head=head,
            num_classes=num_classes,
            age_min=age_min,
            dropout=dropout,
            gender=gender,
            name=f"resnet{depth}_{head}",
            age_prior=age_prior,
        )

    if head == "regression":  # no class prior to start from: no `age_prior` argument

        def build_regression(input_shape=(64, 64, 3), num_classes=101, age_min=0, dropout=0.0, pretrained=False,
                             gender=False, max_pool=True):
            return build(input_shape, num_classes, age_min, dropout, pretrained, gender, max_pool=max_pool)

        build_regression.__doc__ = (
            f"ResNet-{depth} with a regression head (Args: input_shape, num_classes, age_min, dropout, "
            "pretrained, gender, max_pool: False for total stride 16)."
        )
        return build_regression

    build.__doc__ = (
        f"ResNet-{depth} with a {head.upper() if head != 'regression' else 'regression'} head "
        f"(Args: input_shape, num_classes, age_min, dropout, pretrained, gender, age_prior: P(class = k) "
        f"of the training labels, the head's starting bias; max_pool: False drops the stem's max-pool, "
        f"total stride 16)."
    )
    return build


for _depth in (18, 34, 50):
    for _head in ("dex", "coral", "regression"):
        register(
            f"resnet{_depth}_{_head}",
            description=f"ResNet-{_depth} + {_head} head (baseline)",
            losses={"age": "smooth_l1"} if _head == "regression" else None,
            accepts_prior=_head != "regression",
        )(_resnet(_depth, _head))
