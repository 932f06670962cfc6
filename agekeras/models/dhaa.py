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
of global, local, global_local), `pooling="roi"` (axis-aligned boxes instead
of ARP), `fusion="fc"` (shared FC instead of the LSTM), `sub_losses=False`
(the nine sub-network classifiers and their outputs are not built: their
loss is removed, which is the same as a loss weight of 0, and the model is
smaller by nine heads).

Readings of the paper (also listed in notebook 04):

* "a conv of 128 kernels": 1x1 (a channel reduction), with BN and ReLU.
* A branch switched off still lets the global-local branch use its block-2
  features (global-local needs them); what goes is its blocks 3-4, its
  classifiers and its fused feature.
* The pooled size is 56 x 56 at 256 px input and proportional otherwise
  (14 x 14 at 64 px), see `pooled_size_for`.
* `width` scales the ResNet filters (64-128-256-512); 1.0 is ResNet-18. Values
  below 1 are for QUICK smoke tests only (nine sub-networks are heavy).
* Prediction: expectation over the age classes of the final classifier;
  `predict_outputs(..., flip=True)` averages the probabilities of the image
  and of its mirror image (landmarks mirrored too) before the expectation.

Helpers for the notebook: `sub_network_names`, `predict_outputs`,
`embeddings`, `per_head_mae`, `region_polygons`, `plot_regions`,
`plot_bars`, `parameter_counts`, `benchmark_training`.
"""

from __future__ import annotations

import resource
import time

import keras
import numpy as np

from agekeras.layers import AlignedRegionPooling, DEXHead, RecurrentFusion
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

MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)


def pooled_size_for(image_size):
    """The ARP output size: 56 at 256 px, proportional otherwise (>= 4)."""
    return max(4, int(round(56 * int(image_size) / 256)))


def _filters(base, width):
    return max(4, int(round(base * width)))


def _stack(x, filters, stride, first_shortcut, name):
    # keras-cv's own ResNet v1 basic-block stack (two blocks, ResNet-18), the
    # code its ResNetBackbone uses; it is not exported outside `src`.
    from keras_cv.src.models.backbones.resnet_v1.resnet_v1_backbone import apply_stack

    return apply_stack(
        x, filters=filters, blocks=2, stride=stride, block_type="basic_block",
        first_shortcut=first_shortcut, name=name,
    )  # fmt: skip


def _stem(x, width):
    from keras_cv.src.models.backbones.resnet_v1.resnet_v1_backbone import BN_EPSILON

    x = keras.layers.Conv2D(_filters(64, width), 7, strides=2, use_bias=False, padding="same", name="conv1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
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

    image = keras.Input(input_shape, name="image")
    landmarks = keras.Input((5, 2), name="landmarks")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(image)
    c_b1 = _stem(x, width)

    need_global = "global" in branches or "global_local" in branches
    need_local = "local" in branches or "global_local" in branches
    subs = [s for b, group in SUB_NETWORKS.items() for s in group[:3] if b != "global_local"]
    subs = [s for s in subs if (s.startswith("global") and need_global) or (s.startswith("local") and need_local)]
    regions = [REGION_OF[s] for s in subs]
    arp = AlignedRegionPooling(
        output_size=size, image_size=input_shape[:2], regions=regions,
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
    sub_losses, width, feature_dim, pooled_size, dropout; see `build_dhaa`)."""
    return build_dhaa(input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)


# ----- analysis helpers ---------------------------------------------------------------


def sub_network_names(model):
    """Names of the sub-networks whose classifier is an output of `model`."""
    return [k[len("age_probs_"):] for k in model.output if k.startswith("age_probs_")]


def parameter_counts(model):
    """Parameters of `model`: total, shared trunk (stem + C_B1), each
    sub-network (its blocks, head conv/FC and classifier) and the fusion +
    final classifier."""
    counts = {"total": model.count_params()}
    groups = {"trunk": ("conv1_", "pool1_", "c_b1")}
    for group in SUB_NETWORKS.values():
        for sub in group:
            groups[sub] = (f"{sub}_",)
    groups["fusion+final"] = ("global_fusion", "local_fusion", "global_local_fusion", "dex_head")
    for key, prefixes in groups.items():
        n = sum(layer.count_params() for layer in model.layers if layer.name.startswith(prefixes))
        if n:
            counts[key] = n
    return counts


def _dataset(model, ds, image_size, batch_size, flip):
    from agekeras.datasets.pipeline import make_tf_dataset

    needs_landmarks = "landmarks" in [t.name for t in model.inputs]
    data = make_tf_dataset(
        ds, image_size=image_size, batch_size=batch_size, training=False, augment=False,
        with_landmarks=needs_landmarks,
    )  # fmt: skip
    width = float(image_size)

    def mirror(x, y):
        import tensorflow as tf  # tf.data graphs are TensorFlow whatever the backend

        if not needs_landmarks:
            return tf.reverse(x, axis=[2])
        points = tf.gather(x["landmarks"], MIRRORED_LANDMARKS, axis=1)
        points = tf.stack([width - 1.0 - points[..., 0], points[..., 1]], axis=-1)
        return {"image": tf.reverse(x["image"], axis=[2]), "landmarks": points}

    return data.map(mirror) if flip else data.map(lambda x, y: x)


def predict_outputs(model, ds, image_size, batch_size=64, flip=True, age_min=None):
    """The model's outputs on every face of `ds`, with flip test-time averaging.

    With `flip`, every `*probs*` output is the mean of the outputs on the
    image and on its mirror image (landmarks mirrored and left/right swapped),
    and `age` is recomputed as the expectation of the averaged `age_probs`
    with ages `age_min + k` (default: the `age_min` of the model's
    "dex_head").

    Returns:
        dict of NumPy arrays, one per output.
    """
    out = model.predict(_dataset(model, ds, image_size, batch_size, False), verbose=0)
    return _flip_average(model, out, ds, image_size, batch_size, age_min) if flip else out


def _flip_average(model, out, ds, image_size, batch_size, age_min):
    """`predict_outputs(flip=True)` given the un-flipped outputs `out`."""
    mirrored = model.predict(_dataset(model, ds, image_size, batch_size, True), verbose=0)
    avg = {k: (out[k] + mirrored[k]) / 2.0 for k in out if "probs" in k}
    if age_min is None:
        age_min = model.get_layer("dex_head").age_min
    avg["age"] = expectation(avg["age_probs"], age_min) if "age_probs" in avg else (out["age"] + mirrored["age"]) / 2
    return avg


def expectation(probs, age_min=0):
    """`sum_k p_k (age_min + k)` over the last axis (NumPy)."""
    probs = np.asarray(probs, dtype="float64")
    return probs @ (age_min + np.arange(probs.shape[-1]))


def per_head_mae(outputs, ages, age_min=0):
    """MAE of the expectation of every `age_probs*` output (Fig. 6).

    Returns:
        dict name -> MAE, "final" for `age_probs`, the sub-network name
        otherwise, in the order of `outputs`.
    """
    ages = np.asarray(ages, dtype="float64")
    result = {}
    for key, probs in outputs.items():
        if key.startswith("age_probs"):
            name = "final" if key == "age_probs" else key[len("age_probs_"):]
            result[name] = float(np.mean(np.abs(expectation(probs, age_min) - ages)))
    return result


def embeddings(model, ds, image_size, batch_size=64, layer="embedding"):
    """The output of `layer` (default "embedding", the fused feature of DHAA
    or the pooled feature of the baselines) for every face of `ds`."""
    features = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(features.predict(_dataset(model, ds, image_size, batch_size, False), verbose=0))


def region_polygons(landmarks, image_size, regions=None, mode="affine"):
    """Corners of each ARP region in image pixels, for drawing.

    Args:
        landmarks: `(n, 5, 2)` pixel landmarks.
        image_size: int, the image size the landmarks refer to.
        regions: region names (default: all six).
        mode: "affine" or "roi".

    Returns:
        `(n, R, 4, 2)` continuous pixel coordinates (0 = left edge of the
        image) of the corners top-left, top-right, bottom-right, bottom-left.
    """
    from agekeras.layers.aligned_region_pooling import DEFAULT_REGIONS

    arp = AlignedRegionPooling(4, image_size, regions=regions or DEFAULT_REGIONS, mode=mode)
    theta = keras.ops.convert_to_numpy(arp.region_thetas(np.asarray(landmarks, "float32")))
    corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], "float64")
    normalised = np.einsum("ck,nrdk->nrcd", corners, theta)
    return (normalised + 1.0) / 2.0 * image_size


def plot_regions(images, landmarks, regions=None, mode="affine", crop_size=48, save_to=None):
    """Faces with their ARP regions drawn, and what each region sees.

    Row i: face i with the landmarks and the region outlines, then the crop of
    every region (ARP applied to the image itself at `crop_size`).

    Returns:
        The matplotlib `Figure`.
    """
    import matplotlib.pyplot as plt

    from agekeras.layers.aligned_region_pooling import DEFAULT_REGIONS

    regions = tuple(regions or DEFAULT_REGIONS)
    images = np.asarray(images, "float32")
    landmarks = np.asarray(landmarks, "float32")
    n, size = len(images), images.shape[1]
    polys = region_polygons(landmarks, size, regions, mode)
    arp = AlignedRegionPooling(crop_size, size, regions=regions, mode=mode)
    crops = [keras.ops.convert_to_numpy(c) for c in arp([images, landmarks])]
    fig, axes = plt.subplots(n, len(regions) + 1, figsize=(1.6 * (len(regions) + 1), 1.7 * n), squeeze=False)
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(np.clip(images[i], 0, 255).astype("uint8"))
        for r in range(len(regions)):
            p = np.vstack([polys[i, r], polys[i, r, :1]]) - 0.5
            ax.plot(p[:, 0], p[:, 1], color=f"C{r}", lw=1)
        ax.scatter(landmarks[i, :, 0], landmarks[i, :, 1], s=6, c="w", edgecolors="k", linewidths=0.3)
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
        for r, region in enumerate(regions):
            axes[i, r + 1].imshow(np.clip(crops[r][i], 0, 255).astype("uint8"))
            if i == 0:
                axes[i, r + 1].set_title(region, fontsize=8, color=f"C{r}")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title(f"regions ({mode})", fontsize=8)
    fig.tight_layout()
    if save_to is not None:
        fig.savefig(save_to, dpi=120, bbox_inches="tight")
    return fig


def plot_bars(values, ylabel="MAE", title=None, reference=None, save_to=None):
    """A bar chart of name -> value (e.g. the ablation MAEs of Fig. 5 or the
    per-classifier MAEs of Fig. 6); `reference` draws a dashed line."""
    import matplotlib.pyplot as plt

    names, heights = list(values), [float(v) for v in values.values()]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(names) + 1.5), 3.2))
    bars = ax.bar(range(len(names)), heights, color=[f"C{i % 10}" for i in range(len(names))])
    for bar, h in zip(bars, heights):
        ax.text(bar.get_x() + bar.get_width() / 2, h, f"{h:.2f}", ha="center", va="bottom", fontsize=7)
    if reference is not None:
        ax.axhline(float(reference), color="k", ls="--", lw=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if save_to is not None:
        fig.savefig(save_to, dpi=120, bbox_inches="tight")
    return fig


ABLATIONS = {
    "Res18+EX": ("resnet18_dex", {}),
    "global": ("dhaa", {"branches": ["global"]}),
    "local": ("dhaa", {"branches": ["local"]}),
    "global-local": ("dhaa", {"branches": ["global_local"]}),
    "global + local": ("dhaa", {"branches": ["global", "local"]}),
    "DHAA": ("dhaa", {}),
    "DHAA, ROI pooling": ("dhaa", {"pooling": "roi"}),
    "DHAA, FC fusion": ("dhaa", {"fusion": "fc"}),
    "DHAA, no sub-network losses": ("dhaa", {"sub_losses": False}),
}
"""The variants of Table 1 / Fig. 5: label -> (registry name, model kwargs)."""


def train_variant(label, config, out_root, variants=None):
    """Train one variant of `ABLATIONS` with the settings of `config`.

    DHAA variants get `config.model_kwargs` (e.g. the QUICK `width`) plus
    their own flags; the baseline gets none of them. The run goes to
    `out_root/<label as a file name>`.

    Returns:
        (run_dir, test metrics dict of `agekeras.training.train`).
    """
    import dataclasses
    import pathlib

    from agekeras.training import train

    name, kwargs = (variants or ABLATIONS)[label]
    base = dict(config.model_kwargs) if name == "dhaa" else {}
    slug = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
    run_dir = pathlib.Path(out_root) / slug
    cfg = dataclasses.replace(config, model=name, model_kwargs={**base, **kwargs}, out=str(run_dir))
    return run_dir, train(cfg)


def evaluate_flip(run_dir, ds, checkpoint="best.keras", batch_size=64):
    """Test MAE of a run with and without flip test-time averaging.

    Returns:
        (row, outputs, model, age_min): row = dict with "MAE", "MAE flip" and
        "RMSE flip"; outputs = the flip-averaged outputs (`predict_outputs`);
        the loaded checkpoint and its `age_min`.
    """
    import json
    import pathlib

    run_dir = pathlib.Path(run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    size, age_min = saved["train"]["image_size"], saved["age_min"]
    if not (run_dir / checkpoint).exists():
        checkpoint = "last.keras"
    model = keras.saving.load_model(run_dir / checkpoint, safe_mode=True)
    plain = predict_outputs(model, ds, size, batch_size, flip=False)
    flipped = _flip_average(model, plain, ds, size, batch_size, age_min)  # reuses the un-flipped pass
    true = np.asarray(ds.age, "float64")
    err = np.asarray(flipped["age"], "float64").reshape(-1) - true
    row = {
        "MAE": float(np.mean(np.abs(np.asarray(plain["age"], "float64").reshape(-1) - true))),
        "MAE flip": float(np.mean(np.abs(err))),
        "RMSE flip": float(np.sqrt(np.mean(err**2))),
    }
    return row, flipped, model, age_min


def benchmark_training(input_shape=(64, 64, 3), batch_size=16, steps=3, num_classes=101, **model_kwargs):
    """Training speed of DHAA on random data (after one warm-up step).

    Returns:
        dict with `img_per_s`, `params` and `peak_rss_mib`: the process's
        peak resident memory so far (`ru_maxrss`, Linux KiB -> MiB; it also
        counts whatever the process did before the call).
    """
    from agekeras.models import compile_args

    model = build_dhaa(input_shape=input_shape, num_classes=num_classes, **model_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_args(model))
    rng = np.random.default_rng(0)
    x = {
        "image": rng.uniform(0, 255, (batch_size, *input_shape)).astype("float32"),
        "landmarks": ((canonical_landmarks(input_shape[0]))[None] + rng.normal(0, 1, (batch_size, 5, 2))).astype("float32"),
    }
    klass = rng.integers(0, num_classes, batch_size)
    y = {k: klass for k in model.output if k.startswith("age_probs")}
    y["age"] = klass.astype("float32")
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    return {
        "img_per_s": steps * batch_size / seconds,
        "params": model.count_params(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def canonical_landmarks(image_size):
    """The canonical landmarks (`aligned_region_pooling.CANONICAL`) in pixels
    of an `image_size` image."""
    from agekeras.layers.aligned_region_pooling import CANONICAL

    return (CANONICAL + 1.0) / 2.0 * image_size - 0.5
