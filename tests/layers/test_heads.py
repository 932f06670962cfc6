import numpy as np
import pytest
from keras import ops

from agekeras.layers import CORALDecode, CORALHead, DEXHead, coral_label, coral_probabilities
from tests.harness import input_gradients, run_layer_test


def test_dex_head_standard_checks():
    x = np.random.RandomState(0).randn(4, 16).astype("float32")
    run_layer_test(
        DEXHead,
        {"num_classes": 7, "age_min": 10},
        x,
        expected_output_shape=[(4, 7), (4,)],
        expected_num_trainable_weights=2,
    )


def test_dex_head_matches_numpy_expectation():
    x = np.random.RandomState(1).randn(3, 5).astype("float32")
    head = DEXHead(num_classes=4, age_min=20)
    probs, age = head(x)
    w, b = (ops.convert_to_numpy(v) for v in (head.kernel, head.bias))
    logits = x @ w + b
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(ops.convert_to_numpy(probs), p, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(age), p @ np.array([20, 21, 22, 23.0]), rtol=1e-5)


def test_dex_head_rejects_one_class():
    with pytest.raises(ValueError, match="num_classes"):
        DEXHead(num_classes=1)


def test_coral_head_standard_checks():
    x = np.random.RandomState(0).randn(4, 16).astype("float32")
    run_layer_test(
        CORALHead, {"num_classes": 6}, x, expected_output_shape=(4, 5), expected_num_trainable_weights=2
    )


def test_coral_head_matches_numpy_and_shares_weights():
    x = np.random.RandomState(2).randn(5, 8).astype("float32")
    head = CORALHead(num_classes=5)
    logits = ops.convert_to_numpy(head(x))
    w, b = ops.convert_to_numpy(head.kernel), ops.convert_to_numpy(head.bias)
    assert w.shape == (8, 1) and b.shape == (4,)
    np.testing.assert_allclose(logits, x @ w + b[None], rtol=1e-5, atol=1e-6)
    # One weight vector: all tasks differ by a constant (their bias) only.
    diffs = logits - logits[:, :1]
    np.testing.assert_allclose(diffs, np.broadcast_to(b - b[0], diffs.shape), atol=1e-5)


def test_coral_probabilities_non_increasing_for_any_input():
    """Property test: with the initial (ordered) biases and random shared
    weights, P(y > k) never increases with k, whatever the input."""
    rng = np.random.RandomState(3)
    for trial in range(20):
        head = CORALHead(num_classes=int(rng.randint(3, 30)))
        x = (rng.randn(64, 12) * rng.uniform(0.1, 50)).astype("float32")
        p = ops.convert_to_numpy(coral_probabilities(head(x)))
        assert np.all(np.diff(p, axis=1) <= 1e-7), f"trial {trial}"


def test_coral_label_counts_probabilities_above_half():
    logits = np.array([[3.0, 1.0, -1.0, -2.0], [5.0, 4.0, 3.0, 2.0], [-1.0, -2.0, -3.0, -4.0]], "float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(coral_label(logits)), [2, 4, 0])
    np.testing.assert_allclose(
        ops.convert_to_numpy(CORALDecode(age_min=15)(logits)), [17.0, 19.0, 15.0]
    )


def test_coral_decode_standard_checks():
    logits = np.random.RandomState(0).randn(4, 9).astype("float32")
    run_layer_test(CORALDecode, {"age_min": 3}, logits, expected_output_shape=(4,), run_training_check=False)


def test_dex_gradient_reaches_input():
    x = np.random.RandomState(0).randn(2, 6).astype("float32")
    head = DEXHead(num_classes=5)
    head(x)
    g = input_gradients(lambda t: head(t)[1], x)
    assert g.shape == x.shape and np.abs(g).sum() > 0
