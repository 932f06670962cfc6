"""Every registered model builds and trains one step on the JAX backend,
fed by the course's `tf.data` pipeline (Keras takes a `tf.data.Dataset` on
any backend).

Run with `KERAS_BACKEND=jax python -m pytest tests/models/test_models_on_jax.py`;
under the other backends these tests are skipped (TensorFlow trains every
model in the other tests of this folder and in the notebooks).
"""

import keras
import numpy as np
import pytest

import agekeras.models
from agekeras import datasets, training
from tests.harness import model_image_size

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="JAX training-step check: run with KERAS_BACKEND=jax (the other tests here train on TensorFlow)",
)

# The quickest models (every head, both DAA encoders) run in CI; the others
# take 20-45 s each on a 2-core CPU and are marked slow (full local run).
QUICK = {"resnet18_dex", "resnet18_coral", "resnet18_regression", "daa_resnet18", "daa_c3ae"}


def _params():
    return [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in agekeras.models.available()]



@pytest.fixture(scope="module")
def faces():
    return datasets.load("synthetic", n=8, image_size=48, seed=0)


@pytest.mark.parametrize("name", _params())
def test_builds_and_trains_one_step_on_jax(name, faces):
    config = training.TrainConfig(model=name, dataset="synthetic", image_size=model_image_size(name), batch_size=8,
                                  augment=False,
                                  cache=False, optimizer="sgd", lr=1e-2)
    lo, hi = faces.age_range()
    model = training.build_model(config, age_min=lo, num_classes=hi - lo + 1)
    data = training.make_dataset(faces, config, model, training=True, age_min=lo, num_classes=hi - lo + 1)
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(data.take(1), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.allclose(b, keras.ops.convert_to_numpy(w)) for b, w in zip(before, model.trainable_weights)]
    assert np.mean(changed) > 0.5, f"only {sum(changed)} of {len(changed)} weights changed"
    out = model.predict(data.map(lambda x, y: x).take(1), verbose=0)
    assert out["age"].shape == (8,) and np.all(np.isfinite(out["age"]))
