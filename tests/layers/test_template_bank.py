import keras
import numpy as np
import pytest

from agekeras.layers import TemplateBank
from tests.harness import run_layer_test


def test_template_bank_standard_checks():
    layer = run_layer_test(
        TemplateBank,
        {"num_templates": 5, "image_shape": (4, 4, 3), "interval": 2},
        np.zeros((2, 4, 4, 3), "float32"),
        expected_output_shape=[(3, 4, 4, 3), (3,)],
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=2,
        run_training_check=False,  # no trainable weight
    )
    assert layer.sampled_indices().tolist() == [0, 2, 4]


def test_returns_every_kth_template_independent_of_the_input():
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, (7, 4, 4, 3)).astype("float32")
    ages = np.arange(20, 27, dtype="float32")
    for k in (1, 3, 7):
        bank = TemplateBank(7, (4, 4, 3), interval=k)
        bank.set_templates(images, ages)
        got_images, got_ages = bank(rng.rand(2, 4, 4, 3).astype("float32"))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got_images), images[::k])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got_ages), ages[::k])
        assert [tuple(s) for s in bank.compute_output_shape((2, 4, 4, 3))] == [(len(ages[::k]), 4, 4, 3),
                                                                               (len(ages[::k]),)]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="interval"):
        TemplateBank(3, (4, 4, 3), interval=4)
    with pytest.raises(ValueError, match="image_shape"):
        TemplateBank(3, (4, 4))
    bank = TemplateBank(3, (4, 4, 3))
    with pytest.raises(ValueError, match=r"templates must be images \(3, 4, 4, 3\)"):
        bank.set_templates(np.zeros((2, 4, 4, 3)), [1, 2])
    with pytest.raises(ValueError, match="finite"):
        bank.set_templates(np.full((3, 4, 4, 3), np.nan), [1, 2, 3])
