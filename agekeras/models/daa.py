"""DAA model builders: "A Delta Age AdaIN operation for age estimation via
binary code transformer" (Chen et al., CVPR 2023), notebook 03.

The network has four parts (Fig. 1 of the paper):

    image -> FaceEncoder -> E(x) (h, w, C)
    binary codes of the ages -> MLP -> (s_y, t_y) per age          (BinaryCodeMapping)
    DAA: delta(x, y) = AdaIN(E(x), s_y, t_y) - E(x) for every age   (Eq. 7)
    AgeDecoder: delta(x, y) -> Delta_y; age = mean_y (y - Delta_y)   (Eqs. 8-9)

trained with the smooth L1 loss on the age (Eq. 10). The decoder here is the
factorised one (`AgeDecoder` on `[features, s, t, ages]`: three
convolutions for all ages); `decoder="naive"` builds the reference path
(`DeltaAgeAdaIN` materialising every age's delta map, then the same
decoder), used by `benchmarks/daa_decoder.py`.

This module holds the builders and the registry only; training the
ablation, templates from a dataset, interval sweeps, the learned styles and
the paper's tables live in `agekeras.experiments.daa`.

Registered models (all regression on the "age" output with `SmoothL1`):

| name | FaceEncoder | style of age y |
|---|---|---|
| `daa_resnet18` | ResNet-18 adapted to faces | binary code mapping (the paper's method) |
| `daa_c3ae` | C3AE (plain) | binary code mapping |
| `daa_resnet18_single` | ResNet-18 adapted | template face, per-channel statistics (Eq. 3) |
| `daa_resnet18_multi` | ResNet-18 adapted | template face, statistics over all channels (Eq. 5) |
| `daa_resnet18_plain` | ResNet-18 adapted | none: GAP + FC regression, the paper's "w/o DAA" |
| `daa_c3ae_plain` | C3AE (plain) | none: GAP + FC regression |

`daa_resnet18_plain` is not the foundation's `resnet18_regression`: that one
is the standard ResNet-18 (7x7 stride-2 stem + max-pool), while the paper's
"w/o DAA" baseline uses the same adapted face encoder as DAA.

FaceEncoders, following the authors' code (github.com/redcping/
Delta_Age_AdaIN, `Networks/ResNets.py`, `Networks/C3AENet.py`):
- ResNet-18 adapted: first conv 3x3 (stride 2, 64 filters) instead of 7x7,
  no max-pool, then the four basic-block stages (strides 1, 2, 2, 2): total
  stride 16, so 512 x 8 x 8 at 128 px (4 x 4 at 64 px). The stride 2 of the
  3x3 stem is the authors'; it is what gives 8 x 8 at 128 px.
- C3AE plain: 3 x [Conv 3x3 valid (32) -> BN -> h-swish -> AvgPool 2 ->
  SE], Conv 3x3 valid -> BN -> h-swish -> SE, Conv 1x1 -> SE (the authors'
  C3AE, with squeeze-excitation blocks 32 -> 16 -> 32 and h-swish). With
  valid convolutions it gives 32 x 8 x 8 at 96 px (the authors' config
  mentions 96) and 32 x 4 x 4 at 64 px (the original C3AE's 64 px input).

Output scale: the AgeDecoder multiplies its FC output by `delta_scale`, by
default the standard deviation of the comparison ages (28.9 for ages
0..99), and the "w/o DAA" baselines scale their FC output the same way
around the middle of the age range (where DAA starts, Eq. 9 with zero
deltas). The paper's parametrisation is `delta_scale=1.0`; it describes the
same functions, but with Adam (steps of ~lr whatever the gradient) an FC
output in years needs thousands of steps to reach offsets of tens of years:
on UTKFace at 64 px the unscaled DAA model was still at the median
predictor's error after 4 epochs. The scale is a re-parametrisation for a
CPU budget of minutes, not part of the method.

Template variants: the style of age y comes from one real face of (about)
age y, passed through the same encoder at every step (gradients flow through
it, as in the authors' code); the template faces are stored in the model (a
non-trainable `TemplateBank` weight, saved with it), chosen once from the
training split (`agekeras.experiments.daa.select_templates`), not re-drawn
every batch as the authors' data loader may do. Give them to the builder as
`templates="path.npz"` (keys `images` (n, H, W, 3) in [0, 255] at the
model's input size and `ages` (n,); written by
`agekeras.experiments.daa.save_templates`) or as a dict of arrays. Without
templates the builder uses placeholder noise images (and warns): fine for a
smoke test, meaningless for training.

Reference: A Delta Age AdaIN operation for age estimation via binary code
transformer (Chen et al., CVPR 2023), https://arxiv.org/abs/2303.07929.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
from keras import ops

from agekeras.layers import AgeDecoder, BinaryCodeMapping, DeltaAgeAdaIN, TemplateBank, TemplateStatistics
from agekeras.losses import SmoothL1
from agekeras.models.backbones import BN_EPSILON, resnet_stack, scale_inputs
from agekeras.models.registry import register

logger = logging.getLogger("agekeras.models.daa")

VARIANTS = ("binary", "single", "multi")
DECODERS = ("factorised", "naive")


# ----- FaceEncoders --------------------------------------------------------------


def face_resnet18(input_shape, name="face_resnet18"):
    """ResNet-18 adapted to faces: `(H, W, 3)` in [-1, 1] -> `(H/16, W/16, 512)`.

    3x3 stride-2 stem conv (no bias) + BN + ReLU, no max-pool, then
    the ResNet v1 basic-block stages 64-128-256-512 of
    `agekeras.models.backbones.resnet_stack` (2 blocks each, strides
    1-2-2-2; the first stage has an identity shortcut, as in torchvision,
    since it keeps the width and the resolution).
    """
    h, w = input_shape[0], input_shape[1]
    if (h is not None and h < 16) or (w is not None and w < 16):
        raise ValueError(f"face_resnet18 needs inputs of at least 16x16 (total stride 16), got {input_shape}.")
    inputs = keras.Input(tuple(input_shape), name="scaled_image")
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for i, (filters, stride) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2))):
        x = resnet_stack(x, filters, blocks=2, stride=stride, first_shortcut=i > 0, name=f"stage{i + 1}")
    return keras.Model(inputs, x, name=name)


def c3ae_output_size(size):
    """Spatial size of the C3AE feature map for an input side `size` (valid convs)."""
    for _ in range(3):
        size = (size - 2) // 2
    return size - 2


def c3ae_encoder(input_shape, name="c3ae_encoder"):
    """C3AE plain encoder (the DAA authors' version): `(H, W, 3)` -> `(h, w, 32)`.

    h = ((((H - 2) // 2 - 2) // 2 - 2) // 2) - 2: 8 at 96 px, 4 at 64 px.
    """
    for side in input_shape[:2]:
        if side is not None and c3ae_output_size(side) < 1:
            raise ValueError(f"C3AE needs inputs of at least 40x40 (valid convolutions), got {input_shape}.")

    inputs = keras.Input(tuple(input_shape), name="scaled_image")
    x = inputs
    for i in range(3):
        x = keras.layers.Conv2D(32, 3, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = keras.layers.Activation("hard_swish", name=f"hswish{i + 1}")(x)
        x = keras.layers.AveragePooling2D(2, name=f"pool{i + 1}")(x)
        x = _squeeze_excite(x, f"se{i + 1}")
    x = keras.layers.Conv2D(32, 3, name="conv4")(x)
    x = keras.layers.BatchNormalization(name="bn4")(x)
    x = keras.layers.Activation("hard_swish", name="hswish4")(x)
    x = _squeeze_excite(x, "se4")
    x = keras.layers.Conv2D(32, 1, name="conv5")(x)
    x = _squeeze_excite(x, "se5")
    return keras.Model(inputs, x, name=name)


def _squeeze_excite(x, name):
    """Squeeze-excitation 32 -> 16 -> 32 (h-swish, sigmoid), as the authors'
    `se_module`, from Keras layers (keras-cv's `SqueezeAndExcite2D` computes
    the same but has no `build()`, which Keras warns about on every load)."""
    w = keras.layers.GlobalAveragePooling2D(keepdims=True, name=name + "_pool")(x)
    w = keras.layers.Conv2D(16, 1, activation="hard_swish", name=name + "_squeeze")(w)
    w = keras.layers.Conv2D(32, 1, activation="sigmoid", name=name + "_excite")(w)
    return keras.layers.Multiply(name=name)([x, w])


ENCODERS = {"resnet18": face_resnet18, "c3ae": c3ae_encoder}


# ----- template faces ------------------------------------------------------------


def _load_templates(templates, input_shape, num_classes, age_min):
    if templates is None:
        logger.warning(
            "DAA template variant built without templates: using placeholder noise images. "
            "Pass templates='file.npz' (see agekeras.experiments.daa.save_templates) for real training."
        )
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (num_classes, *input_shape)).astype("float32")
        return images, np.arange(num_classes, dtype="float32") + age_min
    if isinstance(templates, str):
        with np.load(templates) as data:
            images, ages = data["images"], data["ages"]
    elif isinstance(templates, dict):
        images, ages = templates["images"], templates["ages"]
    else:
        images, ages = templates
    images = np.asarray(images, "float32")
    ages = np.asarray(ages, "float32").reshape(-1)
    if images.shape[1:] != tuple(input_shape) or len(images) != len(ages):
        raise ValueError(
            f"template images must be (n, {', '.join(map(str, input_shape))}) with n ages; "
            f"got images {images.shape} and ages {ages.shape}."
        )
    return images, ages


# ----- models --------------------------------------------------------------------


def daa_model(
    encoder="resnet18",
    *,
    input_shape=(64, 64, 3),
    num_classes=101,
    age_min=0,
    variant="binary",
    interval=1,
    decoder="factorised",
    decoder_channels=64,
    bits=8,
    epsilon=1e-5,
    templates=None,
    delta_scale="auto",
    name=None,
):
    """Build a DAA model.

    Args:
        encoder: "resnet18" (adapted ResNet-18) or "c3ae".
        input_shape: `(H, W, 3)`, pixels in [0, 255].
        num_classes: number of comparison ages A for the binary mapping
            (ages age_min..age_min+A-1; the paper: 100).
        age_min: age of code 0.
        variant: "binary" (binary code mapping), "single" (template,
            per-channel statistics, Eq. 3) or "multi" (template, statistics
            over all channels, Eq. 5).
        interval: use every `interval`-th comparison age (Tables 6-7).
        decoder: "factorised" (default) or "naive" (reference).
        decoder_channels: filters of the AgeDecoder conv (64).
        bits: binary code length (8).
        epsilon: DAA variance epsilon.
        templates: template faces for "single"/"multi" (see module docstring).
        delta_scale: `AgeDecoder` output scale; "auto" = the standard
            deviation of the comparison ages (28.9 for 100 ages), 1.0 = the
            paper's parametrisation (see `AgeDecoder`; same function class,
            it only changes how fast Adam can move the deltas).
        name: model name.

    Returns:
        A `keras.Model` image -> `{"age": (batch,)}`.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(ENCODERS)}, got {encoder!r}.")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {input_shape}.")
    enc = ENCODERS[encoder](input_shape)
    if variant == "binary":
        comparison = BinaryCodeMapping(
            num_ages=num_classes, age_min=age_min, bits=bits, interval=interval, dtype="float32",
            name="binary_code_mapping",
        )
        stats = None
    else:
        images, template_ages = _load_templates(templates, input_shape, num_classes, age_min)
        comparison = TemplateBank(len(images), input_shape, interval=interval, name="template_bank")
        comparison.set_templates(images, template_ages)
        stats = TemplateStatistics("channel" if variant == "single" else "all", epsilon, dtype="float32",
                                   name="template_statistics")
    if delta_scale == "auto":
        delta_scale = _age_spread(template_ages if variant != "binary" else age_min + np.arange(num_classes))
    adain = DeltaAgeAdaIN(epsilon, name="delta_age_adain") if decoder == "naive" else None
    age_decoder = AgeDecoder(decoder_channels, epsilon=epsilon, delta_scale=delta_scale, dtype="float32",
                             name="age_decoder")
    return daa_graph(input_shape, enc, comparison, stats, adain, age_decoder,
                      name or f"daa_{encoder}_{variant}")


def daa_graph(input_shape, encoder, comparison, stats, adain, decoder, name, with_deltas=False):
    """Wire the DAA layers into a functional model image -> {"age"}.

    features = FaceEncoder(image); (s_y, t_y, y) from the binary code mapping
    (Eq. 7) or from the template faces' statistics (Eqs. 3, 5); the
    AgeDecoder turns [features, s, t, y] (or the naive `DeltaAgeAdaIN` maps)
    into the deltas Delta_y and the age mean_y (y - Delta_y) (Eqs. 8-9).
    Images and template faces share the one FaceEncoder. Also used by
    `with_interval` and, with the deltas as extra outputs, by
    `with_delta_outputs`.
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    features = encoder(scale_inputs(inputs))
    if isinstance(comparison, BinaryCodeMapping):
        s, t, ages = comparison(features)
    else:
        template_images, ages = comparison(inputs)
        s, t = stats(encoder(scale_inputs(template_images, name="template_scale")))
    if adain is not None:
        deltas, age = decoder([adain([features, s, t]), ages])
    else:
        deltas, age = decoder([features, s, t, ages])
    outputs = {"age": age, "deltas": deltas, "comparison_ages": ages} if with_deltas else {"age": age}
    return keras.Model(inputs, outputs, name=name)


def _daa_parts(model):
    """The layers `daa_graph` needs, found by type in a DAA model."""

    def of_type(kind):
        return [layer for layer in model.layers if isinstance(layer, kind)]

    comparison = of_type((BinaryCodeMapping, TemplateBank))
    if len(comparison) != 1:
        raise ValueError(f"{model.name!r} has no DAA comparison-age layer (BinaryCodeMapping or TemplateBank).")
    encoder, decoder = of_type(keras.Model), of_type(AgeDecoder)
    stats, adain = of_type(TemplateStatistics), of_type(DeltaAgeAdaIN)
    if len(encoder) != 1 or len(decoder) != 1 or len(stats) > 1 or len(adain) > 1:
        raise ValueError(f"{model.name!r} is not a DAA model built by `daa_model` (one encoder, one AgeDecoder).")
    return {
        "encoder": encoder[0],
        "comparison": comparison[0],
        "stats": stats[0] if stats else None,
        "adain": adain[0] if adain else None,
        "decoder": decoder[0],
    }


def _age_spread(ages):
    """Standard deviation of a set of ages (>= 1): the natural unit of a delta age."""
    return float(max(np.std(np.asarray(ages, "float64")), 1.0))


def plain_model(encoder="resnet18", *, input_shape=(64, 64, 3), num_classes=101, age_min=0, output_scale="auto",
                name=None):
    """The paper's "w/o DAA" baseline: the same FaceEncoder, global average
    pooling and one FC output (regression, smooth L1).

    To compare like with like, its output is parametrised as DAA's: age =
    mid + scale * FC(GAP(E)), with mid the middle of the age range (where DAA
    starts too, Eq. 9 with zero deltas) and scale the spread of the ages
    ("auto", as DAA's `delta_scale`; 1.0 and mid = 0 for a bare FC with
    `output_scale=None`), FC initialised like DAA's (normal, std 0.01).
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(ENCODERS)}, got {encoder!r}.")
    input_shape = tuple(input_shape)
    ages = age_min + np.arange(num_classes)
    scale, mid = (1.0, 0.0) if output_scale is None else (
        _age_spread(ages) if output_scale == "auto" else float(output_scale), float(ages.mean()))
    inputs = keras.Input(input_shape, name="image")
    x = scale_inputs(inputs)
    x = ENCODERS[encoder](input_shape)(x)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    y = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01), dtype="float32",
                           name="age_dense")(x)
    y = keras.layers.Rescaling(scale, offset=mid, dtype="float32", name="age_scale")(y)
    age = keras.layers.Reshape((), dtype="float32", name="age_reshape")(y)
    return keras.Model(inputs, {"age": age}, name=name or f"daa_{encoder}_plain")


def with_interval(model, interval):
    """The same trained DAA model comparing with every `interval`-th age.

    Rebuilds the graph with the `BinaryCodeMapping` (or `TemplateBank`) set
    to `interval` and every other layer shared with `model` (same weights,
    no copy); the interval only selects which (s_y, t_y) are used, so the
    trained weights carry over (interval sampling, Tables 6-7).
    """
    parts = _daa_parts(model)
    old = parts["comparison"]
    new = old.__class__.from_config({**old.get_config(), "interval": int(interval)})
    new.build()
    new.set_weights(old.get_weights())
    parts["comparison"] = new
    return daa_graph(model.inputs[0].shape[1:], name=f"{model.name}_every{int(interval)}", **parts)


def with_delta_outputs(model):
    """The same DAA model (shared layers and weights) with two more outputs:
    `{"age": (batch,), "deltas": (batch, A), "comparison_ages": (A,)}`, the
    per-age delta ages Delta_y of Eq. 8 and the ages y they compare with."""
    return daa_graph(model.inputs[0].shape[1:], name=f"{model.name}_deltas", with_deltas=True,
                      **_daa_parts(model))


# ----- registry ------------------------------------------------------------------

_LOSSES = {"age": SmoothL1()}
_DESC = "DAA (Chen et al. 2023): "


@register("daa_resnet18", paper="daa", description=_DESC + "adapted ResNet-18 + binary code mapping", losses=_LOSSES)
def daa_resnet18(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
    """DAA with the adapted ResNet-18 FaceEncoder (kwargs: see `daa_model`)."""
    kwargs.setdefault("name", "daa_resnet18")
    return daa_model("resnet18", input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)


@register("daa_c3ae", paper="daa", description=_DESC + "C3AE (plain) + binary code mapping", losses=_LOSSES)
def daa_c3ae(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
    """DAA with the C3AE (plain) FaceEncoder (kwargs: see `daa_model`)."""
    kwargs.setdefault("name", "daa_c3ae")
    return daa_model("c3ae", input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)


@register("daa_resnet18_single", paper="daa", description=_DESC + "template faces, per-channel statistics (Eq. 3)",
          losses=_LOSSES)
def daa_resnet18_single(input_shape=(64, 64, 3), num_classes=101, age_min=0, templates=None, **kwargs):
    """DAA single-channel template variant (kwargs: see `daa_model`)."""
    kwargs.setdefault("name", "daa_resnet18_single")
    return daa_model("resnet18", input_shape=input_shape, num_classes=num_classes, age_min=age_min,
                     variant="single", templates=templates, **kwargs)


@register("daa_resnet18_multi", paper="daa", description=_DESC + "template faces, all-channel statistics (Eq. 5)",
          losses=_LOSSES)
def daa_resnet18_multi(input_shape=(64, 64, 3), num_classes=101, age_min=0, templates=None, **kwargs):
    """DAA multi-channel template variant (kwargs: see `daa_model`)."""
    kwargs.setdefault("name", "daa_resnet18_multi")
    return daa_model("resnet18", input_shape=input_shape, num_classes=num_classes, age_min=age_min,
                     variant="multi", templates=templates, **kwargs)


@register("daa_resnet18_plain", paper="daa", description=_DESC + "'w/o DAA' baseline, adapted ResNet-18 + FC",
          losses=_LOSSES)
def daa_resnet18_plain(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
    """The paper's "w/o DAA" baseline on the adapted ResNet-18 (kwargs: see `plain_model`)."""
    return plain_model("resnet18", input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)


@register("daa_c3ae_plain", paper="daa", description=_DESC + "'w/o DAA' baseline, C3AE + FC", losses=_LOSSES)
def daa_c3ae_plain(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
    """The "w/o DAA" baseline on the C3AE (plain) encoder (kwargs: see `plain_model`)."""
    return plain_model("c3ae", input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)
