import numpy as np
import pytest
from keras import ops

from agekeras.layers import TemplateStatistics
from tests.harness import run_layer_test


@pytest.mark.parametrize("mode,shape", [("channel", (5, 3)), ("all", (5,))])
def test_template_statistics_standard_checks(mode, shape):
    x = np.random.RandomState(0).randn(5, 4, 4, 3).astype("float32")
    run_layer_test(TemplateStatistics, {"mode": mode, "epsilon": 1e-5}, x, expected_output_shape=[shape, shape])


def test_template_statistics_match_numpy():
    x = (np.random.RandomState(1).randn(4, 3, 5, 6) * 2 + 3).astype("float32")
    s, t = (ops.convert_to_numpy(v) for v in TemplateStatistics("channel", 1e-5)(x))
    np.testing.assert_allclose(t, x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(s, np.sqrt(x.var(axis=(1, 2)) + 1e-5), rtol=1e-5)
    s, t = (ops.convert_to_numpy(v) for v in TemplateStatistics("all", 1e-5)(x))
    flat = x.reshape(4, -1)
    np.testing.assert_allclose(t, flat.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(s, np.sqrt(flat.var(axis=1) + 1e-5), rtol=1e-5)


def test_bad_mode_and_shape():
    with pytest.raises(ValueError, match="mode"):
        TemplateStatistics("per_pixel")
    with pytest.raises(ValueError, match=r"\(batch, h, w, C\)"):
        TemplateStatistics("all")(np.zeros((3, 4, 5), "float32"))
