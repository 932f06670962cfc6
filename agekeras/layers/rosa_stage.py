"""Regional One-Shot Aggregation (ROSA): VoVNetv4's four regions of OSA modules."""

import keras

from agekeras.layers.conv_bn_relu import ConvBNReLU, _check_image_shape
from agekeras.layers.osa_module import OSAModule


@keras.saving.register_keras_serializable(package="agekeras")
class ROSAStage(keras.layers.Layer):
    """Regional One-Shot Aggregation stage of VoVNetv4 (the "ROSA" section).

    Four regions run one after the other. Region r is an OSA module of
    `num_convs` (5) identical ConvBlocks run for `cycles[r]` cycles
    (default 1, 1, 4, 3: VoVNet-57's blocks per stage). Between two regions
    sit a 1x1 ConvBlock (stride 1) and a 3x3 max-pool of stride 2:

        R_1 = OSA_1^{c_1}(x),
        R_r = OSA_r^{c_r}(MaxPool_3x3/2(ConvBlock_1x1(R_{r-1})))   (r = 2..4),

    where OSA^c means c OSA cycles in sequence (the first maps the region's
    input width to `output_filters[r]`, the others keep it). The layer
    returns every region's output R_1..R_4 (the "ROSA regions"), which
    VoVNetv4 aggregates a second time, once, after its Adaptive Stages.

    Readings of what the paper leaves open (each chosen here, and why):
    - A "cycle" repeats a **whole OSA module** (5 ConvBlocks + the 1x1
      aggregation), as VoVNet-57 repeats its OSA blocks, with its own
      weights. `share_weights=True` instead reuses one module for cycles
      2..c of a region (the first cycle cannot be shared: it changes the
      width), the other plausible reading of "run for c cycles".
    - The region output is taken after the region's last cycle, before the
      1x1 ConvBlock and the max-pool that lead to the next region.
    - The 1x1 ConvBlock between regions keeps the region's width
      (`transition_filters=None`); the paper gives its stride (1), not its
      width. Pass a tuple of 3 widths to change it.
    - Max-pooling uses "same" padding (output = ceil(input / 2)), like the
      VoVNet reference's `ceil_mode=True`.

    Args:
        stage_filters: 4 ints, ConvBlock width of each region's OSA module.
        output_filters: 4 ints, output width of each region.
        cycles: 4 ints >= 1, OSA cycles per region (default (1, 1, 4, 3)).
        num_convs: ConvBlocks per OSA module (5).
        transition_filters: None (keep the region width) or 3 ints, widths
            of the 1x1 ConvBlocks between regions.
        share_weights: reuse one OSA module for cycles 2..c of a region.
        kernel_initializer, bn_momentum, bn_epsilon: as for `ConvBNReLU`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)`, usually the output of the stem.
        training: bool, for batch normalisation.

    Returns:
        A list of `len(cycles)` region outputs; region r has shape
        `(batch, ceil(H / 2^r), ceil(W / 2^r), output_filters[r])` (r from 0).

    Example:

    >>> rosa = ROSAStage(stage_filters=(8, 8, 8, 8), output_filters=(8, 16, 24, 32))
    >>> [tuple(r.shape) for r in rosa(np.zeros((2, 16, 16, 4), "float32"))]
    [(2, 16, 16, 8), (2, 8, 8, 16), (2, 4, 4, 24), (2, 2, 2, 32)]
    >>> rosa.schedule  # OSA module applied at each cycle of each region
    [[0], [1], [2, 3, 4, 5], [6, 7, 8]]

    Reference: Research on Phased Single Aggregation Age Estimation Algorithm Based on
    VoVNetv4 (Zhang et al., 2023; no arXiv or DOI version known); An Energy and
    GPU-Computation Efficient Backbone Network for Real-Time Object Detection
    (VoVNet, https://arxiv.org/abs/1904.09730).
    """

    def __init__(
        self,
        stage_filters=(128, 160, 192, 224),
        output_filters=(256, 512, 768, 1024),
        cycles=(1, 1, 4, 3),
        num_convs=5,
        transition_filters=None,
        share_weights=False,
        kernel_initializer="he_normal",
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.stage_filters = [int(v) for v in stage_filters]
        self.output_filters = [int(v) for v in output_filters]
        self.cycles = [int(v) for v in cycles]
        n = len(self.cycles)
        if n < 1 or len(self.stage_filters) != n or len(self.output_filters) != n:
            raise ValueError(
                "`stage_filters`, `output_filters` and `cycles` must have one entry per region; got "
                f"{len(self.stage_filters)}, {len(self.output_filters)} and {n}."
            )
        if min(self.cycles) < 1:
            raise ValueError(f"every region needs at least one cycle; got cycles={self.cycles}.")
        if transition_filters is None:
            self.transition_filters = None
            widths = self.output_filters[:-1]
        else:
            self.transition_filters = [int(v) for v in transition_filters]
            if len(self.transition_filters) != n - 1:
                raise ValueError(
                    f"`transition_filters` needs {n - 1} widths (one between two regions); "
                    f"got {self.transition_filters}."
                )
            widths = self.transition_filters
        self.num_convs = int(num_convs)
        self.share_weights = bool(share_weights)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        common = dict(
            kernel_initializer=self.kernel_initializer,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype_policy,
        )
        # Distinct OSA modules, and `schedule[r]`: which module runs at each cycle of region r.
        self.osa_modules = []
        self.schedule = []
        for r in range(n):
            order = []
            for c in range(self.cycles[r]):
                if self.share_weights and c >= 2:
                    order.append(order[1])  # cycles 2..c reuse the region's second module
                    continue
                order.append(len(self.osa_modules))
                self.osa_modules.append(
                    OSAModule(
                        self.stage_filters[r],
                        self.output_filters[r],
                        num_convs=self.num_convs,
                        name=f"region{r + 1}_osa{c + 1}",
                        **common,
                    )
                )
            self.schedule.append(order)
        self.transitions = [ConvBNReLU(w, 1, name=f"transition{r + 1}", **common) for r, w in enumerate(widths)]
        self.pool = keras.layers.MaxPooling2D(3, strides=2, padding="same", dtype=self.dtype_policy, name="pool")

    def build(self, input_shape):
        _check_image_shape(input_shape, type(self).__name__)
        shape = tuple(input_shape)
        for r, order in enumerate(self.schedule):
            if r > 0:
                transition = self.transitions[r - 1]
                transition.build(shape)
                shape = self.pool.compute_output_shape(transition.compute_output_shape(shape))
            for i in order:
                module = self.osa_modules[i]
                if not module.built:
                    module.build(shape)
                shape = module.compute_output_shape(shape)

    def call(self, inputs, training=None):
        regions = []
        x = inputs
        for r, order in enumerate(self.schedule):
            if r > 0:
                x = self.pool(self.transitions[r - 1](x, training=training))
            for i in order:
                x = self.osa_modules[i](x, training=training)
            regions.append(x)
        return regions

    def compute_output_shape(self, input_shape):
        shapes = []
        shape = tuple(input_shape)
        for r in range(len(self.schedule)):
            if r > 0:
                shape = self.pool.compute_output_shape(shape[:-1] + (self.transitions[r - 1].filters,))
            shape = shape[:-1] + (self.output_filters[r],)
            shapes.append(shape)
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stage_filters": self.stage_filters,
                "output_filters": self.output_filters,
                "cycles": self.cycles,
                "num_convs": self.num_convs,
                "transition_filters": self.transition_filters,
                "share_weights": self.share_weights,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config
