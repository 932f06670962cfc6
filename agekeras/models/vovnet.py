"""VoVNetv4 and its Table I / Table II comparisons (notebook 01).

Paper: "Research on Phased Single Aggregation Age Estimation Algorithm Based
on VoVNetv4". Registered models (paper tag "vovnetv4"):

- `vovnet39`, `vovnet57`: VoVNet-39/57 (one-shot aggregation, public
  configs) with a CORAL head.
- `vovnetv4`: stem -> `ROSAStage` (4 regions of OSA modules run for
  1, 1, 4, 3 cycles) -> one `AdaptiveStage` per region, all to the same
  spatial size -> one concatenation (the "second single aggregation") ->
  global average pooling -> CORAL head.
- `resnet34_ce`: the Table I cross-entropy baseline, ResNet-34 with a
  softmax over the ages, predicted age = arg-max class. (The other Table I
  baseline, ResNet-34 + CORAL, is the foundation's `resnet34_coral`, reused
  as is.)

Every model takes float images in [0, 255], scales them to [-1, 1], and
returns the conventional output dict (`age`, plus `age_logits` for CORAL or
`age_probs` for cross-entropy). All CORAL models train with `CORALLoss`
with uniform task weights (lambda_k = 1), the default of the CORAL reference
code; `agekeras.losses.coral_importance_weights` gives the paper's Eq. 8
weights from training labels if wanted.
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

#: Table I of the paper: the four compared models (registry names).
TABLE1_MODELS = ("resnet34_ce", "resnet34_coral", "vovnet57", "vovnetv4")
#: Table II (our reading): the aggregation backbones, all with CORAL.
TABLE2_MODELS = ("vovnet39", "vovnet57", "vovnetv4")
METHOD_NAMES = {
    "resnet34_ce": "ResNet-34 (cross-entropy)",
    "resnet34_coral": "ResNet-34 + CORAL",
    "vovnet39": "VoVNet-39 + CORAL",
    "vovnet57": "VoVNet-57 + CORAL",
    "vovnetv4": "VoVNetv4 (ROSA + Adaptive Stage) + CORAL",
}

#: The paper's training setting (issue #3): AFAD ages 15-40, seed 1,
#: lr 0.0005, 200 epochs, batch 128. The image size is our choice (the
#: paper's is not available offline): 120 px, the CORAL reference code's
#: crop size on AFAD.
PAPER_SETTING = dict(
    dataset="afad", min_age=15, max_age=40, seed=1, lr=5e-4, epochs=200, batch_size=128, image_size=120
)


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
    def build(input_shape=(64, 64, 3), num_classes=101, age_min=0, dropout=0.0, gender=False):
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
        )

    build.__doc__ = (
        f"VoVNet-{depth} + CORAL head (Args: input_shape, num_classes, age_min, dropout, gender)."
    )
    return build


vovnet39 = register("vovnet39", paper=PAPER, description="VoVNet-39 (OSA) + CORAL head")(_vovnet(39))
vovnet57 = register("vovnet57", paper=PAPER, description="VoVNet-57 (OSA) + CORAL head")(_vovnet(57))


@register("vovnetv4", paper=PAPER, description="VoVNetv4: ROSA regions + Adaptive Stages + CORAL head")
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
):
    """VoVNetv4 + CORAL head (see `vovnetv4_features` for the arguments).

    Layers worth inspecting: "rosa" (`ROSAStage`), "adaptive_1".."adaptive_4"
    (`AdaptiveStage`), "second_aggregation" (the concatenation), "embedding"
    (its global average: the CORAL head's input), "coral_head".
    """
    input_shape = _check_input_shape(input_shape)
    return age_model(
        vovnetv4_features(cycles, share_weights, transition_filters, adaptive_size, adaptive_filters),
        input_shape=input_shape,
        head="coral",
        num_classes=num_classes,
        age_min=age_min,
        dropout=dropout,
        gender=gender,
        name="vovnetv4",
    )


@register("resnet34_ce", paper=PAPER, description="ResNet-34 + softmax classifier, cross-entropy (Table I)")
def resnet34_ce(input_shape=(64, 64, 3), num_classes=101, age_min=0, dropout=0.0, gender=False):
    """ResNet-34 with a softmax age classifier trained with cross-entropy;
    the predicted age is the most probable class (Table I baseline)."""
    return age_model(
        resnet_backbone(34, input_shape),
        input_shape=input_shape,
        head="classification",
        num_classes=num_classes,
        age_min=age_min,
        dropout=dropout,
        gender=gender,
        name="resnet34_ce",
    )


def vovnetv4_summary(model):
    """Text table of a `vovnetv4` model's main parts: output shape, kernel/stride, parameters.

    Args:
        model: a model built by `vovnetv4`.

    Returns:
        A string, one line per part (stem, each ROSA region, each Adaptive
        Stage, the second aggregation, the embedding, the CORAL head).
    """
    rosa = model.get_layer("rosa")
    lines = [f"{'part':22s} {'output shape':22s} {'kernel/stride':14s} {'params':>12s}"]

    def line(name, shape, ks, params):
        lines.append(f"{name:22s} {str(tuple(shape)):22s} {ks:14s} {params:>12,}")

    stem_params = sum(model.get_layer(f"stem_{i}").count_params() for i in (1, 2, 3))
    line("stem (3 ConvBlocks)", model.get_layer("stem_3").output.shape, "3x3 /2,1,2", stem_params)
    for r, (order, shape) in enumerate(zip(rosa.schedule, rosa.output)):
        params = sum(rosa.osa_modules[i].count_params() for i in sorted(set(order)))
        if r > 0:
            params += rosa.transitions[r - 1].count_params()
        line(f"ROSA region {r + 1} ({len(order)} cyc.)", shape.shape, "", params)
    for r in range(len(rosa.schedule)):
        stage = model.get_layer(f"adaptive_{r + 1}")
        ks = f"{stage.kernel_size[0]}x{stage.kernel_size[1]} /{stage.strides[0]}"
        line(f"adaptive_{r + 1}", stage.output.shape, ks, stage.count_params())
    line("second_aggregation", model.get_layer("second_aggregation").output.shape, "concat", 0)
    line("embedding (GAP)", model.get_layer("embedding").output.shape, "", 0)
    head = model.get_layer("coral_head")
    line("coral_head", head.output.shape, "", head.count_params())
    lines.append(f"{'total':22s} {'':22s} {'':14s} {model.count_params():>12,}")
    return "\n".join(lines)


def parameter_rows(models=TABLE1_MODELS, input_shape=(120, 120, 3), num_classes=26):
    """One row per model: total, trainable and backbone (head-less) parameters.

    Args:
        models: registry names.
        input_shape: image shape (the counts of the convolutions do not depend
            on it; VoVNetv4's Adaptive Stage kernels do).
        num_classes: age classes (26 for AFAD ages 15-40).

    Returns:
        list of dicts `{"method", "model", "params", "trainable", "head"}`.
    """
    from agekeras.models.registry import get

    rows = []
    for name in models:
        model = get(name, input_shape=input_shape, num_classes=num_classes)
        head = sum(
            layer.count_params() for layer in model.layers if layer.name in ("coral_head", "cls_head", "dex_head")
        )
        trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
        rows.append(
            {
                "method": METHOD_NAMES.get(name, name),
                "model": name,
                "params": model.count_params(),
                "trainable": trainable,
                "head": head,
            }
        )
        del model
    return rows


def result_rows(results, setting, models=None, extra=None):
    """Rows for `agekeras.tables.results_table` from `{model: metrics dict}`.

    Args:
        results: registry name -> the dict returned by `agekeras.training.train`.
        setting: dict of setting columns, e.g. `{"dataset": "utkface-dev 15-40",
            "size": 64}`.
        models: order (default: the keys of `results`).
        extra: optional registry name -> dict of more columns (e.g. parameters).

    Returns:
        list of dicts with method, the setting, MAE, RMSE and CA(5) (%).
    """
    rows = []
    for name in models or list(results):
        m = results[name]
        ca5 = m.get("ca5")
        rows.append(
            {
                "method": METHOD_NAMES.get(name, name),
                **setting,
                "MAE": m["mae"],
                "RMSE": m["rmse"],
                "CA(5) %": None if ca5 is None else 100 * float(ca5),
                **(extra or {}).get(name, {}),
            }
        )
    return rows


def paper_rows(models, note="not available offline"):
    """The paper's numbers per method: none are available offline, so every
    metric is missing ("—") and the setting column says why."""
    return {METHOD_NAMES.get(n, n): {"dataset": f"AFAD 15-40 ({note})"} for n in models}
