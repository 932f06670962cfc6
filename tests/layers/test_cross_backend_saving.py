"""Every public layer, saved as `.keras` on the current backend, loads on the
other Keras backends (TensorFlow, JAX, PyTorch) and gives the same outputs
(see RTOL).

The models are built and saved here; a subprocess per other backend
(`tests/cross_backend_load.py`, `KERAS_BACKEND` set) loads them with
`safe_mode=True` and writes its outputs back. A backend that isn't installed
is skipped with the command that installs it.
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

import agekeras.layers as L
from tests.conftest import REPO

BACKENDS = ("tensorflow", "jax", "torch")
OTHERS = [b for b in BACKENDS if b != keras.backend.backend()]
INSTALL = {"tensorflow": "pip install tensorflow-cpu", "jax": 'pip install "jax[cpu]"', "torch": "pip install torch"}
# Same outputs to 1e-5, plus 1e-4 relative: deep float32 convolution stacks
# (ROSAStage, SoftMaskBranch) round differently in each backend's kernels.
RTOL = 1e-4
LANDMARKS = np.array([[22, 26], [42, 26], [32, 36], [24, 46], [40, 46]], "float32")  # (x, y) px, 64 px face


def _r(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


# layer name -> (init kwargs, inputs). Every input gets a static shape
# (`keras.Input(batch_shape=...)`), so per-age inputs without a batch axis
# (DAA's s, t, ages) work as well.
CASES = {
    "DEXHead": ({"num_classes": 7, "age_min": 10}, _r(4, 16)),
    "CORALHead": ({"num_classes": 6}, _r(4, 16)),
    "CORALDecode": ({"age_min": 3}, _r(4, 9)),
    "AdaptiveStage": ({"output_size": 3, "filters": 5}, _r(2, 9, 9, 3)),
    "ConvBNReLU": ({"filters": 5, "kernel_size": 3, "strides": 2}, _r(2, 7, 7, 3)),
    "OSAModule": ({"filters": 4, "output_filters": 6, "num_convs": 5}, _r(2, 6, 6, 3)),
    "ROSAStage": ({"stage_filters": (3, 4, 4, 5), "output_filters": (4, 5, 6, 7), "cycles": (1, 1, 2, 1)},
                  _r(2, 16, 16, 3)),
    "AttentionLSTMLocator": ({"units": 8, "min_size": 0.2, "inference_mode": "sequence"}, _r(4, 16)),
    "FeatureCrop": ({"crop_size": 3}, [_r(3, 6, 5, 4), np.array([[0.1, 0.2, 0.5, 0.4]] * 3, "float32")]),
    "PreActBasicBlock": ({"filters": 4, "stride": 2}, _r(2, 6, 6, 3)),
    "RoRGroup": ({"filters": 6, "blocks": 2, "stride": 2, "middle_shortcut": True}, _r(2, 8, 8, 4)),
    "AgeDecoder": ({"channels": 8},
                   [np.abs(_r(2, 4, 3, 6)), np.abs(_r(5, seed=1)) + 0.2, _r(5, seed=2),
                    (10 + 3 * np.arange(5)).astype("float32")]),
    "BinaryCodeMapping": ({"num_ages": 6, "age_min": 3, "bits": 4, "hidden_units": [16, 32]}, _r(6, 3)),
    "DeltaAgeAdaIN": ({}, [_r(2, 4, 4, 6), np.abs(_r(5, seed=1)) + 0.2, _r(5, seed=2)]),
    "TemplateStatistics": ({"mode": "channel"}, _r(5, 4, 4, 3)),
    "AlignedRegionPooling": ({"output_size": 5, "image_size": 64},
                             [_r(2, 16, 16, 3), np.stack([LANDMARKS, LANDMARKS + 1.5])]),
    "RecurrentFusion": ({"units": 5}, [_r(4, 6, seed=i) for i in range(3)]),
    "AttentionActivation": ({"mode": "mixed"}, _r(3, 5, 4, 6)),
    "GatedResidualAttention": ({"mask_depth": 2, "num_trunk": 1, "gamma": 0.3}, _r(2, 7, 7, 8)),
    "PreActResidualUnit": ({"filters": 16, "strides": 2}, _r(2, 8, 8, 8)),
    "ResNeXtUnit": ({"filters": 16, "strides": 2, "cardinality": 4}, _r(2, 8, 8, 16)),
    "SoftMaskBranch": ({"depth": 2}, _r(2, 7, 7, 8)),
    "ArgmaxAge": ({"age_min": 3}, _r(4, 9)),
    "ORCNNHead": ({"num_classes": 6, "age_prior": [1, 2, 3, 3, 2, 1]}, _r(4, 16)),
    "GlobalLocalFusion": ({"local_weight": 0.5, "age_min": 2},
                          [np.abs(_r(4, 7, seed=1)) + 0.1, np.abs(_r(4, 7, seed=2)) + 0.1]),
    "GroupedAgeHead": ({"group_edges": (10, 30), "age_min": 2, "age_max": 70}, _r(4, 16)),
    "TemplateBank": ({"num_templates": 4, "image_shape": (8, 8, 3), "interval": 2}, _r(1, 8, 8, 3)),
}


def public_layers():
    return sorted(
        name for name, obj in vars(L).items() if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
    )


def _installed(backend):
    return importlib.util.find_spec(backend) is not None


def _flat(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _model(name):
    kwargs, data = CASES[name]
    inputs = [keras.Input(batch_shape=x.shape, dtype=str(x.dtype)) for x in _flat(data)]
    inputs = inputs if isinstance(data, list) else inputs[0]
    model = keras.Model(inputs, getattr(L, name)(**kwargs)(inputs))
    # Move every weight (BN statistics and LSTM memory included) off its
    # initial value, so a weight that is not saved or not loaded shows.
    rng = np.random.RandomState(7)
    for w in model.weights:
        if "float" in str(w.dtype):
            value = ops.convert_to_numpy(w)
            w.assign((value + 0.1 * rng.uniform(0.2, 1.0, value.shape)).astype(value.dtype))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Save every case under the current backend: DIR/NAME.keras + NAME.npz."""
    folder = tmp_path_factory.mktemp("cross_backend")
    for name in CASES:
        model = _model(name)
        data = CASES[name][1]
        outputs = [ops.convert_to_numpy(o) for o in keras.tree.flatten(model(data))]
        model.save(folder / f"{name}.keras")
        np.savez(folder / f"{name}.npz", **{f"x{i}": x for i, x in enumerate(_flat(data))},
                 **{f"y{i}": y for i, y in enumerate(outputs)})
    return folder


@pytest.fixture(scope="module")
def loaded(saved):
    """backend -> {name: outputs or error text}, one subprocess per backend."""
    results = {}

    def get(backend):
        if backend not in results:
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
            proc = subprocess.run(
                [sys.executable, "-m", "tests.cross_backend_load", str(saved)],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
            )
            assert proc.returncode == 0, f"loading under {backend} crashed:\n{proc.stderr[-3000:]}"
            report = json.loads((saved / f"report-{backend}.json").read_text())
            results[backend] = report
        return results[backend]

    return get


def test_every_public_layer_has_a_case():
    assert set(CASES) == set(public_layers())


@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_saved_on_this_backend_loads_on_another(name, other, saved, loaded):
    here = keras.backend.backend()
    if not _installed(other):
        pytest.skip(f"the {other} backend is not installed ({INSTALL[other]}) to load what {here} saved")
    report = loaded(other)
    assert report["backend"] == other
    result = report["cases"][name]
    assert "error" not in result, f"{name}: loading under {other} failed: {result.get('error')}"
    ref = np.load(saved / f"{name}.npz")
    got = np.load(saved / f"{name}.{other}.npz")
    n = len([k for k in ref.files if k.startswith("y")])
    assert n > 0 and len(got.files) == n
    for i in range(n):
        np.testing.assert_allclose(got[f"y{i}"], ref[f"y{i}"], atol=1e-5, rtol=RTOL,
                                   err_msg=f"{name} output {i}: saved on {here}, loaded on {other}")
