"""FeatureCrop: bilinear crop of a box out of a feature map, differentiable in the box."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class FeatureCrop(keras.layers.Layer):
    """Crops a box out of a feature map with bilinear sampling.

    The "feature cropping" step of the AL-ResNets / AL-RoR paper (Zhang et
    al., "Fine-Grained Age Estimation in the Wild with Attention LSTM
    Networks", Sec. III-C and Fig. 3): the attention LSTM gives an
    age-sensitive box l = (x, y, w, h) (Eq. 4) and the box is cropped out of
    the last feature map (512 x 7 x 7 at 224 px); the crop is then average
    pooled into the 512-d local feature (done by the model, not here).

    An `s x s` grid of points, the centres of an `s x s` partition of the
    box, is sampled with bilinear interpolation (as RoIAlign does, one
    sample per bin):

        u_i = x + (i + 1/2) / s * w,   v_j = y + (j + 1/2) / s * h
        p_i = u_i * W - 1/2,           q_j = v_j * H - 1/2      (pixel coords)
        r = floor(q_j), c = floor(p_i), dy = q_j - r, dx = p_i - c
        crop[j, i] = (1-dy)(1-dx) F[r, c] + (1-dy) dx F[r, c+1]
                     + dy (1-dx) F[r+1, c] + dy dx F[r+1, c+1]

    The floor is constant between integers and the fractions dx, dy carry
    the gradient, so the crop is differentiable in the box everywhere, also
    when a sample lands exactly on a cell centre (the full box on a 7 x 7
    map with `s = 7`), where a triangle kernel max(0, 1 - |t|) has a zero
    (sub)gradient. Written as two small interpolation matrices and an
    einsum, it is differentiable with respect to the features too.
    `keras.ops.image.affine_transform` would also sample bilinearly, but
    passes no gradient to its transform, so the locator could not learn.

    Readings of ambiguous points (the paper only says the region is
    "cropped" from the feature map):

    - Coordinates are relative and continuous: (0, 0) is the top-left corner
      of the top-left cell and (1, 1) the bottom-right corner of the
      bottom-right cell, the convention of `agekeras.plots.plot_image_grid`,
      so a box drawn on the image is the box cropped from the map.
    - The crop has a fixed `crop_size` (default 7, the map size at 224 px)
      whatever the box size, so the pooled local feature averages the same
      number of samples for every box (like RoIAlign).
    - Zero padding: the map is 0 outside its cells, so a sample in the
      outer half-cell of the map, or beyond it, blends towards 0. Any box is
      valid, and a box touching or crossing the border still gets a gradient
      (clamping positions to the border cells, edge padding, gives none
      there: on a 2 x 2 map that is half of every box side).

    `AlignedRegionPooling` (DHAA) has its own sampler because it samples
    rotated grids (a similarity warp fitted to landmarks); this one samples
    an axis-aligned box, which needs only two 1-D interpolation matrices.

    Args:
        crop_size: int `s`, or `(s_h, s_w)`, the size of the sampled grid.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: a list `[features, boxes]`: features `(batch, H, W, C)` and
            boxes `(batch, 4)` as relative `(x, y, w, h)`, `(x, y)` the
            top-left corner.

    Returns:
        The crops, `(batch, s_h, s_w, C)`.

    Example:

    >>> crop = FeatureCrop(crop_size=3)
    >>> out = crop([np.zeros((2, 7, 7, 512), "float32"), np.array([[0.2, 0.2, 0.5, 0.5]] * 2, "float32")])
    >>> tuple(out.shape)
    (2, 3, 3, 512)

    Reference: Fine-Grained Age Estimation in the Wild with Attention LSTM
    Networks (https://arxiv.org/abs/1805.10445).
    """

    def __init__(self, crop_size=7, **kwargs):
        super().__init__(**kwargs)
        size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise ValueError(f"`crop_size` must be a positive int or a pair of them, got {crop_size!r}.")
        self.crop_size = tuple(int(s) for s in size)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("FeatureCrop expects a list [features (batch, H, W, C), boxes (batch, 4)].")
        fshape, bshape = input_shape
        if len(fshape) != 4:
            raise ValueError(f"FeatureCrop features must have shape (batch, H, W, C), got {tuple(fshape)}.")
        if len(bshape) != 2 or bshape[-1] != 4:
            raise ValueError(f"FeatureCrop boxes must have shape (batch, 4) as (x, y, w, h), got {tuple(bshape)}.")
        if fshape[1] is None or fshape[2] is None:
            raise ValueError(f"FeatureCrop needs a known feature-map size, got {tuple(fshape)}.")

    @staticmethod
    def _weights(start, length, n_samples, n_cells, dtype):
        """Interpolation matrix `(batch, n_samples, n_cells)` along one axis."""
        steps = (ops.arange(n_samples, dtype=dtype) + 0.5) / n_samples  # (s,)
        rel = start[:, None] + steps[None, :] * length[:, None]  # (B, s)
        pix = rel * n_cells - 0.5
        low = ops.floor(ops.stop_gradient(pix))
        frac = pix - low  # in [0, 1); carries the gradient
        cells = ops.arange(n_cells, dtype=dtype)[None, None, :]
        # Cells outside 0..n-1 match no column: zero padding.
        at_low = ops.cast(ops.equal(cells, low[:, :, None]), dtype)
        at_high = ops.cast(ops.equal(cells, low[:, :, None] + 1.0), dtype)
        return (1.0 - frac)[:, :, None] * at_low + frac[:, :, None] * at_high

    def call(self, inputs):
        features, boxes = inputs
        dtype = features.dtype
        boxes = ops.cast(boxes, dtype)
        height, width = features.shape[1], features.shape[2]
        s_h, s_w = self.crop_size
        wy = self._weights(boxes[:, 1], boxes[:, 3], s_h, height, dtype)  # (B, s_h, H)
        wx = self._weights(boxes[:, 0], boxes[:, 2], s_w, width, dtype)  # (B, s_w, W)
        return ops.einsum("bih,bhwc,bjw->bijc", wy, features, wx)

    def compute_output_shape(self, input_shape):
        fshape = input_shape[0]
        return (fshape[0], *self.crop_size, fshape[-1])

    def get_config(self):
        config = super().get_config()
        config["crop_size"] = list(self.crop_size)
        return config
