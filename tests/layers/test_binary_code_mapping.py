import numpy as np
import pytest
from keras import ops

from agekeras.layers import BinaryCodeMapping, binary_codes
from tests.harness import run_layer_test


def _np(x):
    return ops.convert_to_numpy(x)


def test_binary_code_mapping_standard_checks():
    # The input only anchors the layer; its batch equals the number of ages
    # so that the harness' one-step fit sees matching cardinalities.
    x = np.random.RandomState(0).randn(6, 3).astype("float32")
    run_layer_test(
        BinaryCodeMapping,
        {"num_ages": 6, "age_min": 3, "bits": 4, "hidden_units": [16, 32], "interval": 1},
        x,
        expected_output_shape=[(6,), (6,), (6,)],
        expected_num_trainable_weights=6,
    )


def test_binary_codes_are_bin_y_plus_one_unique_and_ordered():
    raw = binary_codes(100, bits=8, normalize=False)
    assert raw.shape == (100, 8)
    assert set(np.unique(raw)) == {0.0, 1.0}
    values = raw @ (2.0 ** np.arange(7, -1, -1))  # most significant bit first
    np.testing.assert_array_equal(values, np.arange(1, 101))
    assert np.all(np.diff(values) > 0)
    np.testing.assert_array_equal(raw[4], [0, 0, 0, 0, 0, 1, 0, 1])  # age index 4 -> bin(5)
    codes = binary_codes(100, bits=8)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, rtol=1e-6)
    assert len(np.unique(codes.round(6), axis=0)) == 100
    np.testing.assert_allclose(codes[2], np.array([0, 0, 0, 0, 0, 0, 1, 1]) / np.sqrt(2), rtol=1e-6)


def test_mapping_matches_numpy_mlp():
    layer = BinaryCodeMapping(num_ages=20, age_min=10, bits=8)
    s, t, ages = (_np(v) for v in layer(np.zeros((1,), "float32")))
    (w1, b1), (w2, b2) = [(_np(d.kernel), _np(d.bias)) for d in layer.hidden]
    w3, b3 = _np(layer.out.kernel), _np(layer.out.bias)
    assert w1.shape == (8, 16) and w2.shape == (16, 32) and w3.shape == (32, 2)
    z = binary_codes(20, 8)
    h = np.maximum(z @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    out = h @ w3 + b3
    np.testing.assert_allclose(t, out[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s, out[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ages, np.arange(10, 30))
    # The styles differ between ages (the codes are distinct).
    assert np.std(s) > 0 and np.std(t) > 0


def test_interval_sampling_returns_every_kth_age():
    full = BinaryCodeMapping(num_ages=100, age_min=1)
    s, t, ages = (_np(v) for v in full(np.zeros((1,), "float32")))
    for k in (1, 3, 10, 100):
        sub = BinaryCodeMapping.from_config({**full.get_config(), "interval": k})
        sub.build()
        sub.set_weights(full.get_weights())
        s_k, t_k, ages_k = (_np(v) for v in sub(np.zeros((1,), "float32")))
        np.testing.assert_array_equal(sub.sampled_indices(), np.arange(0, 100, k))
        np.testing.assert_array_equal(ages_k, 1 + np.arange(0, 100, k))
        assert len(s_k) == len(range(0, 100, k)) == sub.compute_output_shape(None)[0][0]
        np.testing.assert_allclose(s_k, s[::k], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(t_k, t[::k], rtol=1e-6, atol=1e-7)


def test_style_statistics_without_input_and_by_index():
    layer = BinaryCodeMapping(num_ages=30, interval=5)
    s_all, t_all, ages_all = (_np(v) for v in layer.style_statistics(np.arange(30)))
    assert s_all.shape == (30,)
    s, t, ages = (_np(v) for v in layer.style_statistics())
    np.testing.assert_array_equal(ages, [0, 5, 10, 15, 20, 25])
    np.testing.assert_allclose(s, s_all[::5], rtol=1e-6)
    s3, _, a3 = (_np(v) for v in layer.style_statistics([3, 7]))
    np.testing.assert_allclose(s3, s_all[[3, 7]], rtol=1e-6)
    np.testing.assert_array_equal(a3, [3, 7])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 30\)"):
        layer.style_statistics([30])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="8 bits code at most 255 ages"):
        BinaryCodeMapping(num_ages=256)
    BinaryCodeMapping(num_ages=255)  # fits
    with pytest.raises(ValueError, match="interval"):
        BinaryCodeMapping(num_ages=10, interval=0)
    with pytest.raises(ValueError, match="interval"):
        BinaryCodeMapping(num_ages=10, interval=11)
    with pytest.raises(ValueError, match="hidden_units"):
        BinaryCodeMapping(num_ages=10, hidden_units=[16, 0])
