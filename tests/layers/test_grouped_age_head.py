import numpy as np
import pytest
from keras import ops

from agekeras.layers import GroupedAgeHead
from agekeras.layers.grouped_age_head import DECADES
from tests.harness import run_layer_test


def _np_head(x, wc, bc, wr, br, lo, hi):
    """NumPy reference: p = softmax(x Wc + bc), t = sigmoid(x Wr + br), age = sum_g p_g (lo_g + t_g (hi_g - lo_g))."""
    logits = x @ wc + bc
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    t = 1.0 / (1.0 + np.exp(-(x @ wr + br)))
    return p, (p * (lo + t * (hi - lo))).sum(-1)


def test_standard_checks():
    x = np.random.RandomState(0).randn(4, 6).astype("float32")
    run_layer_test(
        GroupedAgeHead, {"group_edges": [10.0, 30.0], "age_min": 2.0, "age_max": 70.0}, x,
        expected_output_shape=[(4, 3), (4,)], expected_num_trainable_weights=4,
    )


def test_matches_numpy():
    x = np.random.RandomState(0).randn(5, 6).astype("float32")
    head = GroupedAgeHead(group_edges=(10, 30), age_min=2, age_max=70)
    probs, age = (ops.convert_to_numpy(t) for t in head(x))
    weights = [ops.convert_to_numpy(v) for v in (head.cls_kernel, head.cls_bias, head.reg_kernel, head.reg_bias)]
    p, a = _np_head(x, *weights, lo=np.array([2.0, 10, 30]), hi=np.array([10.0, 30, 70]))
    np.testing.assert_allclose(probs, p, rtol=1e-5)
    np.testing.assert_allclose(age, a, rtol=1e-5)
    assert np.all((age > 2) & (age < 70))


def test_group_bounds_cover_the_data_range():
    # Default decades: the first group starts at the youngest age (or 9 when
    # the data starts above the first edge), the last one ends at the oldest.
    head = GroupedAgeHead(age_min=1, age_max=116)
    assert head.num_groups == len(DECADES) + 1
    np.testing.assert_allclose(head.lower, [1, 10, 20, 30, 40, 50, 60, 70, 80, 90])
    np.testing.assert_allclose(head.lower + head.width, [10, 20, 30, 40, 50, 60, 70, 80, 90, 116])
    narrow = GroupedAgeHead(group_edges=(20, 30), age_min=25, age_max=26)
    np.testing.assert_allclose(narrow.lower, [19, 20, 30])
    np.testing.assert_allclose(narrow.lower + narrow.width, [20, 30, 31])


def test_bad_edges():
    with pytest.raises(ValueError, match="increasing"):
        GroupedAgeHead(group_edges=(30, 20))
    with pytest.raises(ValueError, match="increasing"):
        GroupedAgeHead(group_edges=())
