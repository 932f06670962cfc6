import numpy as np
import pytest
from keras import ops

from agekeras.layers import AttentionLSTMLocator
from tests.harness import input_gradients, run_layer_test


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_locator(layer, feats, h, c):
    """Eqs. 3-4 of the AL paper in NumPy: LSTM over the batch as a sequence,
    S = [C, h] -> dense -> sigmoid -> box inside the map."""
    kernel, recurrent, bias = (ops.convert_to_numpy(w) for w in layer.cell.weights)
    w_loc, b_loc = (ops.convert_to_numpy(w) for w in layer.location.weights)
    u = layer.units
    boxes = []
    for x in feats:
        z = x @ kernel + h @ recurrent + bias
        i, f, g, o = _sigmoid(z[:u]), _sigmoid(z[u:2 * u]), np.tanh(z[2 * u:3 * u]), _sigmoid(z[3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
        a, b, cw, dh = _sigmoid(np.concatenate([c, h]) @ w_loc + b_loc)
        w = layer.min_size + (1 - layer.min_size) * cw
        hh = layer.min_size + (1 - layer.min_size) * dh
        boxes.append([a * (1 - w), b * (1 - hh), w, hh])
    return np.array(boxes), h, c


def test_locator_standard_checks():
    x = np.random.RandomState(0).randn(4, 16).astype("float32")
    run_layer_test(
        AttentionLSTMLocator,
        {"units": 8, "min_size": 0.2, "carry_state": True, "inference_mode": "sequence"},
        x,
        expected_output_shape=(4, 4),
        expected_num_trainable_weights=5,  # LSTM kernel, recurrent kernel, bias; location kernel, bias
        expected_num_non_trainable_weights=2,  # stored h and C
    )


def test_locator_independent_mode_standard_checks():
    x = np.random.RandomState(1).randn(3, 6).astype("float32")
    # One step from the (still zero) stored state: h0 = 0, so the recurrent
    # kernel cannot get a gradient in this mode.
    run_layer_test(AttentionLSTMLocator, {"units": 5, "inference_mode": "independent"}, x,
                   expected_output_shape=(3, 4), allow_zero_grad=("recurrent_kernel",))


def test_locator_matches_numpy_lstm_and_updates_memory_only_in_training():
    rng = np.random.RandomState(2)
    x = rng.randn(5, 12).astype("float32")
    layer = AttentionLSTMLocator(units=6, min_size=0.3, inference_mode="sequence")
    layer.build((None, 12))
    for w in layer.trainable_weights:  # non-trivial weights everywhere
        w.assign(rng.randn(*w.shape).astype("float32") * 0.5)
    zeros = np.zeros(6)
    want, h, c = numpy_locator(layer, x.astype("float64"), zeros, zeros)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), want, atol=1e-5)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.memory_h), 0.0)  # inference: unchanged
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x, training=True)), want, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.memory_h)[0], h, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.memory_c)[0], c, atol=1e-5)
    # The next batch continues from the stored state (training and inference).
    x2 = rng.randn(3, 12).astype("float32")
    want2, _, _ = numpy_locator(layer, x2.astype("float64"), h, c)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x2)), want2, atol=1e-5)
    # "independent": one step per image from the stored state.
    layer.inference_mode = "independent"
    want_ind = np.concatenate([numpy_locator(layer, x2[i:i + 1].astype("float64"), h, c)[0] for i in range(3)])
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x2)), want_ind, atol=1e-5)
    layer.reset_state()
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.memory_c), 0.0)


def test_second_box_depends_on_first_image():
    rng = np.random.RandomState(3)
    layer = AttentionLSTMLocator(units=8, inference_mode="sequence")
    a, a2, b = (rng.randn(1, 10).astype("float32") for _ in range(3))
    box_ab = ops.convert_to_numpy(layer(np.concatenate([a, b])))
    box_a2b = ops.convert_to_numpy(layer(np.concatenate([a2, b])))
    assert np.abs(box_ab[1] - box_a2b[1]).max() > 1e-4, "image 2's box ignores image 1"
    # The first box depends only on the first image (and the stored state).
    np.testing.assert_allclose(box_ab[0], ops.convert_to_numpy(layer(a))[0], atol=1e-6)
    # And the dependence is differentiable: d box_2 / d image_1 != 0.
    grad = input_gradients(lambda f: layer(f)[1], np.concatenate([a, b]))
    assert np.abs(grad[0]).sum() > 0
    # In "independent" mode image 2's box ignores image 1.
    layer.inference_mode = "independent"
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(np.concatenate([a, b])))[1],
        ops.convert_to_numpy(layer(np.concatenate([a2, b])))[1], atol=1e-6,
    )


def test_state_carries_across_training_batches_unless_disabled():
    rng = np.random.RandomState(4)
    first, second = rng.randn(4, 10).astype("float32"), rng.randn(2, 10).astype("float32")
    carried = AttentionLSTMLocator(units=8, carry_state=True)
    fresh = AttentionLSTMLocator.from_config({**carried.get_config(), "carry_state": False})
    carried.build((None, 10))
    fresh.build((None, 10))
    fresh.set_weights(carried.get_weights())
    before = ops.convert_to_numpy(carried(second, training=True))
    np.testing.assert_allclose(before, ops.convert_to_numpy(fresh(second, training=True)), atol=1e-6)
    carried(first, training=True)
    fresh(first, training=True)
    assert np.abs(ops.convert_to_numpy(carried(second, training=True)) - before).max() > 1e-4
    np.testing.assert_allclose(ops.convert_to_numpy(fresh(second, training=True)), before, atol=1e-6)


def test_boxes_stay_inside_the_map_for_any_input():
    rng = np.random.RandomState(5)
    for trial in range(10):
        min_size = float(rng.uniform(0, 0.9))
        layer = AttentionLSTMLocator(units=4, min_size=min_size)
        layer.build((None, 7))
        for w in layer.trainable_weights:
            w.assign(rng.randn(*w.shape).astype("float32") * rng.uniform(0.1, 20))
        boxes = ops.convert_to_numpy(layer((rng.randn(32, 7) * rng.uniform(0.1, 100)).astype("float32")))
        x, y, w, h = boxes.T
        assert np.all(x >= 0) and np.all(y >= 0), trial
        assert np.all(x + w <= 1 + 1e-6) and np.all(y + h <= 1 + 1e-6), trial
        assert np.all(w >= min_size - 1e-6) and np.all(h >= min_size - 1e-6), trial


def test_default_inference_is_independent_of_other_images():
    rng = np.random.RandomState(6)
    layer = AttentionLSTMLocator(units=8)
    assert layer.inference_mode == "independent"
    a, a2, b = (rng.randn(1, 10).astype("float32") for _ in range(3))
    layer(np.concatenate([a, b]), training=True)  # some stored state
    np.testing.assert_allclose(ops.convert_to_numpy(layer(np.concatenate([a, b])))[1],
                               ops.convert_to_numpy(layer(b))[0], atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(np.concatenate([a2, b])))[1],
                               ops.convert_to_numpy(layer(b))[0], atol=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="inference_mode"):
        AttentionLSTMLocator(inference_mode="online")
    with pytest.raises(ValueError, match="min_size"):
        AttentionLSTMLocator(min_size=1.0)
    with pytest.raises(ValueError, match=r"\(batch, d\)"):
        AttentionLSTMLocator(units=4)(np.zeros((2, 3, 5), "float32"))
