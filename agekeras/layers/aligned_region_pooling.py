"""Aligned Region Pooling (ARP): landmark-aligned crops of a feature map."""

import keras
import numpy as np
from keras import ops

from agekeras.face_template import CANONICAL, canonical_relative

# Region templates are five-point faces in the normalised frame [-1, 1] x
# [-1, 1] of a region's output ((-1, -1) = top-left corner of the top-left
# output pixel, (1, 1) = bottom-right corner of the bottom-right one), point
# order as in `agekeras.face_template`.
#
# CANONICAL (`agekeras.face_template`, a symmetric, rounded version of the
# mean MTCNN landmarks of UTKFace's 200 x 200 crops) is the frame of
# "global3"; "global2" is the inner face, a window 1.2x smaller ("one 1.2x
# larger" in our reading of the paper: global3 is the 1.2x larger window of the two); the
# local windows are centred on a point of CANONICAL and are 1/zoom as wide as
# the global3 window (zoom 2.5 for the eye, 2 for the nose and the mouth).


def _local(centre, zoom):
    return (CANONICAL - np.asarray(centre, "float64")) * zoom


REGION_TEMPLATES = {
    "global1": None,  # the whole feature map (identity warp, landmarks unused)
    "global2": CANONICAL * 1.2,
    "global3": CANONICAL,
    "left_eye": _local(CANONICAL[0], 2.5),
    "nose": _local(CANONICAL[2], 2.0),
    "mouth": _local(CANONICAL[3:5].mean(0), 2.0),
}
DEFAULT_REGIONS = ("global1", "global2", "global3", "left_eye", "nose", "mouth")

# The "ROI pooling" ablation of the paper (Sec. 4.3): axis-aligned boxes centred
# on a landmark-defined point, as weights over the five landmarks: the nose tip
# for the global regions; the left-eye centre, the point midway between the nose
# tip and the midpoint of the eyes, and the mouth centre for the local ones.
ROI_CENTRES = {
    "global2": (0.0, 0.0, 1.0, 0.0, 0.0),
    "global3": (0.0, 0.0, 1.0, 0.0, 0.0),
    "left_eye": (1.0, 0.0, 0.0, 0.0, 0.0),
    "nose": (0.25, 0.25, 0.5, 0.0, 0.0),
    "mouth": (0.0, 0.0, 0.0, 0.5, 0.5),
}


def _box_scale(target):
    """Per-axis scale of the least-squares box map from `target` onto `CANONICAL`."""
    tc = target - target.mean(0)
    sc = CANONICAL - CANONICAL.mean(0)
    return (tc * sc).sum(0) / (tc * tc).sum(0)


def roi_box(region, target):
    """`(weights (5,), offset (2,), half-size (2,))` of the ROI box of a region.

    The box is centred on `weights @ landmarks + offset` (normalised frame)
    and has the size the region's template gives on the canonical face (so
    the box of "global3" is the whole canonical face). Regions of
    `ROI_CENTRES` use the paper's centres; any other template is centred
    where the template's centre falls on the canonical face, relative to the
    mean of the five landmarks.
    """
    scale = _box_scale(np.asarray(target, "float64"))
    if region in ROI_CENTRES:
        return np.asarray(ROI_CENTRES[region], "float64"), np.zeros(2), scale
    weights = np.full(5, 0.2)
    return weights, -scale * np.asarray(target, "float64").mean(0), scale


def canonical_landmarks(image_size):
    """`CANONICAL` in pixels of an `image_size` x `image_size` image.

    The inverse of `normalize_points` (pixel centres at integers): the five
    points of an average face that fills the image, e.g. to feed a model
    when no detector is at hand.

    Args:
        image_size: int, the image side in pixels.

    Returns:
        `(5, 2)` float64 array of pixel (x, y).

    Example:

    >>> canonical_landmarks(64)[2].tolist()  # the nose tip
    [31.5, 32.78]
    """
    return canonical_relative() * float(image_size) - 0.5


def normalize_points(points, image_size):
    """Pixel (x, y) (pixel centres at integers) -> the [-1, 1] image frame.

    `x_n = (x + 0.5) / W * 2 - 1`, the "align_corners=False" convention: -1 and
    1 are the outer edges of the image, so a feature map of any stride that
    covers the image shares the frame.
    """
    height, width = image_size
    scale = ops.convert_to_tensor([2.0 / width, 2.0 / height], dtype=points.dtype)
    return (points + 0.5) * scale - 1.0


def fit_affine(target, source):
    """Least-squares affine map sending `target` points onto `source` points.

    Eq. 1 of the DHAA paper, in closed form: with `X = [T, 1]` (n x 3),
    `theta^T = (X^T X)^-1 X^T S` minimises `sum_i ||theta [t_i; 1] - s_i||^2`.

    Args:
        target: `(n, 2)` or `(batch, n, 2)` points (n >= 3, not collinear).
        source: `(batch, n, 2)` points.

    Returns:
        `(batch, 2, 3)` matrices `theta` with `source ~ theta @ [target; 1]`.
    """
    source = ops.convert_to_tensor(source)
    target = ops.cast(ops.convert_to_tensor(target), source.dtype)
    if len(target.shape) == 2:
        target = ops.broadcast_to(target[None], ops.shape(source))
    ones = ops.ones_like(target[..., :1])
    x = ops.concatenate([target, ones], axis=-1)  # (B, n, 3)
    # Normal equations with einsum: keras.ops.matmul on PyTorch returns float32 for float64.
    theta_t = ops.linalg.solve(ops.einsum("bni,bnj->bij", x, x), ops.einsum("bni,bnj->bij", x, source))  # (B, 3, 2)
    return ops.transpose(theta_t, (0, 2, 1))


def fit_box(target, source):
    """Least-squares axis-aligned box map (scale and shift per axis, no
    rotation or shear) sending `target` onto `source`: the "ROI pooling"
    ablation. Closed form per axis: `a = cov(t, s) / var(t)`,
    `b = mean(s) - a mean(t)`.

    Args and Returns: as `fit_affine`.
    """
    source = ops.convert_to_tensor(source)
    target = ops.cast(ops.convert_to_tensor(target), source.dtype)
    if len(target.shape) == 2:
        target = ops.broadcast_to(target[None], ops.shape(source))
    # Means as sum / n: keras.ops.mean on JAX reduces float64 in float32.
    n = ops.cast(ops.shape(source)[1], source.dtype)
    t_mean = ops.sum(target, axis=1) / n  # (B, 2)
    s_mean = ops.sum(source, axis=1) / n
    tc = target - t_mean[:, None]
    sc = source - s_mean[:, None]
    a = ops.sum(tc * sc, axis=1) / ops.sum(tc * tc, axis=1)  # (B, 2)
    b = s_mean - a * t_mean
    zero = ops.zeros_like(a[:, :1])
    row_x = ops.concatenate([a[:, :1], zero, b[:, :1]], axis=-1)
    row_y = ops.concatenate([zero, a[:, 1:], b[:, 1:]], axis=-1)
    return ops.stack([row_x, row_y], axis=1)


def affine_grid(theta, output_size):
    """Source coordinates (normalised) of every output pixel.

    Args:
        theta: `(batch, R, 2, 3)` affine matrices.
        output_size: `(Ho, Wo)`.

    Returns:
        `(batch, R, Ho, Wo, 2)` normalised (x, y) source coordinates of the
        output pixel centres `u_j = (j + 0.5) / Wo * 2 - 1`.
    """
    ho, wo = output_size
    u = (np.arange(wo) + 0.5) / wo * 2 - 1
    v = (np.arange(ho) + 0.5) / ho * 2 - 1
    uu, vv = np.meshgrid(u, v)
    base = np.stack([uu, vv, np.ones_like(uu)], axis=-1).reshape(-1, 3)  # (Ho*Wo, 3)
    base = ops.convert_to_tensor(base.astype("float32"), dtype=theta.dtype)
    grid = ops.einsum("pk,brdk->brpd", base, theta)
    batch, regions = ops.shape(theta)[0], ops.shape(theta)[1]
    return ops.reshape(grid, (batch, regions, ho, wo, 2))


def bilinear_sample(features, grid):
    """Bilinear sampling of `features` at normalised `grid` points; zero outside.

    Args:
        features: `(batch, H, W, C)`.
        grid: `(batch, R, Ho, Wo, 2)` normalised (x, y) coordinates.

    Returns:
        `(batch, R, Ho, Wo, C)`.
    """
    shape = ops.shape(features)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    gshape = ops.shape(grid)
    regions, ho, wo = gshape[1], gshape[2], gshape[3]
    x = (grid[..., 0] + 1.0) * (ops.cast(width, grid.dtype) / 2.0) - 0.5
    y = (grid[..., 1] + 1.0) * (ops.cast(height, grid.dtype) / 2.0) - 0.5
    x0, y0 = ops.floor(x), ops.floor(y)
    wx1, wy1 = x - x0, y - y0
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    flat = ops.reshape(features, (-1, channels))  # (B*H*W, C)
    offset = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (-1, 1, 1, 1))
    out = 0.0
    for dy, wy in ((0, wy0), (1, wy1)):
        for dx, wx in ((0, wx0), (1, wx1)):
            xi, yi = x0 + dx, y0 + dy
            valid = ops.logical_and(
                ops.logical_and(ops.greater_equal(xi, 0), ops.less(xi, width)),
                ops.logical_and(ops.greater_equal(yi, 0), ops.less(yi, height)),
            )
            index = ops.clip(yi, 0, height - 1) * width + ops.clip(xi, 0, width - 1) + offset
            values = ops.take(flat, ops.reshape(index, (-1,)), axis=0)
            values = ops.reshape(values, (batch, regions, ho, wo, channels))
            weight = wx * wy * ops.cast(valid, wx.dtype)
            out = out + values * ops.cast(weight, values.dtype)[..., None]
    return out


@keras.saving.register_keras_serializable(package="agekeras")
class AlignedRegionPooling(keras.layers.Layer):
    """Aligned Region Pooling of the DHAA paper (Tan et al., IJCAI 2019, Eq. 1).

    For each image and each region r, the affine map theta_r that sends the
    region's target key points T_r (a fixed 5-point template in the region's
    output frame) onto the image's source key points S (its 5 landmarks) in
    the least-squares sense is computed in closed form (Eq. 1,
    `fit_affine`); the feature map is then sampled bilinearly at
    `theta_r [u, v, 1]^T` for every output pixel (u, v), as a spatial
    transformer does. All coordinates are normalised to [-1, 1]
    (align_corners=False: -1 and 1 are the outer edges of the image and of
    the output; see `normalize_points`).

    Readings of the paper (each also stated in notebook 04):

    * Regions (`regions`, templates in `REGION_TEMPLATES`): "global1" is the
      whole map (identity warp), "global2" the inner face aligned on the
      five points, "global3" a 1.2x larger aligned window, and three local
      windows centred on the (image-)left eye (40 % of the global3 width),
      the nose tip and the mouth centre (50 %). Every aligned region is
      fitted on all five points; only its template differs. The templates
      are ours (the paper does not print them): a symmetric rounding of the
      mean MTCNN landmarks of 7,811 UTKFace faces.
    * Gradients flow to the feature map only: the landmarks pass through
      `stop_gradient`, as in the paper, where they come from a detector.
    * Samples outside the feature map are zero (zero padding).
    * Why a second bilinear sampler beside `FeatureCrop`'s: FeatureCrop
      samples an axis-aligned box and must pass gradient to the box the AL
      locator learns, while ARP samples a general affine grid (rotation,
      shear) from detector landmarks and passes gradient to the features only.
    * `mode="roi"` is the "ROI pooling" ablation as the paper describes it
      (Sec. 4.3): axis-aligned boxes centred on the nose tip for the global
      regions and on the left-eye centre, the point midway between the nose
      tip and the eye midpoint, and the mouth centre for the local ones
      (`ROI_CENTRES`). The box size is ours (the paper gives none): the size
      of the region on the canonical face, fixed, since the input faces are
      aligned in advance. Then the same bilinear sampling (RoIAlign-like),
      so faces are neither de-rotated nor rescaled.
    * Faces without landmarks (any non-finite coordinate) use the canonical
      landmarks (`CANONICAL` in the image frame) when `fill_missing`, i.e. the
      face is assumed to fill the image like an average UTKFace crop.

    Args:
        output_size: int or `(Ho, Wo)`, the pooled size (56 x 56 at 256 px
            input in the paper; proportionally smaller for smaller inputs).
        image_size: int or `(H, W)`, the size of the image the landmarks are
            given in (pixels); the feature map may have any stride.
        regions: names of `REGION_TEMPLATES` (or of `templates`), in order.
        templates: optional dict name -> 5 x 2 nested list, extra templates.
        mode: "affine" (ARP) or "roi" (axis-aligned box, the ablation).
        fill_missing: replace non-finite landmarks by the canonical ones.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: a list `[features, landmarks]`: `features` of shape
            `(batch, h, w, C)`, `landmarks` of shape `(batch, 5, 2)` in image
            pixels (x, y), pixel centres at integer coordinates.

    Returns:
        A list of `len(regions)` tensors of shape `(batch, Ho, Wo, C)`.

    Example:

    >>> arp = AlignedRegionPooling(output_size=14, image_size=64)
    >>> eyes_nose_mouth = [[22, 26], [42, 26], [32, 36], [24, 46], [40, 46]]  # (x, y) px
    >>> landmarks = np.tile(eyes_nose_mouth, (2, 1, 1)).astype("float32")
    >>> maps = arp([np.zeros((2, 16, 16, 64), "float32"), landmarks])
    >>> len(maps), tuple(maps[0].shape)
    (6, (2, 14, 14, 64))

    Reference: Deeply-learned Hybrid Representations for Facial Age
    Estimation (IJCAI 2019, https://doi.org/10.24963/ijcai.2019/492).
    """

    def __init__(
        self,
        output_size,
        image_size,
        regions=DEFAULT_REGIONS,
        templates=None,
        mode="affine",
        fill_missing=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_size = _pair(output_size, "output_size")
        self.image_size = _pair(image_size, "image_size")
        if mode not in ("affine", "roi"):
            raise ValueError(f"mode must be 'affine' or 'roi'; got {mode!r}.")
        self.mode = mode
        self.fill_missing = bool(fill_missing)
        self.templates = None
        known = dict(REGION_TEMPLATES)
        if templates:
            self.templates = {}
            for name, points in templates.items():
                points = np.asarray(points, dtype="float64")
                if points.shape != (5, 2):
                    raise ValueError(f"template {name!r} must have shape (5, 2); got {points.shape}.")
                self.templates[str(name)] = points.tolist()
                known[str(name)] = points
        self.regions = tuple(str(r) for r in regions)
        if not self.regions:
            raise ValueError("`regions` is empty.")
        unknown = [r for r in self.regions if r not in known]
        if unknown:
            raise ValueError(f"Unknown regions {unknown}; choose from {sorted(known)} or pass `templates`.")
        self._targets = [known[r] for r in self.regions]

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("AlignedRegionPooling expects [features (B, h, w, C), landmarks (B, 5, 2)].")
        feat, marks = input_shape
        if len(feat) != 4:
            raise ValueError(f"features must have shape (batch, h, w, C); got {tuple(feat)}.")
        if tuple(marks[1:]) != (5, 2):
            raise ValueError(f"landmarks must have shape (batch, 5, 2); got {tuple(marks)}.")

    def region_thetas(self, landmarks):
        """`(batch, R, 2, 3)` affine maps (output frame -> image frame)."""
        points = ops.stop_gradient(ops.cast(landmarks, "float32"))
        points = normalize_points(points, self.image_size)
        if self.fill_missing:
            ok = ops.all(ops.isfinite(points), axis=(1, 2), keepdims=True)
            canonical = ops.broadcast_to(ops.convert_to_tensor(CANONICAL.astype("float32")), ops.shape(points))
            points = ops.where(ok, points, canonical)
        identity = ops.convert_to_tensor(np.array([[1, 0, 0], [0, 1, 0]], "float32"))
        thetas = []
        for region, target in zip(self.regions, self._targets):
            if target is None:
                thetas.append(ops.broadcast_to(identity[None], (ops.shape(points)[0], 2, 3)))
            elif self.mode == "affine":
                thetas.append(fit_affine(target.astype("float32"), points))
            else:
                thetas.append(self._roi_theta(region, target, points))
        return ops.stack(thetas, axis=1)

    def _roi_theta(self, region, target, points):
        weights, offset, scale = roi_box(region, target)
        centre = ops.einsum("k,bkd->bd", ops.convert_to_tensor(weights.astype("float32")), points)
        centre = centre + ops.convert_to_tensor(offset.astype("float32"))
        zero = ops.zeros_like(centre[:, :1])
        sx = zero + float(scale[0])
        sy = zero + float(scale[1])
        row_x = ops.concatenate([sx, zero, centre[:, :1]], axis=-1)
        row_y = ops.concatenate([zero, sy, centre[:, 1:]], axis=-1)
        return ops.stack([row_x, row_y], axis=1)

    def call(self, inputs):
        features, landmarks = inputs
        theta = self.region_thetas(landmarks)
        grid = affine_grid(theta, self.output_size)
        pooled = bilinear_sample(features, ops.cast(grid, "float32"))
        pooled = ops.cast(pooled, features.dtype)
        return [pooled[:, i] for i in range(len(self.regions))]

    def compute_output_shape(self, input_shape):
        feat = input_shape[0]
        return [(feat[0], *self.output_size, feat[-1]) for _ in self.regions]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_size": self.output_size,
                "image_size": self.image_size,
                "regions": self.regions,
                "templates": self.templates,
                "mode": self.mode,
                "fill_missing": self.fill_missing,
            }
        )
        return config


def _pair(value, name):
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width); got {value!r}.")
    return value
