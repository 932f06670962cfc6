import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from agekeras.layers import AgeDecoder, DeltaAgeAdaIN, age_from_deltas
from tests.harness import run_layer_test
from tests.layers.test_delta_age_adain import numpy_daa


def _np(x):
    return ops.convert_to_numpy(x)


def _inputs(seed=0, batch=2, ages=5, h=4, w=3, c=6, per_channel=False):
    rng = np.random.RandomState(seed)
    f = np.abs(rng.randn(batch, h, w, c)).astype("float32")  # post-ReLU-like features
    shape = (ages, c) if per_channel else (ages,)
    s = rng.uniform(0.2, 2.0, shape).astype("float32")
    t = rng.randn(*shape).astype("float32")
    y = (10 + 3 * np.arange(ages)).astype("float32")
    return f, s, t, y


def numpy_conv_same(x, k):
    """3x3 zero-padded convolution (cross-correlation, as Keras), x (h, w, C)."""
    h, w, _ = x.shape
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, k.shape[-1]))
    for i in range(h):
        for j in range(w):
            out[i, j] = np.einsum("abc,abf->f", p[i : i + 3, j : j + 3], k)
    return out


def test_age_decoder_factorised_standard_checks():
    f, s, t, y = _inputs(batch=4, ages=4)
    run_layer_test(
        AgeDecoder,
        {"channels": 8, "epsilon": 1e-5},
        [f, s, t, y],
        expected_output_shape=[(4, 4), (4,)],
        expected_num_trainable_weights=5,
        expected_num_non_trainable_weights=2,
    )


def test_age_decoder_naive_standard_checks():
    f, s, t, y = _inputs(batch=4, ages=4)
    d = _np(DeltaAgeAdaIN()([f, s, t]))
    run_layer_test(AgeDecoder, {"channels": 8}, [d, y], expected_output_shape=[(4, 4), (4,)],
                   expected_num_trainable_weights=5)


def test_eq8_and_eq9_match_numpy():
    """Conv3x3 -> BN (inference) -> ReLU -> GAP -> FC per age, then mean(y - Delta)."""
    f, s, t, y = _inputs(seed=1)
    dec = AgeDecoder(channels=5)
    dec([f, s, t, y])
    rng = np.random.RandomState(5)
    # Non-trivial BN state so the test sees it.
    dec.bn.set_weights([rng.uniform(0.5, 1.5, 5), rng.randn(5), rng.randn(5), rng.uniform(0.5, 2, 5)])
    deltas, age = (_np(v) for v in dec([f, s, t, y], training=False))
    k = _np(dec.conv.kernel)
    gamma, beta, mean, var = dec.bn.get_weights()
    w_fc, b_fc = _np(dec.fc.kernel)[:, 0], _np(dec.fc.bias)[0]
    maps = numpy_daa(f.astype("float64"), s, t)
    want = np.zeros((2, 5))
    for b in range(2):
        for a in range(5):
            z = numpy_conv_same(maps[b, a], k)
            z = gamma * (z - mean) / np.sqrt(var + dec.bn.epsilon) + beta
            want[b, a] = np.maximum(z, 0).mean(axis=(0, 1)) @ w_fc + b_fc
    np.testing.assert_allclose(deltas, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(age, (y[None] - want).mean(axis=1), rtol=1e-4, atol=1e-4)


def test_age_from_deltas_is_eq9():
    deltas = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], "float32")
    ages = np.array([20.0, 30.0, 40.0], "float32")
    np.testing.assert_allclose(_np(age_from_deltas(deltas, ages)), [(19 + 32 + 39.5) / 3, 30.0], rtol=1e-6)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_factorised_equals_naive(per_channel, training):
    f, s, t, y = _inputs(seed=2, batch=3, ages=7, h=5, w=5, c=6, per_channel=per_channel)
    dec = AgeDecoder(channels=8)
    fast_d, fast_a = (_np(v) for v in dec([f, s, t, y], training=training))
    slow_d, slow_a = (_np(v) for v in dec([DeltaAgeAdaIN()([f, s, t]), y], training=training))
    assert fast_d.shape == (3, 7)
    np.testing.assert_allclose(fast_d, slow_d, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast_a, slow_a, rtol=1e-5, atol=1e-4)
    assert np.std(fast_d) > 1e-3  # not a trivially constant output


def test_factorised_and_naive_gradients_agree():
    f, s, t, y = _inputs(seed=3, batch=2, ages=4, h=4, w=4, c=5)
    dec = AgeDecoder(channels=6)
    adain = DeltaAgeAdaIN()
    dec([f, s, t, y])
    fv, sv, tv = tf.Variable(f), tf.Variable(s), tf.Variable(t)
    weights = [w.value for w in dec.trainable_weights]

    def grads(naive):
        with tf.GradientTape() as tape:
            inp = [adain([fv, sv, tv]), y] if naive else [fv, sv, tv, y]
            d, a = dec(inp, training=True)
            loss = tf.reduce_sum(tf.square(a - 25.0)) + tf.reduce_sum(tf.square(d))
        return [g.numpy() for g in tape.gradient(loss, [fv, sv, tv] + weights)]

    for g_fast, g_slow in zip(grads(False), grads(True)):
        assert np.any(g_fast != 0)
        np.testing.assert_allclose(g_fast, g_slow, rtol=2e-3, atol=2e-4)


def test_bad_inputs_raise_value_errors():
    f, s, t, y = _inputs()
    dec = AgeDecoder(channels=4)
    with pytest.raises(ValueError, match=r"\[features, s, t, ages\]"):
        dec([f, s, t])
    with pytest.raises(ValueError, match=r"ages must be \(5,\)"):
        dec([f, s, t, y[:3]])
    with pytest.raises(ValueError, match=r"naive input must be \(batch, ages, h, w, C\)"):
        dec([f, y])
    with pytest.raises(ValueError, match="channels"):
        AgeDecoder(channels=0)
