import numpy as np
import pytest
from keras import ops

from agekeras.layers import RecurrentFusion
from tests.harness import run_layer_test


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_recurrent_fusion(zs, kernel, recurrent, bias):
    """Eqs. 2-3: an LSTM over z_1..z_T (Keras gate order i, f, g, o), then
    the sum of the hidden states."""
    units = recurrent.shape[0]
    h = np.zeros((zs.shape[0], units))
    c = np.zeros_like(h)
    total = np.zeros_like(h)
    for t in range(zs.shape[1]):
        gates = zs[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (gates[:, k * units:(k + 1) * units] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        total += h
    return total


@pytest.mark.parametrize("mode,weights", [("lstm", 3), ("fc", 2)])
def test_standard_checks_list_input(mode, weights):
    rng = np.random.default_rng(0)
    zs = [rng.normal(size=(4, 6)).astype("float32") for _ in range(3)]
    run_layer_test(
        RecurrentFusion, {"units": 5, "mode": mode}, zs,
        expected_output_shape=(4, 5), expected_num_trainable_weights=weights,
    )  # fmt: skip


def test_standard_checks_sequence_input():
    x = np.random.default_rng(1).normal(size=(3, 4, 6)).astype("float32")
    run_layer_test(RecurrentFusion, {"units": 7}, x, expected_output_shape=(3, 7), expected_num_trainable_weights=3)


def test_lstm_fusion_matches_numpy_equations():
    rng = np.random.default_rng(2)
    zs = rng.normal(size=(5, 3, 4)).astype("float32")
    layer = RecurrentFusion(units=6)
    out = ops.convert_to_numpy(layer([zs[:, t] for t in range(3)]))
    kernel, recurrent, bias = (ops.convert_to_numpy(w) for w in layer.cell.weights)
    ref = np_recurrent_fusion(zs.astype("float64"), kernel, recurrent, bias)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # Same result from the stacked (batch, T, d) form.
    np.testing.assert_allclose(ops.convert_to_numpy(layer(zs)), out, atol=1e-6)


def test_fc_fusion_matches_numpy():
    rng = np.random.default_rng(3)
    zs = rng.normal(size=(5, 3, 4)).astype("float32")
    layer = RecurrentFusion(units=6, mode="fc")
    out = ops.convert_to_numpy(layer(zs))
    w, b = (ops.convert_to_numpy(v) for v in layer.cell.weights)
    np.testing.assert_allclose(out, np.tanh(zs @ w + b).sum(1), rtol=1e-5, atol=1e-6)


def test_lstm_fusion_is_order_dependent_fc_fusion_is_not():
    rng = np.random.default_rng(4)
    z = [rng.normal(size=(8, 16)).astype("float32") for _ in range(3)]
    for mode, dependent in (("lstm", True), ("fc", False)):
        layer = RecurrentFusion(units=16, mode=mode)
        a = ops.convert_to_numpy(layer(z))
        b = ops.convert_to_numpy(layer([z[2], z[0], z[1]]))
        if dependent:
            assert np.abs(a - b).max() > 1e-3, mode
        else:
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="mode"):
        RecurrentFusion(mode="gru")
    with pytest.raises(ValueError, match="units"):
        RecurrentFusion(units=0)
    with pytest.raises(ValueError, match="one shape"):
        RecurrentFusion(4)([np.zeros((2, 3), "float32"), np.zeros((2, 5), "float32")])
    with pytest.raises(ValueError, match=r"\(batch, T, d\)"):
        RecurrentFusion(4)(np.zeros((2, 3), "float32"))
