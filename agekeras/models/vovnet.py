"""VoVNetv4 and the models of its Tables I and II: builders only.

Registered models (paper tag "vovnetv4"):

- `vovnet39`, `vovnet57`: VoVNet-39/57 (one-shot aggregation, public
  configs) with a CORAL head.
- `vovnetv4`: stem -> `ROSAStage` (4 regions of OSA modules run for
  1, 1, 4, 3 cycles) -> one `AdaptiveStage` per region, all to the same
  spatial size -> one concatenation (the "second single aggregation") ->
  global average pooling -> CORAL head.
- `resnet34_ce`: the Table I cross-entropy baseline, ResNet-34 with a
  softmax over the ages, predicted age = arg-max class. (The other Table I
  baseline, ResNet-34 + CORAL, is the baselines' `resnet34_coral`, which is
  also Table II's CORAL-CNN.)

Every model takes float images in [0, 255], scales them to [-1, 1], and
returns the conventional output dict (`age`, plus `age_logits` for CORAL or
`age_probs` for cross-entropy). All CORAL models train with `CORALLoss`
with uniform task weights (lambda_k = 1): the paper's loss (Eq. 8) has task
weights lambda^(k) but never defines them; uniform is the default of the
CORAL reference code, and `agekeras.losses.coral_importance_weights` gives
CORAL's label-based weights if wanted.

The experiments of the paper (its tables, training runs, summaries) are in
`agekeras.experiments.vovnetv4`.

Reference: "Research on Phased Single Aggregation Age Estimation Algorithm
Based on VoVNetv4" (Zhang, Shi, Cui, Tao, Zhang, Liu, 2023; IAENG journal
article, no arXiv or DOI version known); VoVNet: "An Energy and
GPU-Computation Efficient Backbone Network for Real-Time Object Detection"
(Lee et al., 2019), https://arxiv.org/abs/1904.09730.
"""

import keras

from agekeras.layers import AdaptiveStage, ConvBNReLU, OSAModule, ROSAStage
from agekeras.models.baselines import age_model, resnet_backbone
from agekeras.models.registry import register

PAPER = "vovnetv4"

#: Public VoVNet configurations (VoVNet paper / reference code "vovnet39a/57a").
VOVNET_CONFIGS = {
    39: dict(stage_filters=(128, 160, 192, 224), output_filters=(256, 512, 768, 1024), blocks=(1, 1, 2, 2)),
    57: dict(stage_filters=(128, 160, 192, 224), output_filters=(256, 512, 768, 1024), blocks=(1, 1, 4, 3)),
}
STEM_FILTERS = (64, 64, 128)
STEM_STRIDES = (2, 1, 2)

def stem(x, name="stem"):
    """VoVNet stem: three 3x3 ConvBlocks (64 stride 2, 64, 128 stride 2): H -> H/4."""
    for i, (filters, stride) in enumerate(zip(STEM_FILTERS, STEM_STRIDES)):
        x = ConvBNReLU(filters, 3, strides=stride, name=f"{name}_{i + 1}")(x)
    return x


def vovnet_features(depth):
    """`x -> feature map` of VoVNet-`depth` (39 or 57), without head.

    Stem, then four stages of OSA modules (5 ConvBlocks each); a 3x3
    stride-2 max-pool ("same" padding) precedes stages 3, 4 and 5.
    """
    if depth not in VOVNET_CONFIGS:
        raise ValueError(f"VoVNet depth must be one of {sorted(VOVNET_CONFIGS)}, got {depth}.")
    cfg = VOVNET_CONFIGS[depth]

    def features(x):
        x = stem(x)
        for s, (f, out, blocks) in enumerate(zip(cfg["stage_filters"], cfg["output_filters"], cfg["blocks"])):
            if s > 0:
                x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"stage{s + 2}_pool")(x)
            for b in range(blocks):
                x = OSAModule(f, out, name=f"stage{s + 2}_osa{b + 1}")(x)
        return x

    return features


def vovnetv4_features(
    cycles=(1, 1, 4, 3),
    share_weights=False,
    transition_filters=None,
    adaptive_size=None,
    adaptive_filters=None,
):
    """`x -> concatenated map` of VoVNetv4, without pooling or head.

    Stem -> `ROSAStage` (VoVNet-57 widths) -> an `AdaptiveStage` per region
    (layers "adaptive_1".."adaptive_4") -> `Concatenate` ("second_aggregation").

    Args:
        cycles: OSA cycles per region.
        share_weights: see `ROSAStage`.
        transition_filters: see `ROSAStage`.
        adaptive_size: the set output size of the Adaptive Stages; None = the
            last region's size (input / 32, rounded up), so the deepest region
            passes through a 1x1 ConvBlock.
        adaptive_filters: width of each Adaptive Stage (None = the region's
            own width: 256, 512, 768, 1024), an int, or one int per region.
    """
    cfg = VOVNET_CONFIGS[57]

    def features(x):
        x = stem(x)
        regions = ROSAStage(
            cfg["stage_filters"],
            cfg["output_filters"],
            cycles=cycles,
            share_weights=share_weights,
            transition_filters=transition_filters,
            name="rosa",
        )(x)
        size = adaptive_size if adaptive_size is not None else tuple(regions[-1].shape[1:3])
        widths = adaptive_filters
        if widths is None or isinstance(widths, int):
            widths = [widths] * len(regions)
        if len(widths) != len(regions):
            raise ValueError(f"`adaptive_filters` needs one width per region ({len(regions)}); got {widths}.")
        smoothed = [
            AdaptiveStage(size, filters=w, name=f"adaptive_{r + 1}")(region)
            for r, (region, w) in enumerate(zip(regions, widths))
        ]
        return keras.layers.Concatenate(axis=-1, name="second_aggregation")(smoothed)

    return features


def _check_input_shape(input_shape, minimum=32):
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3 or min(input_shape[:2]) < minimum:
        raise ValueError(
            f"`input_shape` must be (height, width, 3) with height, width >= {minimum}; got {input_shape}."
        )
    return input_shape


def _vovnet(depth):
    def build(input_shape=(64, 64, 3), num_classes=101, age_min=0, dropout=0.0, gender=False, age_prior=None):
        input_shape = _check_input_shape(input_shape)
        return age_model(
            vovnet_features(depth),
            input_shape=input_shape,
            head="coral",
            num_classes=num_classes,
            age_min=age_min,
            dropout=dropout,
            gender=gender,
            name=f"vovnet{depth}",
            age_prior=age_prior,
        )

    build.__doc__ = (
        f"VoVNet-{depth} + CORAL head (Args: input_shape, num_classes, age_min, dropout, gender, age_prior)."
    )
    return build


vovnet39 = register("vovnet39", paper=PAPER, description="VoVNet-39 (OSA) + CORAL head", accepts_prior=True)(_vovnet(39))
vovnet57 = register("vovnet57", paper=PAPER, description="VoVNet-57 (OSA) + CORAL head", accepts_prior=True)(_vovnet(57))


@register("vovnetv4", paper=PAPER, description="VoVNetv4: ROSA regions + Adaptive Stages + CORAL head",
          accepts_prior=True)
def vovnetv4(
    input_shape=(64, 64, 3),
    num_classes=101,
    age_min=0,
    cycles=(1, 1, 4, 3),
    share_weights=False,
    transition_filters=None,
    adaptive_size=None,
    adaptive_filters=None,
    dropout=0.0,
    gender=False,
    age_prior=None,
    head="coral",
):
    """VoVNetv4 + CORAL head (see `vovnetv4_features` for the arguments).

    `head` ("coral" as in the paper, or "dex", "orcnn", "classification":
    see `agekeras.models.baselines.age_model`) swaps the age head alone,
    which is the paper's CORAL-versus-softmax comparison on the same network
    (registered as "vovnetv4_dex").

    `age_prior` (P(class = k) of the training labels, length K; passed by
    `agekeras.training`) starts the CORAL biases at the labels' log-odds
    logit(P(y > k)); without it they start as a small ramp (see `CORALHead`).

    Layers worth inspecting: "rosa" (`ROSAStage`), "adaptive_1".."adaptive_4"
    (`AdaptiveStage`), "second_aggregation" (the concatenation), "embedding"
    (its global average: the CORAL head's input), "coral_head".
    """
    input_shape = _check_input_shape(input_shape)
    return age_model(
        vovnetv4_features(cycles, share_weights, transition_filters, adaptive_size, adaptive_filters),
        input_shape=input_shape,
        head=head,
        num_classes=num_classes,
        age_min=age_min,
        dropout=dropout,
        gender=gender,
        name="vovnetv4" if head == "coral" else f"vovnetv4_{head}",
        age_prior=age_prior,
    )


@register("vovnetv4_dex", paper=PAPER, description="VoVNetv4 with a softmax DEX head instead of CORAL (the head ablation)",
          accepts_prior=True)
def vovnetv4_dex(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
    """VoVNetv4's ROSA regions and Adaptive Stages under a DEX head (softmax,
    expected age): the network of "vovnetv4" with the age head alone changed,
    for the CORAL-versus-softmax comparison at an equal recipe (keyword
    arguments as for `vovnetv4`)."""
    return vovnetv4(input_shape, num_classes, age_min, head="dex", **kwargs)


@register("resnet34_ce", paper=PAPER, description="ResNet-34 + softmax classifier, cross-entropy (Table I)",
          accepts_prior=True)
def resnet34_ce(input_shape=(64, 64, 3), num_classes=101, age_min=0, dropout=0.0, gender=False, age_prior=None):
    """ResNet-34 with a softmax age classifier trained with cross-entropy;
    the predicted age is the most probable class (Table I baseline).
    `age_prior`: the softmax bias starts at log(prior) (see `DEXHead`)."""
    return age_model(
        resnet_backbone(34, input_shape),
        input_shape=input_shape,
        head="classification",
        num_classes=num_classes,
        age_min=age_min,
        dropout=dropout,
        gender=gender,
        name="resnet34_ce",
        age_prior=age_prior,
    )


@register("resnet34_orcnn", paper=PAPER, description="ResNet-34 + OR-CNN head: K-1 independent binary tasks (Table II)",
          accepts_prior=True)
def resnet34_orcnn(input_shape=(64, 64, 3), num_classes=101, age_min=0, dropout=0.0, gender=False, age_prior=None):
    """ResNet-34 with an OR-CNN head (`ORCNNHead`): K-1 binary classifiers
    "is y > k?" with their own weights, trained with the binary loss of CORAL
    (uniform task weights) and decoded by counting. Table II's OR-CNN; the
    VoVNetv4 paper does not say which backbone its re-run used, and ResNet-34
    is the CORAL paper's choice for the same comparison.
    `age_prior`: the biases start at logit(P(y > k)) of the training labels."""
    return age_model(
        resnet_backbone(34, input_shape),
        input_shape=input_shape,
        head="orcnn",
        num_classes=num_classes,
        age_min=age_min,
        dropout=dropout,
        gender=gender,
        name="resnet34_orcnn",
        age_prior=age_prior,
    )
