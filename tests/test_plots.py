"""Tests for agekeras.plots: what each figure contains, and saving."""

import keras
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from agekeras import plots

HEADER = "epoch,loss,mae,val_loss,val_mae\n"


def _write_history(path, loss, val_loss):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{e},{l},{2 * l},{v},{2 * v}\n" for e, (l, v) in enumerate(zip(loss, val_loss))]
    path.write_text(HEADER + "".join(lines))
    return path


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ----- plot_history ----------------------------------------------------------


def test_plot_history_two_csvs_one_metric(tmp_path):
    a = _write_history(tmp_path / "a.csv", [3.0, 2.0, 1.5], [3.5, 2.5, 2.0])
    b = _write_history(tmp_path / "b.csv", [4.0, 3.0, 2.0], [4.5, 3.5, 3.0])
    fig = plots.plot_history([a, b], metrics=("loss",))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [l.get_label() for l in lines] == ["a", "a (val)", "b", "b (val)"]
    expected = [[3.0, 2.0, 1.5], [3.5, 2.5, 2.0], [4.0, 3.0, 2.0], [4.5, 3.5, 3.0]]
    for line, y in zip(lines, expected):
        np.testing.assert_allclose(line.get_xdata(), [1, 2, 3])
        np.testing.assert_allclose(line.get_ydata(), y)
    assert [l.get_linestyle() for l in lines] == ["-", "--", "-", "--"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert lines[2].get_color() == lines[3].get_color()


def test_plot_history_log_scale_only_for_a_wide_positive_spread():
    spike = {"loss": [9.0, 8.0, 7.0], "val_loss": [4700.0, 30.0, 8.0], "mae": [-1.0, 2.0, 3000.0]}
    fig = plots.plot_history(spike, metrics=("loss", "mae"))
    assert [a.get_yscale() for a in fig.axes] == ["log", "linear"]  # mae has a value <= 0
    fig = plots.plot_history(spike, metrics="loss", log_spread=None)
    assert fig.axes[0].get_yscale() == "linear"
    fig = plots.plot_history({"loss": [5.0, 4.0, 3.0]}, metrics="loss")
    assert fig.axes[0].get_yscale() == "linear"


def test_plot_history_several_metrics_labels_and_dict(tmp_path):
    a = _write_history(tmp_path / "run1" / "history.csv", [3.0, 2.0], [3.5, 2.5])
    b = _write_history(tmp_path / "run2" / "history.csv", [4.0, 3.0], [4.5, 3.5])
    fig = plots.plot_history([a, b], metrics=("loss", "mae"))
    assert len(fig.axes) == 2
    labels = [l.get_label() for l in fig.axes[0].get_lines()]
    assert labels == ["run1/history", "run1/history (val)", "run2/history", "run2/history (val)"]
    np.testing.assert_allclose(fig.axes[1].get_lines()[3].get_ydata(), [9.0, 7.0])

    fig = plots.plot_history({"loss": [5.0, 4.0, 3.0, 2.0]}, metrics="loss", labels=["dex"])
    (line,) = fig.axes[0].get_lines()
    assert line.get_label() == "dex"
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 3, 4])


def test_plot_history_reads_real_csvlogger(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    x = np.random.rand(16, 3).astype("float32")
    y = np.random.rand(16, 1).astype("float32")
    path = tmp_path / "history.csv"
    history = model.fit(
        x, y, validation_split=0.25, epochs=3, verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(path))],
    )
    fig = plots.plot_history(path, metrics=("loss", "mae"))
    train, val = fig.axes[1].get_lines()
    np.testing.assert_allclose(train.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(train.get_ydata(), history.history["mae"], rtol=1e-5)
    np.testing.assert_allclose(val.get_ydata(), history.history["val_mae"], rtol=1e-5)
    # The History object itself is accepted too.
    fig = plots.plot_history(history, metrics="loss")
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), history.history["loss"])


def test_plot_history_errors(tmp_path):
    a = _write_history(tmp_path / "a.csv", [1.0], [1.0])
    with pytest.raises(KeyError, match="accuracy"):
        plots.plot_history(a, metrics=("accuracy",))
    with pytest.raises(ValueError, match="labels"):
        plots.plot_history([a, a], labels=["only one"])
    with pytest.raises(ValueError, match="No metrics"):
        plots.plot_history(a, metrics=[])


# ----- predictions and error by age ---------------------------------------------


def test_plot_predictions():
    y_true = np.array([10.0, 20.0, 30.0, 40.0])
    y_pred = np.array([12.0, 18.0, 33.0, 40.0])
    fig = plots.plot_predictions(y_true, y_pred, mae=1.75)
    (ax,) = fig.axes
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(points.get_offsets(), np.stack([y_true, y_pred], 1))
    (diagonal,) = ax.get_lines()
    np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())
    np.testing.assert_allclose(diagonal.get_xdata(), [10.0, 40.0])
    assert ax.get_title() == "MAE = 1.75 years (n = 4)"  # the number passed in, not one computed here
    assert plots.plot_predictions(y_true, y_pred).axes[0].get_title() == "n = 4 faces"
    with pytest.raises(ValueError, match="4 true ages but 3 predictions"):
        plots.plot_predictions(y_true, y_pred[:3])


def test_plot_largest_errors_shows_the_worst_faces_first_with_true_and_predicted_ages():
    images = np.stack([np.full((8, 8, 3), 10 * i, "uint8") for i in range(5)])  # face i is grey level 10 i
    y_true = np.array([20.0, 30.0, 40.0, 50.0, 60.0])
    y_pred = np.array([21.0, 45.0, 40.0, 42.0, 75.0])  # errors 1, 15, 0, 8, 15: ties keep the faces' order
    fig = plots.plot_largest_errors(images, y_true, y_pred, n=3, title="resnet18_dex, synthetic, 8 px, 1 epoch")
    np.testing.assert_array_equal(fig.agekeras_index, [1, 4, 3])
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["true 30, pred 45", "true 60, pred 75", "true 50, pred 42"]
    assert [int(ax.get_images()[0].get_array()[0, 0, 0]) for ax in panels] == [10, 40, 30]  # the faces themselves
    assert fig._suptitle.get_text() == "resnet18_dex, synthetic, 8 px, 1 epoch"
    read = []
    fig = plots.plot_largest_errors(lambda i: read.append(i) or images[i], y_true, y_pred, n=2)  # read on demand
    assert read == [1, 4] and len([ax for ax in fig.axes if ax.get_images()]) == 2
    assert len(plots.plot_largest_errors(images, y_true, y_pred, n=10).agekeras_index) == 5
    with pytest.raises(ValueError, match="5 true ages but 4 predictions"):
        plots.plot_largest_errors(images, y_true, y_pred[:4])
    with pytest.raises(ValueError, match="4 images for 5 ages"):
        plots.plot_largest_errors(images[:4], y_true, y_pred)


def test_plot_error_by_age_draws_the_table_it_is_given():
    by_age = [{"bracket": "0-10", "n": 2, "mae": 2.0}, {"bracket": "10-20", "n": 0, "mae": None},
              {"bracket": "20-30", "n": 3, "mae": 7 / 3}]
    fig = plots.plot_error_by_age(by_age, mae=2.2)
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [2.0, 0.0, 7 / 3])
    assert [t.get_text() for t in ax.texts] == ["n=2", "n=0", "n=3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0-10", "10-20", "20-30"]
    assert ax.get_title() == "MAE by age (overall 2.20)"
    assert plots.plot_error_by_age(by_age).axes[0].get_title() == "MAE by age"
    with pytest.raises(ValueError, match="error_by_age"):
        plots.plot_error_by_age([[5, 9], [6, 12]])  # ages, not the table
    with pytest.raises(TypeError):
        plots.plot_error_by_age([5, 9], [6, 12])  # (y_true, y_pred): the table is computed by the caller


def test_plot_error_by_age_of_the_metrics_table():
    from agekeras import metrics

    y_true, y_pred = [5, 9, 25, 29, 25], [6, 12, 20, 29, 27]
    fig = plots.plot_error_by_age(metrics.error_by_age(y_true, y_pred, bins=(0, 10, 20, 30)),
                                  mae=metrics.mae(y_true, y_pred))
    ax = fig.axes[0]
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [2.0, 0.0, 7 / 3])
    assert "2.20" in ax.get_title()  # (1 + 3 + 5 + 0 + 2) / 5


# ----- t-SNE -------------------------------------------------------------------


def test_plot_tsne_coords_deterministic_and_subsampled():
    rng = np.random.default_rng(0)
    ages = rng.uniform(0, 80, size=80)
    embeddings = np.concatenate([ages[:, None] / 10, rng.normal(size=(80, 7))], axis=1)

    fig = plots.plot_tsne(embeddings, ages, perplexity=10, seed=3, max_points=50)
    assert fig.agekeras_coords.shape == (50, 2)
    index = fig.agekeras_index
    assert len(np.unique(index)) == 50 and np.all(np.diff(index) > 0)
    assert len(fig.axes) == 2  # scatter and colorbar
    (points,) = fig.axes[0].collections
    np.testing.assert_allclose(points.get_array(), ages[index])
    np.testing.assert_allclose(points.get_offsets(), fig.agekeras_coords)

    again = plots.plot_tsne(embeddings, ages, perplexity=10, seed=3, max_points=50)
    np.testing.assert_array_equal(again.agekeras_index, index)
    np.testing.assert_allclose(again.agekeras_coords, fig.agekeras_coords)
    other = plots.plot_tsne(embeddings, ages, perplexity=10, seed=4, max_points=50)
    assert not np.array_equal(other.agekeras_index, index)


def test_plot_tsne_like_colours_the_same_map_again():
    rng = np.random.default_rng(1)
    ages, gender = rng.uniform(0, 80, size=40), rng.integers(0, 2, size=40)
    embeddings = np.concatenate([ages[:, None] / 10, rng.normal(size=(40, 5))], axis=1)
    by_age = plots.plot_tsne(embeddings, ages, perplexity=5, max_points=30)
    by_gender = plots.plot_tsne(embeddings, gender, like=by_age, label="gender")
    np.testing.assert_array_equal(by_gender.agekeras_index, by_age.agekeras_index)
    (points,) = by_gender.axes[0].collections
    np.testing.assert_allclose(points.get_offsets(), by_age.agekeras_coords)  # the same places
    np.testing.assert_allclose(points.get_array(), gender[by_age.agekeras_index])  # other colours
    assert by_gender.axes[1].get_ylabel() == "gender"
    with pytest.raises(ValueError, match="maps rows up to"):
        plots.plot_tsne(embeddings[:10], gender[:10], like=by_age)


def test_plot_tsne_small_set_without_subsampling():
    embeddings = np.random.default_rng(1).normal(size=(12, 4))
    fig = plots.plot_tsne(embeddings, np.arange(12), title="tiny")
    np.testing.assert_array_equal(fig.agekeras_index, np.arange(12))
    assert fig.agekeras_coords.shape == (12, 2)
    assert fig.axes[0].get_title() == "tiny"


# ----- image grid -----------------------------------------------------------------


def test_plot_image_grid_axes_titles_and_relative_boxes():
    images = np.zeros((5, 40, 20, 3), dtype="uint8")
    boxes = np.array([[0.25, 0.5, 0.5, 0.25]] * 4 + [[np.nan] * 4])
    fig = plots.plot_image_grid(images, titles=list("abcde"), ncols=3, boxes=boxes)
    assert len(fig.axes) == 5
    assert fig.axes[3].get_subplotspec().rowspan.start == 1
    assert [ax.get_title() for ax in fig.axes] == list("abcde")
    for ax in fig.axes[:4]:
        (rect,) = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert rect.get_xy() == pytest.approx((5.0, 20.0))  # 0.25 * W, 0.5 * H
        assert (rect.get_width(), rect.get_height()) == pytest.approx((10.0, 10.0))
    assert not fig.axes[4].patches  # NaN box skipped


def test_plot_image_grid_pixel_boxes_several_per_image_and_points():
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32)).astype("float32")
    boxes = np.array([[[2, 4, 10, 12], [16, 16, 8, 8], [0, 0, 32, 32]]] * 2, dtype="float32")
    points = np.array([[[8, 10], [24, 10], [16, 16], [10, 24], [np.nan, np.nan]]] * 2)
    fig = plots.plot_image_grid(images, boxes=boxes, points=points)
    ax = fig.axes[0]
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [r.get_bbox().bounds for r in rects] == [(2, 4, 10, 12), (16, 16, 8, 8), (0, 0, 32, 32)]
    assert len({r.get_edgecolor() for r in rects}) == 3
    (scatter,) = ax.collections
    np.testing.assert_allclose(scatter.get_offsets(), points[0, :4])
    (image,) = ax.get_images()
    assert image.get_array().max() <= 1.0  # 0-255 floats rescaled
    assert ax.get_xlim() == (0, 32) and ax.get_ylim() == (32, 0)


def test_plot_image_grid_relative_flag_overrides_inference():
    images = np.zeros((1, 10, 10, 3), dtype="uint8")
    # A glimpse that leaves the image: not all in [0, 1], yet relative.
    fig = plots.plot_image_grid(images, boxes=[[-0.2, 0.5, 0.6, 0.6]], relative=True)
    (rect,) = fig.axes[0].patches
    assert rect.get_bbox().bounds == pytest.approx((-2.0, 5.0, 6.0, 6.0))


# ----- curves, ax and save_to ---------------------------------------------------------


def test_plot_curve_lines_labels_and_legend():
    x = np.arange(5)
    fig = plots.plot_curve(x, {"S": x * 2.0, "T": x + 1.0}, "age", "value", "S and T")
    (ax,) = fig.axes
    assert [l.get_label() for l in ax.get_lines()] == ["S", "T"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [1, 2, 3, 4, 5])
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("age", "value", "S and T")
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="'S'"):
        plots.plot_curve(x, {"S": [1, 2]})


def test_existing_axes_are_drawn_into():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plots.plot_curve([0, 1], {"a": [0, 1]}, ax=right) is fig
    assert len(right.get_lines()) == 1 and not left.get_lines()
    assert plots.plot_history({"loss": [1.0, 0.5]}, ax=left) is fig
    assert len(left.get_lines()) == 1

    subfig = Figure().subfigures(1, 2)[1]
    assert plots.plot_predictions([1, 2], [1, 3], ax=subfig.add_subplot()) is subfig.figure
    assert plots.plot_error_by_age([{"bracket": "0-10", "n": 1, "mae": 1.0}], ax=left) is fig


def test_save_to_creates_folders_and_writes_png_at_120_dpi(tmp_path):
    path = tmp_path / "new" / "deeper" / "curve.png"
    fig = plots.plot_curve([0, 1, 2], {"y": [0, 1, 4]}, save_to=path)
    width, height = fig.get_size_inches()
    assert path.stat().st_size > 0
    assert _png_size(path) == (round(width * 120), round(height * 120))

    grid = tmp_path / "grid" / "faces.png"
    plots.plot_image_grid(np.zeros((3, 8, 8, 3), "uint8"), save_to=grid)
    assert grid.stat().st_size > 0
