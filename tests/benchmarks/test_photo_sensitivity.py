"""benchmarks/photo_sensitivity.py: the changes it makes to a face and the shifts it reports."""

import numpy as np

from . import load_script


def _script():
    return load_script("photo_sensitivity")


def _face(size=50):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (size, size, 3)).astype("uint8")
    image[20] = 255  # a white row, the "eyes"
    return image


def test_moved_shifts_the_face_down_or_up_by_the_fraction_and_repeats_the_edge():
    s, x = _script(), _face()
    down, up = s.moved(x, 0.04), s.moved(x, -0.04)  # 2 px of 50
    assert (down[22] == 255).all() and (up[18] == 255).all()
    np.testing.assert_array_equal(down[2:], x[:-2])
    np.testing.assert_array_equal(down[0], x[0])
    np.testing.assert_array_equal(up[-1], x[-1])
    np.testing.assert_array_equal(s.moved(x, 0.001), x)


def test_zoom_of_one_and_views_keep_the_shape_and_greyscale_has_equal_channels():
    s, x = _script(), _face()
    np.testing.assert_array_equal(s.zoomed(x, 1.0), x)
    for name, change in s.VIEWS.items():
        assert change(x).shape == x.shape and change(x).dtype == np.uint8, name
    g = s.greyscale(x)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()


def test_sensitivity_reports_the_paired_shift_against_the_face_as_given():
    s = _script()
    faces = np.stack([_face() for _ in range(4)])
    ages = np.array([5.0, 15.0, 30.0, 60.0])

    def predict(batch):  # reads the row of the white line as age
        return np.array([float(np.argmax(im[..., 0].min(axis=1))) for im in batch]) + ages

    views = {"as given": lambda x: x, "down": lambda x: s.moved(x, 0.04), "up": lambda x: s.moved(x, -0.04)}
    rows = {r["view"]: r for r in s.sensitivity(predict, faces, ages, views=views)}
    assert rows["as given"]["shift"] == 0 and rows["as given"]["mae"] == 20
    assert rows["down"]["shift"] == 2 and rows["up"]["shift"] == -2
    assert rows["down"]["shift_under_20"] == 2
    assert rows["down"]["mean_error"] == 22 and rows["up"]["mae"] == 18
