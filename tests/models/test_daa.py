import os

import keras
import numpy as np
import pytest

import agekeras
from agekeras.losses import SmoothL1
from agekeras.layers import TemplateBank
from agekeras.models import compile_args, daa, make_targets

DAA_NAMES = ("daa_resnet18", "daa_c3ae", "daa_resnet18_single", "daa_resnet18_multi", "daa_resnet18_plain",
             "daa_c3ae_plain")


def _fit_one_step(name, input_shape, num_classes=30, age_min=10, **kwargs):
    entry = agekeras.models.entry(name)
    model = entry.builder(input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **entry.compile_args(model))
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (4,) + input_shape).astype("float32")
    y = make_targets(model.output.keys(), age_min, num_classes)({"age": np.array([12, 20, 31, 38], "float32")})
    before = [w.numpy().copy() for w in model.trainable_weights]
    hist = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert sum(changed) >= len(changed) - 2, f"{sum(changed)} of {len(changed)} weights changed"
    age = model.predict(x, verbose=0)["age"]
    assert age.shape == (4,) and np.all(np.isfinite(age))
    return model, x


def test_registry_names_and_smooth_l1_loss():
    names = agekeras.models.available(paper="daa")
    assert set(DAA_NAMES) <= set(names)
    for name in DAA_NAMES:
        assert isinstance(agekeras.models.entry(name).losses["age"], SmoothL1)


def test_parameter_counts_beside_table1():
    """Exact counts at the paper's feature size (8 x 8); Table 1 says ~11M and ~58K."""
    m = agekeras.models.get("daa_resnet18", input_shape=(128, 128, 3), num_classes=100)
    trainable = sum(int(np.prod(w.shape)) for w in m.trainable_weights)
    assert (m.count_params(), trainable) == (11_474_419, 11_464_691)
    assert tuple(m.get_layer("face_resnet18").output.shape) == (None, 8, 8, 512)
    # Encoder = torchvision ResNet-18 with a 3x3 stem and no fc: 11,168,832 trainable.
    # Decoder conv 512*64*9, BN 2*64, FC 65; mapping 8*16+16 + 16*32+32 + 32*2+2 = 754.
    assert trainable == 11_168_832 + 294_912 + 128 + 65 + 754
    c = agekeras.models.get("daa_c3ae", input_shape=(96, 96, 3), num_classes=100)
    assert tuple(c.get_layer("c3ae_encoder").output.shape) == (None, 8, 8, 32)
    c_trainable = sum(int(np.prod(w.shape)) for w in c.trainable_weights)
    assert (c.count_params(), c_trainable) == (55_075, 54_691)
    assert agekeras.models.get("daa_resnet18_plain", input_shape=(128, 128, 3)).count_params() == 11_178_945
    plain = agekeras.models.get("daa_c3ae_plain", input_shape=(96, 96, 3), num_classes=100, age_min=1)
    assert plain.count_params() == 35_601
    # Untrained, both kinds start near the middle of the age range (Eq. 9 with ~zero deltas).
    x = np.random.RandomState(4).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(plain.predict(x, verbose=0)["age"], 50.5, atol=3.0)
    np.testing.assert_allclose(c.predict(x, verbose=0)["age"], 49.5, atol=3.0)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("daa_resnet18", 32), ("daa_c3ae", 48), ("daa_resnet18_plain", 32)])
def test_models_train_one_step(name, size):
    _fit_one_step(name, (size, size, 3))


@pytest.mark.slow
def test_template_variants_train_and_use_their_templates(tmp_path):
    rng = np.random.RandomState(1)
    images = rng.uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    ages = np.array([10, 11, 13, 20, 39], "float32")
    path = str(tmp_path / "t.npz")
    np.savez_compressed(path, images=images, ages=ages)  # the builders' template file format
    model, x = _fit_one_step("daa_resnet18_multi", (32, 32, 3), templates=path)
    bank = [layer for layer in model.layers if isinstance(layer, TemplateBank)][0]
    np.testing.assert_allclose(bank.images.numpy(), images)
    np.testing.assert_array_equal(bank.ages.numpy(), ages)
    # Deltas are one per template; the age is Eq. 9 over the template ages.
    out = daa.with_delta_outputs(model)(x, training=False)
    deltas, cmp_ages = out["deltas"].numpy(), out["comparison_ages"].numpy()
    assert deltas.shape == (4, 5)
    np.testing.assert_array_equal(cmp_ages, ages)
    np.testing.assert_allclose(model.predict(x, verbose=0)["age"], (cmp_ages[None] - deltas).mean(1), rtol=1e-4)
    single = agekeras.models.get("daa_resnet18_single", input_shape=(32, 32, 3), templates=path)
    assert single.get_layer("template_statistics").mode == "channel"
    with pytest.raises(ValueError, match=r"template images must be \(n, 64, 64, 3\)"):
        agekeras.models.get("daa_resnet18_single", input_shape=(64, 64, 3), templates=path)


def test_interval_sampling_uses_every_kth_age():
    model = agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), num_classes=40, age_min=5)
    x = np.random.RandomState(2).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    out = daa.with_delta_outputs(model)(x, training=False)
    deltas, ages = out["deltas"].numpy(), out["comparison_ages"].numpy()
    np.testing.assert_array_equal(ages, np.arange(5, 45))
    for k in (1, 4, 7):
        sub = daa.with_interval(model, k)
        got = sub.predict(x, verbose=0)["age"]
        want = (ages[None, ::k] - deltas[:, ::k]).mean(axis=1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        s_ages = daa.with_delta_outputs(sub)(x, training=False)["comparison_ages"].numpy()
        np.testing.assert_array_equal(s_ages, np.arange(5, 45, k))
    # The interval model shares the trained weights (no copy to drift).
    assert daa.with_interval(model, 4).get_layer("age_decoder") is model.get_layer("age_decoder")
    # Default output scale: the spread of the comparison ages.
    np.testing.assert_allclose(model.get_layer("age_decoder").delta_scale, np.std(np.arange(40)), rtol=1e-6)


def test_face_resnet18_is_the_resnet_v1_layout():
    """The adapted encoder uses `backbones.resnet_stack` (Keras ResNet v1 names), 3x3 stride-2 stem, no max-pool."""
    enc = daa.face_resnet18((32, 32, 3))
    names = [layer.name for layer in enc.layers]
    assert "stage1_block1_0_conv" not in names  # identity shortcut in stage 1
    assert {"stage2_block1_0_conv", "stage4_block2_out", "stem_conv"} <= set(names)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in enc.layers)
    assert enc.get_layer("stem_conv").kernel_size == (3, 3) and enc.get_layer("stem_conv").strides == (2, 2)
    assert tuple(enc.output.shape) == (None, 2, 2, 512)


def test_naive_and_factorised_models_agree_and_save(tmp_path):
    fast = agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), num_classes=20)
    slow = agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), num_classes=20, decoder="naive")
    assert "delta_age_adain" in [layer.name for layer in slow.layers]
    slow.set_weights(fast.get_weights())
    x = np.random.RandomState(3).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    a = fast.predict(x, verbose=0)["age"]
    np.testing.assert_allclose(slow.predict(x, verbose=0)["age"], a, rtol=1e-5, atol=1e-4)
    path = os.path.join(tmp_path, "daa.keras")
    fast.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["age"], a, rtol=1e-6)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="variant must be one of"):
        agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), variant="pairs")
    with pytest.raises(ValueError, match="decoder must be one of"):
        agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), decoder="fast")
    with pytest.raises(ValueError, match="at least 40x40"):
        agekeras.models.get("daa_c3ae", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="at least 16x16"):
        agekeras.models.get("daa_resnet18", input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="8 bits code at most 255 ages"):
        agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), num_classes=300)
    with pytest.raises(ValueError, match="has no DAA comparison-age layer"):
        daa.with_interval(agekeras.models.get("daa_c3ae_plain", input_shape=(48, 48, 3)), 2)
