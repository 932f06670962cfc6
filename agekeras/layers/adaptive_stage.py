"""Adaptive Stage of VoVNetv4: a ConvBlock whose kernel and stride bring any
input size to a set output size."""

import keras

from agekeras.layers.conv_bn_relu import ConvBNReLU, _check_image_shape, _pair


def adaptive_kernel_and_stride(input_size, output_size):
    """Kernel and stride of a "valid" convolution taking `input_size` to `output_size`.

        stride = floor(input_size / output_size),
        kernel = input_size - (output_size - 1) * stride,

    so that `floor((input_size - kernel) / stride) + 1 == output_size`
    (the rule of adaptive pooling, e.g. 56 -> 7: kernel 8, stride 8;
    15 -> 4: kernel 6, stride 3; 7 -> 7: kernel 1, stride 1).

    Args:
        input_size: int >= output_size.
        output_size: int >= 1.

    Returns:
        `(kernel, stride)` ints.
    """
    input_size, output_size = int(input_size), int(output_size)
    if output_size < 1:
        raise ValueError(f"output size must be >= 1, got {output_size}.")
    if input_size < output_size:
        raise ValueError(
            f"AdaptiveStage cannot enlarge: input size {input_size} is smaller than the output size {output_size}."
        )
    stride = input_size // output_size
    return input_size - (output_size - 1) * stride, stride


@keras.saving.register_keras_serializable(package="agekeras")
class AdaptiveStage(keras.layers.Layer):
    """Adaptive Stage of VoVNetv4: Conv + BN + ReLU to a set spatial size.

    The kernel size and the stride of the convolution are derived from the
    input's spatial size and the set `output_size` (per axis, with
    `adaptive_kernel_and_stride`), and the convolution is unpadded, so every
    ROSA region, whatever its resolution, comes out at the same
    `output_size`. VoVNetv4 then concatenates the "smoothed" regions once
    (the second single aggregation) and feeds the CORAL head:

        k = H_in - (H_out - 1) * floor(H_in / H_out),   s = floor(H_in / H_out),
        A(x) = ReLU(BN(Conv_{k x k, stride s, valid}(x))).

    Readings of what the paper leaves open:
    - The derivation rule is that of adaptive pooling (stride = floor ratio,
      kernel covers the rest), which gives exactly `output_size` for any
      input size >= `output_size`, and reduces to a 1x1 convolution when the
      sizes already match.
    - Width: `filters=None` keeps the region's own channel count (the paper
      does not say it changes the width); pass an int to set it.
    - The kernel and stride are fixed when the layer is built (static input
      size), as in any convolution; a model must be built at its image size.

    Args:
        output_size: int or (int, int), the set spatial output size.
        filters: None (keep the input channels) or int.
        kernel_initializer, bn_momentum, bn_epsilon: as for `ConvBNReLU`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` with static H, W >= `output_size`.
        training: bool, for batch normalisation.

    Returns:
        `(batch, output_size[0], output_size[1], filters or C)`.

    Example:

    >>> stage = AdaptiveStage(output_size=4)
    >>> tuple(stage(np.zeros((2, 30, 30, 8), "float32")).shape)
    (2, 4, 4, 8)
    >>> stage.kernel_size, stage.strides
    ((9, 9), (7, 7))

    Reference: Research on Phased Single Aggregation Age Estimation Algorithm Based on
    VoVNetv4 (Zhang et al., 2023; no arXiv or DOI version known); An Energy and
    GPU-Computation Efficient Backbone Network for Real-Time Object Detection
    (VoVNet, https://arxiv.org/abs/1904.09730).
    """

    def __init__(
        self,
        output_size,
        filters=None,
        kernel_initializer="he_normal",
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_size = _pair(output_size, "output_size")
        if filters is not None and int(filters) < 1:
            raise ValueError(f"`filters` must be None or a positive int, got {filters}.")
        self.filters = None if filters is None else int(filters)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.kernel_size = self.strides = None
        self.block = None

    def derive(self, input_shape):
        """`(kernel_size, strides)` pairs for an input of shape `input_shape`."""
        _check_image_shape(input_shape, type(self).__name__)
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "AdaptiveStage derives its kernel and stride from the input size, so it needs a static "
                f"(batch, height, width, channels) shape; got {tuple(input_shape)}."
            )
        pairs = [adaptive_kernel_and_stride(n, m) for n, m in zip(input_shape[1:3], self.output_size)]
        return (pairs[0][0], pairs[1][0]), (pairs[0][1], pairs[1][1])

    def build(self, input_shape):
        self.kernel_size, self.strides = self.derive(input_shape)
        self.block = ConvBNReLU(
            self.filters or int(input_shape[-1]),
            self.kernel_size,
            strides=self.strides,
            padding="valid",
            kernel_initializer=self.kernel_initializer,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype_policy,
            name="conv_block",
        )
        self.block.build(input_shape)

    def call(self, inputs, training=None):
        return self.block(inputs, training=training)

    def compute_output_shape(self, input_shape):
        self.derive(input_shape)  # validates the shape
        return (input_shape[0], *self.output_size, self.filters or input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_size": self.output_size,
                "filters": self.filters,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config
