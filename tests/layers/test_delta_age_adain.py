import numpy as np
import pytest
from keras import ops

from agekeras.layers import DeltaAgeAdaIN, instance_statistics
from tests.harness import input_gradients


def _np(x):
    return ops.convert_to_numpy(x)


def numpy_daa(features, s, t, eps=1e-5):
    """Eq. 7 of the DAA paper, written out: (batch, ages, h, w, C)."""
    mu = features.mean(axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
    sigma = np.sqrt(((features - mu) ** 2).mean(axis=(1, 2), keepdims=True) + eps)
    out = np.zeros((features.shape[0], len(s)) + features.shape[1:], "float64")
    for b in range(features.shape[0]):
        for a in range(len(s)):
            s_y = np.asarray(s[a]).reshape(-1)  # scalar or per channel
            t_y = np.asarray(t[a]).reshape(-1)
            out[b, a] = (s_y - sigma[b]) * (features[b] - mu[b]) / sigma[b] + t_y - mu[b]
    return out


def test_delta_age_adain_standard_checks():
    """Config, registration, eager/symbolic shapes, save/load (no weights).
    s and t have no batch axis, so the harness' `None`-batch inputs do not
    fit; the checks are done here with static per-age inputs."""
    import os
    import tempfile

    import keras

    rng = np.random.RandomState(0)
    data = [rng.randn(3, 4, 4, 5).astype("float32"), rng.rand(6).astype("float32"), rng.randn(6).astype("float32")]
    layer = DeltaAgeAdaIN(epsilon=1e-4)
    config = layer.get_config()
    assert config["epsilon"] == 1e-4 and DeltaAgeAdaIN.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(DeltaAgeAdaIN) == "agekeras>DeltaAgeAdaIN"
    assert tuple(layer(data).shape) == (3, 6, 4, 4, 5)
    inputs = [keras.Input((4, 4, 5)), keras.Input(batch_shape=(6,)), keras.Input(batch_shape=(6,))]
    out = DeltaAgeAdaIN.from_config(config)(inputs)
    assert tuple(out.shape) == (None, 6, 4, 4, 5)
    model = keras.Model(inputs, out)
    ref = _np(model(data))
    with tempfile.TemporaryDirectory() as d:
        model.save(os.path.join(d, "m.keras"))
        loaded = keras.saving.load_model(os.path.join(d, "m.keras"), safe_mode=True)
    np.testing.assert_allclose(_np(loaded(data)), ref, rtol=1e-6)


@pytest.mark.parametrize("per_channel", [False, True])
def test_eq7_matches_numpy(per_channel):
    rng = np.random.RandomState(1)
    f = (rng.randn(2, 5, 4, 6) * 3 + 1).astype("float32")
    shape = (7, 6) if per_channel else (7,)
    s = rng.uniform(0.1, 2, shape).astype("float32")
    t = rng.randn(*shape).astype("float32")
    got = _np(DeltaAgeAdaIN()([f, s, t]))
    assert got.shape == (2, 7, 5, 4, 6)
    np.testing.assert_allclose(got, numpy_daa(f.astype("float64"), s, t), rtol=1e-4, atol=1e-5)


def test_daa_is_adain_minus_the_feature():
    """delta(x, y) = AdaIN(E, s_y, t_y) - E; with the face's own style it is 0."""
    rng = np.random.RandomState(2)
    f = rng.randn(1, 6, 6, 4).astype("float32")
    mu, sigma = (_np(v) for v in instance_statistics(f, 1e-5))
    own_s, own_t = sigma.reshape(1, 4), mu.reshape(1, 4)
    s = np.concatenate([own_s, own_s * 2]).astype("float32")
    t = np.concatenate([own_t, own_t + 1]).astype("float32")
    d = _np(DeltaAgeAdaIN()([f, s, t]))
    np.testing.assert_allclose(d[0, 0], 0.0, atol=1e-5)
    adain = (f[0] - mu[0]) / sigma[0] * s[1] + t[1]
    np.testing.assert_allclose(d[0, 1], adain - f[0], rtol=1e-4, atol=1e-5)


def test_instance_statistics_match_numpy():
    rng = np.random.RandomState(3)
    f = rng.randn(2, 3, 5, 4).astype("float32")
    mu, sigma = (_np(v) for v in instance_statistics(f, 1e-3))
    np.testing.assert_allclose(mu[:, 0, 0], f.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma[:, 0, 0], np.sqrt(f.var(axis=(1, 2)) + 1e-3), rtol=1e-5)
    mu, sigma = (_np(v) for v in instance_statistics(f, 1e-3, channelwise=False))
    assert mu.shape == (2, 1, 1, 1)
    np.testing.assert_allclose(sigma.reshape(-1), np.sqrt(f.reshape(2, -1).var(axis=1) + 1e-3), rtol=1e-5)


def test_bad_shapes_raise_value_errors():
    f = np.zeros((2, 4, 4, 3), "float32")
    layer = DeltaAgeAdaIN()
    with pytest.raises(ValueError, match=r"\(batch, h, w, C\)"):
        layer([np.zeros((2, 4, 3), "float32"), np.ones(5, "float32"), np.ones(5, "float32")])
    with pytest.raises(ValueError, match=r"\(ages, C=3\)"):
        layer([f, np.ones((5, 4), "float32"), np.ones((5, 4), "float32")])
    with pytest.raises(ValueError, match="same shape"):
        layer([f, np.ones(5, "float32"), np.ones(4, "float32")])
    with pytest.raises(ValueError, match=r"\[features, s, t\]"):
        layer([f, np.ones(5, "float32")])


@pytest.mark.parametrize("epsilon,dtype", [(0.0, "float32"), (1e-5, "float32"), (1e-8, "mixed_float16")])
def test_dead_channel_gives_finite_outputs_and_gradients(epsilon, dtype):
    """A constant channel (sigma = 0 before epsilon) must not produce inf/NaN, forward or backward."""
    rng = np.random.RandomState(5)
    f = rng.randn(2, 4, 4, 3).astype("float32")
    f[..., 1] = 0.7  # dead channel, e.g. after a ReLU that never fires
    f[1, ..., 2] = 0.0
    s = rng.uniform(0.5, 1.5, 6).astype("float32")
    t = rng.randn(6).astype("float32")
    layer = DeltaAgeAdaIN(epsilon=epsilon, dtype=dtype)
    out = layer([f, s, t])
    grads = input_gradients(lambda inputs: layer(inputs), [f, s, t],
                            loss_fn=lambda o: ops.sum(ops.square(ops.cast(o, "float32"))))
    assert np.all(np.isfinite(_np(out).astype("float64")))
    for g in grads:
        assert np.all(np.isfinite(_np(g)))
    # The dead channel's normalised map is 0, so its delta is t_y - mu (Eq. 7 with E_c = mu_c).
    np.testing.assert_allclose(_np(out)[0, :, :, :, 1].astype("float32"),
                               np.broadcast_to((_np(t) - 0.7)[:, None, None], (6, 4, 4)), atol=2e-2)
    # Live channels are unchanged by the floor (default epsilon): same as the NumPy Eq. 7.
    if epsilon == 1e-5:
        np.testing.assert_allclose(_np(out)[..., 0], numpy_daa(f.astype("float64"), _np(s), _np(t))[..., 0],
                                   rtol=1e-4, atol=1e-5)


def test_instance_statistics_floor_sigma_only_when_needed():
    f = np.zeros((1, 3, 3, 2), "float32")
    f[..., 0] = np.arange(9).reshape(3, 3)
    _, sigma = (_np(v) for v in instance_statistics(f, 0.0))
    np.testing.assert_allclose(sigma[0, 0, 0], [np.arange(9).std(), 1e-3], rtol=1e-6)
