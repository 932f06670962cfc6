import keras
import numpy as np
import pytest

import agekeras
from agekeras.models import compile_args, make_targets

# Parameter counts of the torchvision/keras-cv reference backbones (no head).
BACKBONE_PARAMS = {18: 11_186_112, 34: 21_301_696, 50: 23_564_800}


def test_registry_lists_and_rejects_unknown():
    names = agekeras.models.available()
    for n in ("resnet18_dex", "resnet18_coral", "resnet34_dex", "resnet50_dex", "resnet18_regression"):
        assert n in names
    with pytest.raises(ValueError, match="Available models: .*resnet18_dex"):
        agekeras.models.get("resnet19_dex")


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_resnet_dex_parameter_count(depth):
    model = agekeras.models.get(f"resnet{depth}_dex", input_shape=(64, 64, 3), num_classes=101)
    feat = 512 if depth < 50 else 2048
    assert model.count_params() == BACKBONE_PARAMS[depth] + feat * 101 + 101
    assert set(model.output) == {"age_probs", "age"}


@pytest.mark.parametrize("head,outputs", [("dex", {"age_probs", "age"}), ("coral", {"age_logits", "age"}), ("regression", {"age"})])
def test_resnet18_heads_train_one_step(head, outputs):
    model = agekeras.models.get(f"resnet18_{head}", input_shape=(32, 32, 3), num_classes=20, age_min=10)
    assert set(model.output) == outputs
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **agekeras.models.entry(f"resnet18_{head}").compile_args(model))
    x = np.random.RandomState(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    ages = np.array([10, 12, 15, 18, 20, 25, 29, 35], "float32")  # 35 clips to the last class
    y = make_targets(model.output.keys(), 10, 20)({"age": ages, "gender": np.zeros(8)})
    if "age_probs" in y or "age_logits" in y:
        key = "age_probs" if "age_probs" in y else "age_logits"
        np.testing.assert_array_equal(np.asarray(y[key]), [0, 2, 5, 8, 10, 15, 19, 19])
    before = [w.numpy().copy() for w in model.trainable_weights[-2:]]
    hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights[-2:]))
    age = model.predict(x, verbose=0)["age"]
    assert age.shape == (8,)
    if head == "dex":
        assert np.all((age >= 10) & (age <= 29))


def test_gender_output_and_any_input_size():
    model = agekeras.models.get("resnet18_dex", input_shape=(48, 40, 3), num_classes=5, gender=True)
    out = model(np.zeros((2, 48, 40, 3), "float32"))
    assert out["gender_probs"].shape == (2, 2) and out["age_probs"].shape == (2, 5)
    np.testing.assert_allclose(np.asarray(out["gender_probs"]).sum(-1), 1.0, rtol=1e-5)


def test_resnet18_pretrained_is_refused_clearly():
    with pytest.raises(ValueError, match="No ImageNet weights"):
        agekeras.models.get("resnet18_dex", pretrained=True)


@pytest.mark.parametrize("name", ["resnet18_dex", "resnet34_coral", "resnet18_regression"])
def test_max_pool_false_halves_the_total_stride_with_the_same_weights(name):
    pooled = agekeras.models.get(name, input_shape=(64, 64, 3), num_classes=11)
    strided = agekeras.models.get(name, input_shape=(64, 64, 3), num_classes=11, max_pool=False)
    assert strided.count_params() == pooled.count_params()
    assert pooled.get_layer("embedding").input.shape[1:3] == (2, 2)
    assert strided.get_layer("embedding").input.shape[1:3] == (4, 4)


def test_max_pool_false_is_refused_for_resnet50():
    with pytest.raises(ValueError, match="only available for ResNet-18 and ResNet-34"):
        agekeras.models.get("resnet50_dex", max_pool=False)
