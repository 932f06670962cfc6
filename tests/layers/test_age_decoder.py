import numpy as np
import pytest
from keras import ops

from agekeras.layers import AgeDecoder, DeltaAgeAdaIN, age_from_deltas
from tests.harness import backend_gradients, gradients, run_layer_test
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
            out[i, j] = np.einsum("abc,abcf->f", p[i : i + 3, j : j + 3], k)
    return out


def check_with_static_ages(layer, data, expected_shapes):
    """The harness' checks for layers whose per-age inputs (s, t, ages) have
    no batch axis: `run_layer_test` gives every input a `None` batch
    dimension, which would make the number of ages unknown, so here the
    per-age inputs get `batch_shape=` (static ages). Checks: config round
    trip, eager == symbolic shapes, a gradient to every trainable weight, one
    fit step changes the weights, `.keras` save/load under safe_mode."""
    import os
    import tempfile

    import keras

    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    assert keras.saving.get_registered_name(type(layer)).startswith("agekeras>")
    eager = layer(data)
    assert [tuple(v.shape) for v in eager] == expected_shapes
    inputs = [keras.Input(shape=data[0].shape[1:])] + [keras.Input(batch_shape=x.shape) for x in data[1:]]
    sym = type(layer).from_config(config)(inputs)
    assert [tuple(v.shape)[1:] for v in sym] == [e[1:] for e in expected_shapes]
    assert tuple(sym[0].shape)[1] == expected_shapes[0][1]  # the ages axis is static
    model = keras.Model(inputs, list(sym))
    grads = gradients(model, data, model.trainable_weights)
    assert len(grads) == len(model.trainable_weights) > 0
    for w, g in zip(model.trainable_weights, grads):
        assert g is not None and np.all(np.isfinite(_np(g))) and np.any(_np(g) != 0), w.path
    before = [_np(w).copy() for w in model.trainable_weights]
    targets = [np.full(e, 0.5, "float32") for e in expected_shapes]
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(data, targets, batch_size=len(data[0]), epochs=1, verbose=0)
    assert all(not np.allclose(b, _np(w)) for b, w in zip(before, model.trainable_weights))
    ref = [_np(v) for v in model(data)]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(ref, loaded(data)):
        np.testing.assert_allclose(a, _np(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_age_decoder_factorised_standard_checks(per_channel):
    f, s, t, y = _inputs(batch=4, ages=4, per_channel=per_channel)
    layer = AgeDecoder(channels=8, epsilon=1e-5)
    check_with_static_ages(layer, [f, s, t, y], [(4, 4), (4,)])
    assert len(layer.trainable_weights) == 5 and len(layer.non_trainable_weights) == 2


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


def test_delta_scale_multiplies_the_fc_output():
    f, s, t, y = _inputs(seed=6)
    one, three = AgeDecoder(channels=4), AgeDecoder(channels=4, delta_scale=3.0)
    one([f, s, t, y])
    three([f, s, t, y])
    three.set_weights(one.get_weights())
    d1, a1 = (_np(v) for v in one([f, s, t, y]))
    d3, a3 = (_np(v) for v in three([f, s, t, y]))
    np.testing.assert_allclose(d3, 3 * d1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a3, (y[None] - 3 * d1).mean(1), rtol=1e-5)
    assert np.abs(d1).max() < 0.5  # the authors' small FC init: deltas start near 0
    with pytest.raises(ValueError, match="delta_scale"):
        AgeDecoder(delta_scale=0)


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

    def grads(naive):
        def fn(fst):
            fv, sv, tv = fst
            return dec([adain([fv, sv, tv]), y] if naive else [fv, sv, tv, y], training=True)

        def loss_fn(out):
            d, a = out
            return ops.sum(ops.square(a - 25.0)) + ops.sum(ops.square(d))

        g_weights, g_inputs = backend_gradients(fn, [f, s, t], dec.trainable_weights, loss_fn)
        return list(g_inputs) + g_weights

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


def test_factorised_bn_updates_moving_statistics_like_the_bn_layer():
    f, s, t, y = _inputs(seed=4, batch=3, ages=6, h=4, w=4, c=5)
    fast, slow = AgeDecoder(channels=4), AgeDecoder(channels=4)
    fast([f, s, t, y])
    slow([DeltaAgeAdaIN()([f, s, t]), y])
    slow.set_weights(fast.get_weights())
    fast([f, s, t, y], training=True)
    slow([DeltaAgeAdaIN()([f, s, t]), y], training=True)
    mean, var = _np(fast.bn.moving_mean), _np(fast.bn.moving_variance)
    assert np.abs(mean).max() > 1e-4 and np.abs(var - 1).max() > 1e-4  # they moved
    np.testing.assert_allclose(mean, _np(slow.bn.moving_mean), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(var, _np(slow.bn.moving_variance), rtol=1e-4, atol=1e-6)
    # A frozen BN uses (and keeps) its moving statistics, as keras' BN does.
    fast.bn.trainable = False
    before = _np(fast.bn.moving_mean).copy()
    d_frozen, _ = fast([f, s, t, y], training=True)
    d_inf, _ = fast([f, s, t, y], training=False)
    np.testing.assert_allclose(_np(fast.bn.moving_mean), before)
    np.testing.assert_allclose(_np(d_frozen), _np(d_inf), rtol=1e-6)
