import numpy as np
import pytest
from keras import ops

from agekeras.layers import AttentionLSTMLocator
from tests.harness import gradients, input_gradients, run_layer_test


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softclip(z, lo, k=4.0):
    return lo + (np.logaddexp(0, k * (z - lo)) - np.logaddexp(0, k * z)) / k


def numpy_locator(layer, feats, h, c):
    """Eqs. 3-4 of the AL paper in NumPy: LSTM over the batch as a sequence,
    S = [tanh(C), h] -> dense -> centre (sigmoid) and log-size (soft-clipped)."""
    kernel, recurrent, bias = (ops.convert_to_numpy(w) for w in layer.cell.weights)
    w_loc, b_loc = (ops.convert_to_numpy(w) for w in layer.location.weights)
    u = layer.units
    boxes = []
    for x in feats:
        z = x @ kernel + h @ recurrent + bias
        i, f, g, o = _sigmoid(z[:u]), _sigmoid(z[u:2 * u]), np.tanh(z[2 * u:3 * u]), _sigmoid(z[3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
        z = np.concatenate([np.tanh(c), h]) @ w_loc + b_loc
        cx, cy = _sigmoid(z[0]), _sigmoid(z[1])
        w, hh = np.exp(_softclip(z[2:], np.log(layer.min_size)))
        x0, x1 = np.clip([cx - w / 2, cx + w / 2], 0, 1)
        y0, y1 = np.clip([cy - hh / 2, cy + hh / 2], 0, 1)
        boxes.append([x0, y0, x1 - x0, y1 - y0])
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
        min_size = float(rng.uniform(0.05, 0.9))
        layer = AttentionLSTMLocator(units=4, min_size=min_size)
        layer.build((None, 7))
        for w in layer.trainable_weights:
            w.assign(rng.randn(*w.shape).astype("float32") * rng.uniform(0.1, 20))
        boxes = ops.convert_to_numpy(layer((rng.randn(32, 7) * rng.uniform(0.1, 100)).astype("float32")))
        x, y, w, h = boxes.T
        assert np.all(x >= 0) and np.all(y >= 0), trial
        assert np.all(x + w <= 1 + 1e-6) and np.all(y + h <= 1 + 1e-6), trial
        assert np.all(w >= min_size / 2 - 1e-5) and np.all(h >= min_size / 2 - 1e-5), trial


def test_boxes_start_centred_at_half_size():
    layer = AttentionLSTMLocator(units=8)
    box = ops.convert_to_numpy(layer(np.random.RandomState(9).randn(4, 5).astype("float32") * 10))
    np.testing.assert_allclose(box, [[0.25, 0.25, 0.5, 0.5]] * 4, atol=0.03)  # about half size, even saturated


def test_box_gradient_survives_full_and_smallest_sizes():
    # The corner reading x = a (1 - w) lost the position gradient as w -> 1; the
    # centre does not depend on the size, and the soft clip keeps some gradient
    # at both ends of the size range.
    layer = AttentionLSTMLocator(units=4, min_size=0.1)
    layer.build((None, 3))
    x = np.ones((1, 3), "float32")
    for size_bias in (0.5, 0.0, np.log(0.1), np.log(0.1) - 0.5):  # beyond full, full, smallest, below it
        layer.location.bias.assign(np.array([0.0, 0.0, size_bias, size_bias], "float32"))
        (g_b,) = gradients(lambda f: layer(f)[0, 0] + 2 * layer(f)[0, 2], x, [layer.location.bias],
                           loss_fn=lambda out: out)
        assert abs(g_b[0]) + abs(g_b[2]) > 1e-3, size_bias  # the box can still move or change size


def test_a_large_carried_state_does_not_swamp_the_image():
    # Carried across a whole epoch, the cell state C can grow; the location layer
    # reads tanh(C), so different images still get different boxes.
    rng = np.random.RandomState(8)
    layer = AttentionLSTMLocator(units=8)
    layer.build((None, 10))
    for w in layer.trainable_weights:
        w.assign(rng.randn(*w.shape).astype("float32"))
    faces = rng.randn(16, 10).astype("float32") * 3
    normal = ops.convert_to_numpy(layer(faces))
    layer.memory_c.assign(np.full((1, 8), 1e4, "float32"))
    swamped = ops.convert_to_numpy(layer(faces))
    assert np.all(np.isfinite(swamped))
    assert swamped.std(0).max() > 0.2 * normal.std(0).max() > 0


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
    with pytest.raises(ValueError, match="min_size"):
        AttentionLSTMLocator(min_size=0.0)
    with pytest.raises(ValueError, match=r"\(batch, d\)"):
        AttentionLSTMLocator(units=4)(np.zeros((2, 3, 5), "float32"))


def _iou(boxes, box):
    x0, y0 = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    x1 = np.minimum(boxes[:, 0] + boxes[:, 2], box[0] + box[2])
    y1 = np.minimum(boxes[:, 1] + boxes[:, 3], box[1] + box[3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (boxes[:, 2] * boxes[:, 3] + box[2] * box[3] - inter)


@pytest.mark.slow
def test_locator_and_crop_learn_to_find_the_patch_that_holds_the_age_cue():
    # Stage 2 of the AL paper in miniature: a frozen "backbone" gives 8 x 8 maps of
    # noise; the age cue (a target in [-1, 1]) is added only in the top-right 4 x 4
    # cells. The global average dilutes it; the local branch (locator -> crop ->
    # pool -> dense) predicts it best from a box on exactly that patch.
    import keras

    from agekeras.layers import FeatureCrop

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, size, channels = 1024, 8, 8
    patch = np.array([0.5, 0.0, 0.5, 0.5])
    target = rng.uniform(-1, 1, n).astype("float32")
    maps = rng.normal(size=(n, size, size, channels)).astype("float32")
    maps[:, :4, 4:, :] += 2 * target[:, None, None, None]
    inputs = keras.Input((size, size, channels))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    box = AttentionLSTMLocator(16, name="locator")(pooled)
    local = keras.layers.GlobalAveragePooling2D()(FeatureCrop(7)([inputs, box]))
    model = keras.Model(inputs, keras.layers.Dense(1)(local))
    boxes = keras.Model(inputs, box)
    before = _iou(boxes.predict(maps[:200], verbose=0), patch)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    model.fit(maps, target, batch_size=32, epochs=35, verbose=0)
    after = _iou(boxes.predict(maps[:200], verbose=0), patch)
    assert np.mean(before > 0.5) == 0.0  # it starts as a centred box (IoU ~0.14)
    assert np.mean(after > 0.5) >= 0.8, (np.median(after), boxes.predict(maps[:3], verbose=0))
