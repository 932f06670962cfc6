import numpy as np
import pytest
from keras import ops

from agekeras.layers import FeatureCrop
from tests.harness import float64_enabled, input_gradients, run_layer_test


def numpy_crop(features, boxes, size):
    """Reference bilinear crop: floor/fraction neighbours, zero padding outside the map;
    `size` an int or (rows, columns)."""
    b, height, width, c = features.shape
    rows, cols = np.broadcast_to(size, 2)

    def cell(n, r, col):
        inside = 0 <= r < height and 0 <= col < width
        return features[n, r, col] if inside else np.zeros(c)

    out = np.zeros((b, rows, cols, c))
    for n in range(b):
        x, y, w, h = boxes[n]
        for j in range(rows):
            q = (y + (j + 0.5) / rows * h) * height - 0.5
            for i in range(cols):
                p = (x + (i + 0.5) / cols * w) * width - 0.5
                r0, c0 = int(np.floor(q)), int(np.floor(p))
                dy, dx = q - r0, p - c0
                out[n, j, i] = (
                    (1 - dy) * (1 - dx) * cell(n, r0, c0)
                    + (1 - dy) * dx * cell(n, r0, c0 + 1)
                    + dy * (1 - dx) * cell(n, r0 + 1, c0)
                    + dy * dx * cell(n, r0 + 1, c0 + 1)
                )
    return out


def _data(seed=0):
    rng = np.random.RandomState(seed)
    features = rng.randn(3, 5, 6, 4).astype("float32")
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.33, 0.05, 0.41, 0.77], [0.0, 0.0, 1.0, 1.0]], "float32")
    return features, boxes


def test_feature_crop_standard_checks():
    features, boxes = _data()
    run_layer_test(
        FeatureCrop, {"crop_size": 3}, [features, boxes], expected_output_shape=(3, 3, 3, 4),
        expected_num_trainable_weights=0,
    )


def test_feature_crop_matches_numpy_bilinear():
    features, boxes = _data(1)
    for size in (1, 3, 7):
        got = ops.convert_to_numpy(FeatureCrop(size)([features, boxes]))
        np.testing.assert_allclose(got, numpy_crop(features, boxes, size), atol=1e-5)


def test_rectangular_crop_grid_matches_numpy_bilinear():
    """A grid of 3 rows and 5 columns (and 4 x 2) on a 5 x 6 map: rows step along
    the box's height, columns along its width."""
    features, boxes = _data(5)
    for size in ((3, 5), (4, 2)):
        got = ops.convert_to_numpy(FeatureCrop(size)([features, boxes]))
        np.testing.assert_allclose(got, numpy_crop(features, boxes, size), atol=1e-5)
    # The full box at the map's own (non-square) size returns the map.
    full = np.tile(np.array([[0.0, 0.0, 1.0, 1.0]], "float32"), (3, 1))
    np.testing.assert_allclose(ops.convert_to_numpy(FeatureCrop((5, 6))([features, full])), features, atol=1e-5)


def test_full_box_at_map_size_returns_the_map():
    features = np.random.RandomState(2).randn(2, 7, 7, 3).astype("float32")
    boxes = np.tile(np.array([[0.0, 0.0, 1.0, 1.0]], "float32"), (2, 1))
    np.testing.assert_allclose(ops.convert_to_numpy(FeatureCrop(7)([features, boxes])), features, atol=1e-5)


def test_rectangular_crop_size_and_zero_padding_outside():
    features, _ = _data(3)
    boxes = np.array([[-0.5, 0.9, 0.3, 0.6]] * 3, "float32")
    got = ops.convert_to_numpy(FeatureCrop((2, 5))([features, boxes]))
    assert got.shape == (3, 2, 5, 4)
    # Samples beyond the map read zeros (here: the whole lower row is below the map).
    np.testing.assert_allclose(got[:, -1], 0.0, atol=1e-6)
    assert np.all(np.isfinite(got))


def test_gradient_wrt_box_on_cell_centres_and_at_the_border():
    # The full box on a 7 x 7 map with crop 7 samples exactly the cell centres: a
    # triangle kernel max(0, 1 - |t|) gives a zero gradient there, bilinear
    # floor/fraction sampling does not. On a 2 x 2 map the full box's samples sit in
    # the outer half-cells; with edge clamping they would get no gradient in y/h.
    rng = np.random.RandomState(7)
    for size, crop in ((7, 7), (2, 3)):
        features = rng.randn(1, size, size, 3).astype("float32")
        weights = rng.randn(1, crop, crop, 3).astype("float32")
        layer = FeatureCrop(crop)
        full_box = np.array([[0.0, 0.0, 1.0, 1.0]], "float32")
        grad = input_gradients(lambda b: ops.sum(ops.multiply(layer([features, b]), weights)), full_box,
                               loss_fn=lambda out: out)[0]
        assert np.all(np.abs(grad) > 1e-5), (size, grad)


def test_gradient_wrt_box_matches_finite_differences():
    rng = np.random.RandomState(4)
    features = rng.randn(2, 5, 6, 3)
    boxes = np.array([[0.13, 0.21, 0.47, 0.52], [0.31, 0.08, 0.38, 0.71]])
    layer = FeatureCrop(4, dtype="float64")
    weights = rng.randn(2, 4, 4, 3)

    def loss(b):
        return ops.sum(ops.multiply(layer([features, b]), weights))

    with float64_enabled():
        grad = input_gradients(loss, boxes, loss_fn=lambda out: out)
        eps = 1e-6
        numeric = np.zeros_like(boxes)
        for idx in np.ndindex(boxes.shape):
            up, down = boxes.copy(), boxes.copy()
            up[idx] += eps
            down[idx] -= eps
            numeric[idx] = (float(loss(up)) - float(loss(down))) / (2 * eps)
    assert np.abs(numeric).max() > 0.1
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_gradient_reaches_features():
    features, boxes = _data()
    grad, _ = input_gradients(lambda fb: FeatureCrop((5, 6))(fb), [features, boxes])
    # The full-map box of image 2, sampled at the map's size, touches every cell.
    assert np.all(np.abs(grad[2]).sum(-1) > 0)
    # A small box touches only the cells around it.
    assert np.sum(np.abs(grad[0]).sum(-1) > 0) < 5 * 6


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="crop_size"):
        FeatureCrop(0)
    features, boxes = _data()
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        FeatureCrop(2)([features, boxes[:, :3]])
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\)"):
        FeatureCrop(2)([features[:, 0], boxes])
