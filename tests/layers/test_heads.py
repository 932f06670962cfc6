import numpy as np
import pytest
from keras import ops

from agekeras.ages import age_prior
from agekeras.layers import CORALDecode, CORALHead, DEXHead, ORCNNHead, coral_label, coral_prior_bias, coral_probabilities
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


# ----- label-prior initialisation and the OR-CNN head --------------------------


def _np_logit_above(prior):
    """NumPy reference: log-odds of P(y > k) = sum_{j > k} p_j, k = 0..K-2."""
    p = np.asarray(prior, "float64") / np.sum(prior)
    above = np.array([p[k + 1:].sum() for k in range(len(p) - 1)])
    return np.log(above / (1 - above))


def _skewed_ages(rng, k, n=2000):
    """Ages 0..k-1 from a random skewed (gamma) distribution."""
    return np.clip(np.round(rng.gamma(rng.uniform(1, 5), k / 8, n)), 0, k - 1)


@pytest.mark.parametrize("k", [2, 3, 5, 26, 110, 117])
@pytest.mark.parametrize("head_cls", [CORALHead, ORCNNHead])
def test_prior_bias_decodes_an_all_zero_feature_to_the_training_median(k, head_cls):
    rng = np.random.RandomState(k)
    ages = _skewed_ages(rng, k) + 15
    prior = age_prior(ages, age_min=15, num_classes=k)
    head = head_cls(num_classes=k, age_prior=prior.tolist())
    logits = head(np.zeros((3, 16), "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(head.bias), _np_logit_above(prior), rtol=1e-4, atol=1e-4)
    decoded = ops.convert_to_numpy(CORALDecode(age_min=15)(logits))
    assert np.all(np.abs(decoded - np.median(ages)) <= 1.0), (decoded, np.median(ages))


def test_coral_prior_bias_is_non_increasing_and_finite_for_empty_classes():
    b = coral_prior_bias([0.0, 0.5, 0.0, 0.5, 0.0])
    assert np.all(np.isfinite(b)) and np.all(np.diff(b) <= 0)
    np.testing.assert_allclose(coral_prior_bias([0.25, 0.25, 0.5]), [np.log(3), 0.0], atol=1e-12)


@pytest.mark.parametrize("k", [2, 7, 110])
def test_dex_prior_bias_predicts_the_prior_and_its_mean(k):
    rng = np.random.RandomState(k)
    ages = _skewed_ages(rng, k) + 3
    prior = age_prior(ages, age_min=3, num_classes=k, smoothing=0)  # some classes empty: p = 0
    head = DEXHead(num_classes=k, age_min=3, age_prior=prior.tolist())
    probs, age = head(np.zeros((2, 8), "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(probs), np.broadcast_to(prior, (2, k)), rtol=1e-4, atol=1e-6)
    mean = float(prior @ (3 + np.arange(k)))
    np.testing.assert_allclose(ops.convert_to_numpy(age), [mean, mean], rtol=1e-4)
    np.testing.assert_allclose(mean, ages.mean(), rtol=1e-6)  # the expectation is the training mean


def test_heads_without_prior_keep_their_fallback():
    coral = CORALHead(num_classes=5)
    coral.build((None, 4))
    np.testing.assert_allclose(ops.convert_to_numpy(coral.bias), [0.5, 1 / 6, -1 / 6, -0.5], atol=1e-6)
    orcnn = ORCNNHead(num_classes=5)
    orcnn.build((None, 4))
    np.testing.assert_array_equal(ops.convert_to_numpy(orcnn.bias), np.zeros(4))
    dex = DEXHead(num_classes=5)
    dex.build((None, 4))
    np.testing.assert_array_equal(ops.convert_to_numpy(dex.bias), np.zeros(5))


@pytest.mark.parametrize("head_cls", [CORALHead, ORCNNHead, DEXHead])
def test_bad_priors_are_refused(head_cls):
    with pytest.raises(ValueError, match="one probability per class"):
        head_cls(num_classes=4, age_prior=[0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        head_cls(num_classes=3, age_prior=[0.5, -0.1, 0.6])


def test_prior_heads_standard_checks():
    x = np.random.RandomState(4).randn(4, 16).astype("float32")
    prior = [0.1, 0.2, 0.3, 0.25, 0.15]
    run_layer_test(CORALHead, {"num_classes": 5, "age_prior": prior}, x, expected_output_shape=(4, 4),
                   expected_num_trainable_weights=2)
    run_layer_test(DEXHead, {"num_classes": 5, "age_prior": prior}, x, expected_output_shape=[(4, 5), (4,)],
                   expected_num_trainable_weights=2)


def test_orcnn_head_standard_checks():
    x = np.random.RandomState(5).randn(4, 16).astype("float32")
    run_layer_test(ORCNNHead, {"num_classes": 6}, x, expected_output_shape=(4, 5), expected_num_trainable_weights=2)
    run_layer_test(ORCNNHead, {"num_classes": 6, "age_prior": [1, 1, 2, 2, 1, 1]}, x, expected_output_shape=(4, 5))


def test_orcnn_head_matches_numpy_with_a_weight_vector_per_task():
    x = np.random.RandomState(6).randn(5, 8).astype("float32")
    head = ORCNNHead(num_classes=5)
    logits = ops.convert_to_numpy(head(x))
    w, b = ops.convert_to_numpy(head.kernel), ops.convert_to_numpy(head.bias)
    assert w.shape == (8, 4) and b.shape == (4,)
    np.testing.assert_allclose(logits, x @ w + b[None], rtol=1e-5, atol=1e-5)
    # Unlike CORAL, the tasks do not differ by a constant: no shared weight vector.
    diffs = logits - logits[:, :1]
    assert np.abs(diffs - diffs[:1]).max() > 1e-3
