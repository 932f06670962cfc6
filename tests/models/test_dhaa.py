import keras
import numpy as np
import pytest
import tensorflow as tf

import agekeras
from agekeras.datasets import load
from agekeras.datasets.pipeline import make_tf_dataset
from agekeras.layers.aligned_region_pooling import canonical_landmarks
from agekeras.models import compile_args, make_targets
from agekeras.models import dhaa as D

SMALL = dict(input_shape=(32, 32, 3), num_classes=10, age_min=20, width=0.125, feature_dim=8)
SUBS = ["global1", "global2", "global3", "local1", "local2", "local3", "gl1", "gl2", "gl3"]


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return D.build_dhaa(**SMALL)


def batch(n=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    marks = canonical_landmarks(size)[None] + rng.normal(0, 1.0, (n, 5, 2))
    x = {"image": rng.uniform(0, 255, (n, size, size, 3)).astype("float32"), "landmarks": marks.astype("float32")}
    return x, np.array([20, 23, 25, 29, 21, 27, 24, 22][:n], "float32")


def test_registered_with_landmarks():
    entry = agekeras.models.entry("dhaa")
    assert entry.needs_landmarks and entry.paper == "dhaa"
    assert "resnet18_dex" in agekeras.models.available()  # the Res18+EX baseline


def test_outputs_and_parameter_count(small_model):
    assert list(small_model.output) == ["age", "age_probs"] + [f"age_probs_{s}" for s in SUBS]
    assert [t.name for t in small_model.inputs] == ["image", "landmarks"]
    assert small_model.count_params() == 1_570_148


def test_trunk_is_resnet18_stem_and_first_stage():
    """C_B1: the ResNet stem and two basic blocks with identity shortcuts, shared by every region."""
    model = D.build_dhaa(**SMALL)
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["image", "scale", "conv1_conv", "conv1_bn"]
    assert "c_b1_block2_out" in names and "c_b1_block1_0_conv" not in names
    assert model.get_layer("arp").input[0] is model.get_layer("c_b1_block2_out").output


@pytest.mark.slow
def test_full_width_parameter_count():
    """ResNet-18 width: nine sub-networks, ~100M parameters at 101 classes."""
    model = D.build_dhaa(input_shape=(64, 64, 3), num_classes=101)
    assert model.count_params() == 100_106_290


def test_loss_has_ten_cross_entropy_terms_and_every_head_gets_gradient(small_model):
    args = compile_args(small_model)
    assert sorted(args["loss"]) == sorted(["age_probs"] + [f"age_probs_{s}" for s in SUBS])
    assert all(isinstance(v, keras.losses.SparseCategoricalCrossentropy) for v in args["loss"].values())
    x, ages = batch()
    y = make_targets(small_model.output.keys(), 20, 10)({"age": ages})
    ce = keras.losses.SparseCategoricalCrossentropy()
    heads = [small_model.get_layer(f"{s}_head").kernel for s in SUBS]
    blocks = [small_model.get_layer(f"{s}_stack3_block1_1_conv").kernel for s in SUBS]
    with tf.GradientTape() as tape:
        out = small_model(x, training=True)
        terms = [ce(y[k], out[k]) for k in args["loss"]]
        loss = tf.add_n(terms)
    assert len(terms) == 10
    grads = tape.gradient(loss, [w.value for w in heads + blocks])
    for w, g in zip(heads + blocks, grads):
        assert g is not None and np.abs(g.numpy()).sum() > 0, w.path


@pytest.mark.slow
def test_trains_one_step_on_the_landmark_pipeline():
    """Graph-mode fit on the landmark pipeline. The local branch alone keeps
    the trace short (tracing all nine sub-networks takes ~45 s here)."""
    ds = load("synthetic", n=8, image_size=32, seed=0)
    model = D.build_dhaa(**SMALL, branches=("local",))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_args(model))
    data = make_tf_dataset(ds, image_size=32, batch_size=8, training=True, with_landmarks=True,
                           targets=make_targets(model.output.keys(), 20, 10))  # fmt: skip
    before = model.get_layer("c_b1_block1_1_conv").kernel.numpy().copy()
    hist = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert not np.allclose(before, model.get_layer("c_b1_block1_1_conv").kernel.numpy())
    out = model.predict(data.map(lambda x, y: x), verbose=0)
    assert out["age"].shape == (8,) and np.all((out["age"] >= 20) & (out["age"] <= 29))


@pytest.mark.parametrize(
    "kwargs,subs,extra_layer",
    [
        ({"branches": ("local",)}, ["local1", "local2", "local3"], None),
        ({"branches": ("global_local",)}, ["gl1", "gl2", "gl3"], "global1_stack2_block1_1_conv"),
        ({"branches": ("global", "local")}, SUBS[:6], None),
        ({"sub_losses": False}, [], None),
    ],
)
def test_ablation_outputs(kwargs, subs, extra_layer):
    model = D.build_dhaa(**SMALL, **kwargs)
    assert list(model.output) == ["age", "age_probs"] + [f"age_probs_{s}" for s in subs]
    assert len(compile_args(model)["loss"]) == 1 + len(subs)
    if extra_layer:  # global-local alone still computes the block-2 maps it needs
        model.get_layer(extra_layer)
    x, _ = batch(2)
    assert model(x)["age_probs"].shape == (2, 10)


def test_roi_and_fc_ablations_change_the_right_layers():
    roi = D.build_dhaa(**SMALL, pooling="roi", fusion="fc")
    assert roi.get_layer("arp").mode == "roi"
    assert roi.get_layer("local_fusion").mode == "fc"
    assert roi.count_params() < D.build_dhaa(**SMALL).count_params()  # FC has no recurrent kernel


def test_bad_arguments():
    with pytest.raises(ValueError, match="branches"):
        D.build_dhaa(**{**SMALL, "branches": ("global", "forehead")})
    with pytest.raises(ValueError, match="branches"):
        D.build_dhaa(**{**SMALL, "branches": ()})
    with pytest.raises(ValueError, match="input_shape"):
        D.build_dhaa(**{**SMALL, "input_shape": (16, 16, 3)})
    with pytest.raises(ValueError, match="pooling"):
        D.build_dhaa(**SMALL, pooling="max")
    with pytest.raises(ValueError, match="fusion"):
        D.build_dhaa(**SMALL, fusion="gru")


@pytest.mark.parametrize("branch", ["global", "local", "global_local"])
def test_single_branch_ablations_are_registered(branch):
    """Table 1's single-branch rows: DHAA with one branch, its three sub-network classifiers and the fused head."""
    model = agekeras.models.get(f"dhaa_{branch}", input_shape=(64, 64, 3), num_classes=20)
    subs = sorted(k for k in model.output if k.startswith("age_probs_"))
    assert len(subs) == 3 and set(model.output) == {"age", "age_probs", *subs}
    assert agekeras.models.entry(f"dhaa_{branch}").needs_landmarks
    full = agekeras.models.get("dhaa", input_shape=(64, 64, 3), num_classes=20)
    assert model.count_params() < full.count_params()
