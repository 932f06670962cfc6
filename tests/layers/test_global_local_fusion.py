import numpy as np
import pytest
from keras import ops

from agekeras.layers import GlobalLocalFusion
from tests.harness import run_layer_test


def numpy_eq5(p_global, p_local, weight, age_min):
    """Eq. 5 of the AL paper, renormalised, and the DEX expectation."""
    p = (np.asarray(p_global, "float64") + weight * np.asarray(p_local, "float64")) / (1.0 + weight)
    return p, p @ (age_min + np.arange(p.shape[-1]))


def _probs(seed, n=3, k=5):
    return np.random.RandomState(seed).dirichlet(np.ones(k), n).astype("float32")


def test_global_local_fusion_standard_checks():
    run_layer_test(GlobalLocalFusion, {"local_weight": 0.5, "age_min": 2}, [_probs(0), _probs(1)],
                   expected_output_shape=[(3, 5), (3,)], expected_num_trainable_weights=0)


@pytest.mark.parametrize("weight,age_min", [(0.5, 2), (0.25, 0), (0.0, 16), (2.0, 10)])
def test_global_local_fusion_matches_numpy_eq5(weight, age_min):
    pg, pl = _probs(2), _probs(3)
    probs, age = GlobalLocalFusion(weight, age_min=age_min)([pg, pl])
    want_p, want_age = numpy_eq5(pg, pl, weight, age_min)
    np.testing.assert_allclose(ops.convert_to_numpy(probs), want_p, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(age), want_age, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(probs).sum(-1), 1.0, atol=1e-6)


def test_global_local_fusion_rejects_bad_input():
    with pytest.raises(ValueError, match="local_weight"):
        GlobalLocalFusion(-1.0)
    with pytest.raises(ValueError, match="same K"):
        GlobalLocalFusion()([_probs(0, k=5), _probs(1, k=4)])
