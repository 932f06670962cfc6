"""DHAA, the Deep Hybrid-Aligned Architecture of "Deeply-learned Hybrid
Representations for Facial Age Estimation" (Tan, Yang, Wan, Guo and Li,
IJCAI 2019).

A ResNet-18 whose first residual stage (C_B1: stem + conv2_x) is shared. Its
feature map is cut by `AlignedRegionPooling` (Eq. 1) into five regions plus
the whole map; nine sub-networks then run on them:

| branch | sub-networks (output name) | input | owns |
|---|---|---|---|
| global | global1, global2, global3 | whole map, inner face, 1.2x face | ResNet blocks 2-4 |
| local | local1, local2, local3 | left eye, nose, mouth windows | ResNet blocks 2-4 |
| global-local | gl1, gl2, gl3 | concat(global_k, local_k block-2 maps) | ResNet blocks 3-4 |

Each sub-network ends with a 1x1 conv of 128 kernels (+ BN + ReLU), global
average pooling and FC 128 (+ ReLU), giving a 128-d feature z, and a
classifier of its own (softmax over ages: output `age_probs_<sub>`). In each
branch `RecurrentFusion` runs an LSTM over z_1, z_2, z_3 and sums the hidden
states (Eqs. 2-3); the three branch features are concatenated (layer
"embedding") for the final classifier (`age_probs`) whose expectation is the
predicted `age`.

Loss (Eq. 4): cross-entropy on the final classifier plus one on each of the
nine sub-network classifiers, all with weight 1 (ten terms). They come from
the output-name conventions (`agekeras.models.outputs`): every `age_probs*`
output gets a sparse cross-entropy.

Ablation flags of `dhaa` (Table 1, Fig. 5): `branches` (any non-empty subset
of global, local, global_local), `pooling="roi"` (axis-aligned boxes centred on
the paper's points instead of ARP, see `AlignedRegionPooling`), `fusion="fc"`
(shared FC instead of the LSTM), `sub_losses=False`
(the nine sub-network classifiers and their outputs are not built: their
loss is removed, which is the same as a loss weight of 0, and the model is
smaller by nine heads). `templates` gives a sub-network an ARP region
template of its own (e.g. a window on the other eye).

Readings of the paper (also listed in notebook 04):

* "a conv of 128 kernels": 1x1 (a channel reduction), with BN and ReLU.
* A branch switched off still lets the global-local branch use its block-2
  features (global-local needs them); what goes is its blocks 3-4, its
  classifiers and its fused feature.
* The pooled size is 56 x 56 at 256 px input and proportional otherwise
  (14 x 14 at 64 px), see `pooled_size_for`.
* `width` scales the ResNet filters (64-128-256-512); 1.0 is ResNet-18. Values
  below 1 are for QUICK smoke tests only (nine sub-networks are heavy).
* Prediction: expectation over the age classes of the final classifier.
  Flip test-time averaging, the ablation runs, the paper's tables and the
  figures of notebook 04 live in `agekeras.experiments.dhaa`.

Reference: Deeply-learned Hybrid Representations for Facial Age Estimation
(IJCAI 2019, https://doi.org/10.24963/ijcai.2019/492).
"""

from __future__ import annotations

import keras

from agekeras.layers import AlignedRegionPooling, DEXHead, RecurrentFusion
from agekeras.models.backbones import resnet_stack, resnet_stem, scale_inputs
from agekeras.models.registry import register

BRANCHES = ("global", "local", "global_local")
SUB_NETWORKS = {
    "global": ("global1", "global2", "global3"),
    "local": ("local1", "local2", "local3"),
    "global_local": ("gl1", "gl2", "gl3"),
}
"""Sub-network names per branch; the outputs are `age_probs_<name>`."""

REGION_OF = {
    "global1": "global1",
    "global2": "global2",
    "global3": "global3",
    "local1": "left_eye",
    "local2": "nose",
    "local3": "mouth",
}
"""The ARP region each global/local sub-network reads."""


def pooled_size_for(image_size):
    """The ARP output size: 56 at 256 px, proportional otherwise (>= 4)."""
    return max(4, int(round(56 * int(image_size) / 256)))


def _filters(base, width):
    return max(4, int(round(base * width)))


def _stack(x, filters, stride, first_shortcut, name):
    # Two ResNet v1 basic blocks (a ResNet-18 stage).
    return resnet_stack(x, filters, blocks=2, stride=stride, first_shortcut=first_shortcut, name=name)


def _stem(x, width):
    x = resnet_stem(x, filters=_filters(64, width))
    # C_B1, shared by every branch (identity shortcut as in ResNet-18).
    return _stack(x, _filters(64, width), 1, False, "c_b1")


def _head(x, name, feature_dim):
    x = keras.layers.Conv2D(feature_dim, 1, use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_conv_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_conv_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    return keras.layers.Dense(feature_dim, activation="relu", name=f"{name}_fc")(x)


def build_dhaa(
    input_shape=(64, 64, 3),
    num_classes=101,
    age_min=0,
    *,
    branches=BRANCHES,
    pooling="arp",
    fusion="lstm",
    sub_losses=True,
    width=1.0,
    feature_dim=128,
    pooled_size=None,
    templates=None,
    dropout=0.0,
    name="dhaa",
):
    """Build DHAA (see the module docstring).

    Args:
        input_shape: `(H, W, 3)`, H and W >= 32; images in [0, 255].
        num_classes: number of age classes K (ages age_min..age_min+K-1).
        age_min: age of class 0.
        branches: non-empty subset of ("global", "local", "global_local").
        pooling: "arp" (aligned, Eq. 1) or "roi" (axis-aligned boxes).
        fusion: "lstm" (Eqs. 2-3) or "fc" (shared FC, no recurrence).
        sub_losses: build the nine sub-network classifiers (their outputs
            carry nine of the ten cross-entropy terms of Eq. 4).
        width: multiplier of the ResNet-18 filters (1.0 = ResNet-18).
        feature_dim: size of z, of the fusion LSTM and of each branch feature.
        pooled_size: ARP output size; default `pooled_size_for(H)`.
        templates: optional dict sub-network name ("global2", "global3",
            "local1", "local2", "local3") -> its own five-point region
            template (5 x 2, the frame [-1, 1] of the region, see
            `agekeras.layers.aligned_region_pooling.REGION_TEMPLATES`); that
            sub-network then reads an ARP region named after it instead of
            `REGION_OF[sub]`, e.g. `{"local1": right_eye}` for a window on
            the other eye. The global-local sub-networks follow the maps of
            their global and local partners.
        dropout: dropout before the final classifier.
        name: model name.

    Returns:
        A `keras.Model` with inputs `{"image": (B, H, W, 3), "landmarks":
        (B, 5, 2)}` and outputs `age`, `age_probs` and (with `sub_losses`)
        `age_probs_<sub>` for each sub-network of the enabled branches.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3 or min(input_shape[:2]) < 32:
        raise ValueError(f"input_shape must be (H, W, 3) with H, W >= 32; got {input_shape}.")
    branches = tuple(branches)
    if not branches or any(b not in BRANCHES for b in branches) or len(set(branches)) != len(branches):
        raise ValueError(f"branches must be a non-empty subset of {BRANCHES}; got {branches}.")
    branches = tuple(b for b in BRANCHES if b in branches)
    if pooling not in ("arp", "roi"):
        raise ValueError(f"pooling must be 'arp' or 'roi'; got {pooling!r}.")
    if fusion not in ("lstm", "fc"):
        raise ValueError(f"fusion must be 'lstm' or 'fc'; got {fusion!r}.")
    if not width > 0:
        raise ValueError(f"width must be positive; got {width}.")
    size = int(pooled_size or pooled_size_for(input_shape[0]))
    templates = {str(k): v for k, v in (templates or {}).items()}
    aligned = sorted(s for s in REGION_OF if REGION_OF[s] != "global1")  # global1 is the whole map
    if set(templates) - set(aligned):
        raise ValueError(f"templates: sub-networks with an aligned region are {aligned}; got {sorted(templates)}.")

    image = keras.Input(input_shape, name="image")
    landmarks = keras.Input((5, 2), name="landmarks")
    x = scale_inputs(image)
    c_b1 = _stem(x, width)

    need_global = "global" in branches or "global_local" in branches
    need_local = "local" in branches or "global_local" in branches
    subs = [s for b, group in SUB_NETWORKS.items() for s in group[:3] if b != "global_local"]
    subs = [s for s in subs if (s.startswith("global") and need_global) or (s.startswith("local") and need_local)]
    regions = [s if s in templates else REGION_OF[s] for s in subs]
    arp = AlignedRegionPooling(
        output_size=size, image_size=input_shape[:2], regions=regions,
        templates={s: templates[s] for s in subs if s in templates} or None,
        mode="affine" if pooling == "arp" else "roi", name="arp",
    )  # fmt: skip
    maps = dict(zip(subs, arp([c_b1, landmarks])))

    block2 = {s: _stack(maps[s], _filters(128, width), 2, True, f"{s}_stack2") for s in subs}
    features, outputs = {}, {}

    def finish(sub, x):
        x = _stack(x, _filters(256, width), 2, True, f"{sub}_stack3")
        x = _stack(x, _filters(512, width), 2, True, f"{sub}_stack4")
        features[sub] = _head(x, sub, feature_dim)
        if sub_losses:
            probs, _ = DEXHead(num_classes, age_min=age_min, dtype="float32", name=f"{sub}_head")(features[sub])
            outputs[f"age_probs_{sub}"] = probs

    for branch in branches:
        for k, sub in enumerate(SUB_NETWORKS[branch]):
            if branch == "global_local":
                g, loc = SUB_NETWORKS["global"][k], SUB_NETWORKS["local"][k]
                finish(sub, keras.layers.Concatenate(name=f"{sub}_concat")([block2[g], block2[loc]]))
            else:
                finish(sub, block2[sub])

    fused = [
        RecurrentFusion(units=feature_dim, mode=fusion, name=f"{b}_fusion")([features[s] for s in SUB_NETWORKS[b]])
        for b in branches
    ]
    if len(fused) > 1:
        embedding = keras.layers.Concatenate(name="embedding")(fused)
    else:
        embedding = keras.layers.Identity(name="embedding")(fused[0])
    if dropout:
        embedding = keras.layers.Dropout(dropout, name="head_dropout")(embedding)
    probs, age = DEXHead(num_classes, age_min=age_min, dtype="float32", name="dex_head")(embedding)
    outputs = {"age": age, "age_probs": probs, **outputs}
    return keras.Model({"image": image, "landmarks": landmarks}, outputs, name=name)


@register(
    "dhaa",
    paper="dhaa",
    description="DHAA: aligned region pooling, global/local/global-local ResNet-18 sub-networks, recurrent fusion",
    needs_landmarks=True,
)
def dhaa(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
    """DHAA (Args: input_shape, num_classes, age_min, branches, pooling, fusion,
    sub_losses, width, feature_dim, pooled_size, templates, dropout; see `build_dhaa`)."""
    return build_dhaa(input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)


def _single_branch(branch):
    def builder(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
        return build_dhaa(input_shape=input_shape, num_classes=num_classes, age_min=age_min, branches=(branch,),
                          name=f"dhaa_{branch}", **kwargs)

    builder.__name__ = f"dhaa_{branch}"
    builder.__doc__ = (f"DHAA with its {branch} branch alone (its three sub-networks and their fusion): the "
                       "single-branch ablation of Table 1 (keyword arguments as for `build_dhaa`).")
    return builder


for _branch in BRANCHES:
    register(f"dhaa_{_branch}", paper="dhaa", needs_landmarks=True,
             description=f"DHAA ablation: the {_branch} branch alone (Table 1)")(_single_branch(_branch))
del _branch
