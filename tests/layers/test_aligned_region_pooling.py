import numpy as np
import pytest
from keras import ops

from agekeras.layers import AlignedRegionPooling
from agekeras.layers.aligned_region_pooling import (
    CANONICAL,
    DEFAULT_REGIONS,
    REGION_TEMPLATES,
    fit_affine,
    fit_box,
)
from tests.harness import input_gradients, run_layer_test


def pixels(normalised, size):
    """[-1, 1] image frame -> pixel coordinates (centres at integers)."""
    return (np.asarray(normalised) + 1.0) / 2.0 * size - 0.5


def random_landmarks(rng, n, size, jitter=0.08):
    """Canonical landmarks moved by a random similarity + noise, in pixels."""
    out = []
    for _ in range(n):
        angle, scale = rng.uniform(-0.4, 0.4), rng.uniform(0.8, 1.1)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = CANONICAL @ rot.T + rng.uniform(-0.1, 0.1, 2) + rng.normal(0, jitter, (5, 2))
        out.append(pixels(pts, size))
    return np.asarray(out, "float32")


def np_bilinear(fmap, x, y):
    """Bilinear value of fmap (H, W, C) at pixel (x, y); zero outside."""
    h, w, c = fmap.shape
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    out = np.zeros(c)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= xx < w and 0 <= yy < h:
                out += (1 - abs(x - xx)) * (1 - abs(y - yy)) * fmap[yy, xx]
    return out


def np_arp(features, landmarks, image_size, out_size, regions, mode="affine"):
    """NumPy reference of Eq. 1 + bilinear warp (lstsq fit, loops); sizes an
    int or (height, width)."""
    b, h, w, c = features.shape
    (image_h, image_w), (out_h, out_w) = (np.broadcast_to(s, 2) for s in (image_size, out_size))
    result = np.zeros((len(regions), b, out_h, out_w, c))
    for n in range(b):
        src = (landmarks[n].astype("float64") + 0.5) / [image_w, image_h] * 2 - 1
        for r, name in enumerate(regions):
            tpl = REGION_TEMPLATES[name]
            if tpl is None:
                theta = np.array([[1.0, 0, 0], [0, 1.0, 0]])
            elif mode == "affine":
                theta = np.linalg.lstsq(np.c_[tpl, np.ones(5)], src, rcond=None)[0].T
            else:  # the paper's ROI boxes: fixed size, centred on a landmark-defined point
                centre = {
                    "global2": src[2], "global3": src[2], "left_eye": src[0],
                    "nose": (src[2] + (src[0] + src[1]) / 2) / 2, "mouth": (src[3] + src[4]) / 2,
                }[name]
                size = np.array([np.linalg.lstsq(np.c_[tpl[:, d], np.ones(5)], CANONICAL[:, d], rcond=None)[0][0]
                                 for d in range(2)])  # fmt: skip
                theta = np.array([[size[0], 0, centre[0]], [0, size[1], centre[1]]])
            for i in range(out_h):
                for j in range(out_w):
                    u, v = (j + 0.5) / out_w * 2 - 1, (i + 0.5) / out_h * 2 - 1
                    xn, yn = theta @ [u, v, 1.0]
                    result[r, n, i, j] = np_bilinear(features[n], (xn + 1) * w / 2 - 0.5, (yn + 1) * h / 2 - 0.5)
    return result


def test_standard_checks():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    marks = random_landmarks(rng, 2, 32)
    layer = run_layer_test(
        AlignedRegionPooling,
        {"output_size": 5, "image_size": 32, "regions": DEFAULT_REGIONS, "mode": "affine", "fill_missing": True},
        [feats, marks],
        expected_output_shape=[(2, 5, 5, 3)] * 6,
        expected_num_trainable_weights=0,
    )
    assert layer.get_config()["output_size"] == (5, 5)


def test_custom_templates_round_trip():
    tpl = {"chin": (CANONICAL * 1.5 - [0, 0.6]).tolist()}
    feats = np.ones((1, 8, 8, 2), "float32")
    marks = pixels(CANONICAL, 32)[None].astype("float32")
    run_layer_test(
        AlignedRegionPooling,
        {"output_size": (4, 6), "image_size": (32, 32), "regions": ("global1", "chin"), "templates": tpl},
        [feats, marks],
        expected_output_shape=[(1, 4, 6, 2)] * 2,
    )


@pytest.mark.usefixtures("float64")
def test_least_squares_affine_recovers_a_known_affine_exactly():
    rng = np.random.default_rng(1)
    thetas = rng.normal(0, 0.5, (6, 2, 3)) + np.array([[1, 0, 0], [0, 1, 0]])
    for name in ("global2", "left_eye", "mouth"):
        tpl = REGION_TEMPLATES[name]
        src = np.einsum("nk,bdk->bnd", np.c_[tpl, np.ones(5)], thetas)
        got = ops.convert_to_numpy(fit_affine(tpl, src))
        np.testing.assert_allclose(got, thetas, atol=1e-9)


def _lstsq_affine(target, source):
    """NumPy reference of Eq. 1: the (2, 3) affine sending `target` onto `source` in least squares."""
    return np.linalg.lstsq(np.c_[target, np.ones(len(target))], source, rcond=None)[0].T


@pytest.mark.usefixtures("float64")
def test_least_squares_affine_matches_numpy_lstsq_on_noisy_points():
    rng = np.random.default_rng(2)
    tpl = REGION_TEMPLATES["global3"]
    src = rng.normal(0, 0.5, (8, 5, 2))
    got = ops.convert_to_numpy(fit_affine(tpl, src))
    np.testing.assert_allclose(got, np.stack([_lstsq_affine(tpl, src[n]) for n in range(8)]), atol=1e-9)
    # A per-sample target works too (batched normal equations).
    tpls = rng.normal(0, 0.5, (8, 5, 2))
    got = ops.convert_to_numpy(fit_affine(tpls, src))
    np.testing.assert_allclose(got, np.stack([_lstsq_affine(tpls[n], src[n]) for n in range(8)]), atol=1e-9)
    # The residual is not zero: the noisy points are not an exact affine image.
    fitted = np.einsum("nk,bdk->bnd", np.c_[tpl, np.ones(5)], ops.convert_to_numpy(fit_affine(tpl, src)))
    assert np.abs(fitted - src).max() > 0.05


@pytest.mark.usefixtures("float64")
def test_box_fit_matches_per_axis_lstsq_and_has_no_rotation():
    rng = np.random.default_rng(3)
    tpl = REGION_TEMPLATES["nose"]
    src = rng.normal(0, 0.5, (4, 5, 2))
    got = ops.convert_to_numpy(fit_box(tpl, src))
    for n in range(4):
        for d in range(2):
            a, b = np.linalg.lstsq(np.c_[tpl[:, d], np.ones(5)], src[n, :, d], rcond=None)[0]
            np.testing.assert_allclose(got[n, d, [d, 2]], [a, b], atol=1e-9)
        assert got[n, 0, 1] == 0 and got[n, 1, 0] == 0


@pytest.mark.parametrize("region", ["global2", "global3", "left_eye", "mouth"])
def test_identity_landmarks_give_the_identity_warp(region):
    """Landmarks equal to a region's template (in the image frame) give the
    identity affine, so with the output size equal to the map size the region
    is the feature map itself."""
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(2, 12, 12, 4)).astype("float32")
    marks = np.stack([pixels(REGION_TEMPLATES[region], 48)] * 2).astype("float32")
    arp = AlignedRegionPooling(output_size=12, image_size=48, regions=("global1", region))
    theta = ops.convert_to_numpy(arp.region_thetas(marks))
    np.testing.assert_allclose(theta, np.broadcast_to([[1, 0, 0], [0, 1, 0]], theta.shape), atol=1e-5)
    whole, aligned = arp([feats, marks])
    np.testing.assert_allclose(ops.convert_to_numpy(whole), feats, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(aligned), feats, atol=1e-4)


@pytest.mark.parametrize("mode", ["affine", "roi"])
def test_warp_matches_numpy_bilinear_reference(mode):
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(2, 10, 10, 3)).astype("float32")
    marks = random_landmarks(rng, 2, 40, jitter=0.05)
    arp = AlignedRegionPooling(output_size=7, image_size=40, mode=mode)
    got = np.stack([ops.convert_to_numpy(m) for m in arp([feats, marks])])
    ref = np_arp(feats, marks, 40, 7, DEFAULT_REGIONS, mode)
    np.testing.assert_allclose(got, ref, atol=2e-5)
    # Some local windows reach outside the map only partly; nothing is NaN.
    assert np.isfinite(got).all()


@pytest.mark.parametrize("mode", ["affine", "roi"])
def test_non_square_image_map_and_output_match_the_numpy_reference(mode):
    """Width != height everywhere (a 48 x 80 image, a 6 x 10 map, a 5 x 7 output):
    x is normalised by the width and y by the height."""
    rng = np.random.default_rng(10)
    feats = rng.normal(size=(2, 6, 10, 3)).astype("float32")
    marks = random_landmarks(rng, 2, 48, jitter=0.05) * np.array([80 / 48, 1.0], "float32")  # faces 80 px wide
    arp = AlignedRegionPooling(output_size=(5, 7), image_size=(48, 80), mode=mode)
    got = np.stack([ops.convert_to_numpy(m) for m in arp([feats, marks])])
    assert got.shape == (6, 2, 5, 7, 3)
    np.testing.assert_allclose(got, np_arp(feats, marks, (48, 80), (5, 7), DEFAULT_REGIONS, mode), atol=2e-5)
    # The whole map (global1) at the map's size is the map itself.
    whole = AlignedRegionPooling(output_size=(6, 10), image_size=(48, 80), regions=("global1",))([feats, marks])[0]
    np.testing.assert_allclose(ops.convert_to_numpy(whole), feats, atol=1e-5)


def test_gradient_reaches_features_not_landmarks():
    rng = np.random.default_rng(6)
    feats = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    marks = random_landmarks(rng, 2, 32).astype("float32")
    arp = AlignedRegionPooling(output_size=6, image_size=32)
    g_feat, g_marks = input_gradients(arp, [feats, marks])
    assert g_feat is not None and np.abs(g_feat).sum() > 0
    assert g_marks is None or np.all(g_marks == 0)


def test_missing_landmarks_fall_back_to_canonical_face():
    rng = np.random.default_rng(7)
    feats = rng.normal(size=(2, 8, 8, 2)).astype("float32")
    canonical = pixels(CANONICAL, 32).astype("float32")
    marks = np.stack([canonical, canonical])
    marks_nan = marks.copy()
    marks_nan[1, 3, 0] = np.nan
    arp = AlignedRegionPooling(output_size=5, image_size=32)
    a = np.stack([ops.convert_to_numpy(m) for m in arp([feats, marks])])
    b = np.stack([ops.convert_to_numpy(m) for m in arp([feats, marks_nan])])
    np.testing.assert_allclose(a, b, atol=1e-5)
    strict = AlignedRegionPooling(output_size=5, image_size=32, fill_missing=False)
    c = ops.convert_to_numpy(strict([feats, marks_nan])[1])
    assert np.isnan(c[1]).all() and np.isfinite(c[0]).all()


def test_flip_equivariance():
    """Mirroring the image and its landmarks (left/right swapped) mirrors the
    global regions: the templates are symmetric."""
    rng = np.random.default_rng(8)
    feats = rng.normal(size=(1, 8, 8, 2)).astype("float32")
    marks = random_landmarks(rng, 1, 32, jitter=0.0)
    mirrored = marks[:, (1, 0, 2, 4, 3)].copy()
    mirrored[..., 0] = 31 - mirrored[..., 0]
    arp = AlignedRegionPooling(output_size=8, image_size=32, regions=("global2", "global3", "nose"))
    out = [ops.convert_to_numpy(m) for m in arp([feats, marks])]
    out_m = [ops.convert_to_numpy(m) for m in arp([feats[:, :, ::-1], mirrored])]
    for a, b in zip(out, out_m):
        np.testing.assert_allclose(a[:, :, ::-1], b, atol=1e-4)


def test_roi_boxes_are_centred_on_the_papers_points():
    """ROI ablation: nose tip for the global boxes; left eye, nose/eye midpoint, mouth centre for the local ones."""
    rng = np.random.default_rng(9)
    marks = random_landmarks(rng, 3, 64)
    src = (marks.astype("float64") + 0.5) / 64 * 2 - 1
    arp = AlignedRegionPooling(4, 64, regions=("global2", "global3", "left_eye", "nose", "mouth"), mode="roi")
    theta = ops.convert_to_numpy(arp.region_thetas(marks))
    centres = theta[..., 2]
    np.testing.assert_allclose(centres[:, 0], src[:, 2], atol=1e-5)
    np.testing.assert_allclose(centres[:, 1], src[:, 2], atol=1e-5)
    np.testing.assert_allclose(centres[:, 2], src[:, 0], atol=1e-5)
    np.testing.assert_allclose(centres[:, 3], (src[:, 2] + (src[:, 0] + src[:, 1]) / 2) / 2, atol=1e-5)
    np.testing.assert_allclose(centres[:, 4], (src[:, 3] + src[:, 4]) / 2, atol=1e-5)
    assert np.all(theta[..., 0, 1] == 0) and np.all(theta[..., 1, 0] == 0)  # axis-aligned
    np.testing.assert_allclose(theta[0, :, 0, 0], [1 / 1.2, 1.0, 1 / 2.5, 0.5, 0.5], atol=1e-6)  # fixed sizes
    np.testing.assert_allclose(theta[:, :, :, :2], np.broadcast_to(theta[:1, :, :, :2], theta[..., :2].shape))


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="mode"):
        AlignedRegionPooling(4, 32, mode="rotate")
    with pytest.raises(ValueError, match="Unknown regions"):
        AlignedRegionPooling(4, 32, regions=("forehead",))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        AlignedRegionPooling(4, 32, regions=("x",), templates={"x": [[0, 0]] * 4})
    with pytest.raises(ValueError, match="output_size"):
        AlignedRegionPooling(0, 32)
    arp = AlignedRegionPooling(4, 32)
    with pytest.raises(ValueError, match=r"landmarks must have shape \(batch, 5, 2\)"):
        arp([np.zeros((1, 8, 8, 2), "float32"), np.zeros((1, 68, 2), "float32")])
    with pytest.raises(ValueError, match="features must have shape"):
        AlignedRegionPooling(4, 32)([np.zeros((1, 8, 8), "float32"), np.zeros((1, 5, 2), "float32")])
