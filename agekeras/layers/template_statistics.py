"""Style statistics of template faces (the DAA paper's template variants)."""

import keras

from agekeras.layers.delta_age_adain import instance_statistics

MODES = ("channel", "all")


@keras.saving.register_keras_serializable(package="agekeras")
class TemplateStatistics(keras.layers.Layer):
    """Style std s_y and mean t_y of one template face per comparison age.

    Before the binary code mapping, the DAA paper takes the style of age y
    from a real face of age y (a "template"): its encoder feature's mean and
    standard deviation replace the learned (s_y, t_y) in Eq. 7.

    - `mode="channel"`: single-channel variant (Eq. 3), one mean and std per
      channel of the template feature, like AdaIN: s, t `(n, C)`.
    - `mode="all"`: multi-channel variant (Eq. 5), one mean and std over all
      channels and positions: s, t `(n,)`. (The authors' released code has
      only this one, `calc_mean_std2`, for its "image_template" type.)

    Both use `instance_statistics` (biased variance, epsilon inside the
    square root). The template features come from the same FaceEncoder as
    the input face, so the statistics move with the encoder during training
    (gradients flow through them, as in the authors' code).

    Args:
        mode: "channel" or "all".
        epsilon: added to the variance.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: template features `(n, h, w, C)`, one template per age.

    Returns:
        `(s, t)`: `(n, C)` each ("channel") or `(n,)` each ("all").

    Example:

    >>> s, t = TemplateStatistics("all")(np.random.rand(100, 8, 8, 512).astype("float32"))
    >>> tuple(s.shape)
    (100,)

    Reference: DAA: A Delta Age AdaIN operation for age estimation via binary code
    transformer (Chen et al., CVPR 2023), https://arxiv.org/abs/2303.07929.
    """

    def __init__(self, mode="all", epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        self.mode = mode
        self.epsilon = float(epsilon)

    def call(self, inputs):
        mean, std = instance_statistics(inputs, self.epsilon, channelwise=self.mode == "channel")
        if self.mode == "channel":
            return std[:, 0, 0, :], mean[:, 0, 0, :]
        return std[:, 0, 0, 0], mean[:, 0, 0, 0]

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"template features must be (n, h, w, C), got shape {tuple(input_shape)}.")
        shape = (input_shape[0], input_shape[-1]) if self.mode == "channel" else (input_shape[0],)
        return shape, shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "epsilon": self.epsilon})
        return config
