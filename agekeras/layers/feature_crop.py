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
    box, is sampled with bilinear interpolation:

        u_i = x + (i + 1/2) / s * w,   v_j = y + (j + 1/2) / s * h
        p_i = u_i * W - 1/2,           q_j = v_j * H - 1/2      (pixel coords)
        crop[j, i] = sum_{r, c} k(q_j - r) k(p_i - c) F[r, c],  k(t) = max(0, 1 - |t|)

    The triangle kernel `k` gives exactly the bilinear weights of the four
    neighbours, and written this way (two small interpolation matrices and an
    einsum) the crop is differentiable with respect to the box coordinates
    as well as to the features. `keras.ops.image.affine_transform` would
    also sample bilinearly, but passes no gradient to its transform, so the
    locator could not learn.

    Readings of ambiguous points (the paper only says the region is
    "cropped" from the feature map):

    - Coordinates are relative and continuous: (0, 0) is the top-left corner
      of the top-left cell and (1, 1) the bottom-right corner of the
      bottom-right cell, the convention of `agekeras.plots.plot_image_grid`,
      so a box drawn on the image is the box cropped from the map.
    - The crop has a fixed `crop_size` (default 7, the map size at 224 px)
      whatever the box size, so the pooled local feature averages the same
      number of samples for every box (like RoIAlign).
    - Sample positions outside the map are clamped to the border cells (edge
      padding), so any box is valid; the AL locator only outputs boxes inside
      the map anyway.

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
        pix = ops.clip(rel * n_cells - 0.5, 0.0, n_cells - 1.0)
        cells = ops.arange(n_cells, dtype=dtype)
        return ops.relu(1.0 - ops.abs(pix[:, :, None] - cells[None, None, :]))

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
