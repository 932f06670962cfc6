"""AttentionLSTMLocator: an LSTM that locates an age-sensitive box, carrying its state across images."""

import math

import keras
from keras import ops

INFERENCE_MODES = ("sequence", "independent")
SOFTCLIP_SHARPNESS = 4.0
LOCATION_INIT_STDDEV = 0.01


@keras.saving.register_keras_serializable(package="agekeras")
class AttentionLSTMLocator(keras.layers.Layer):
    """Attention LSTM of the AL-ResNets / AL-RoR paper (Fig. 4, Eqs. 3-4).

    Zhang et al., "Fine-Grained Age Estimation in the Wild with Attention
    LSTM Networks": the pooled global feature of an image (512-d) is the
    input of an LSTM cell with 128-d cell and hidden states (Eq. 3, the
    standard LSTM; `keras.layers.LSTMCell`). The concatenated state
    S = [C, h] (256-d) goes through a "convolution" (a dense map, the input
    is 1 x 1) and a sigmoid, giving the location l = (x, y, w, h) in [0, 1]
    of an age-sensitive region (Eq. 4). The paper's point is that the LSTM
    state is not reset between images: the locator draws on what it saw in
    other faces.

    Readings of ambiguous points, and why:

    - **State across images.** During training a batch is one sequence, in
      its (shuffled) order: image t starts from the state image t-1 left.
      With `carry_state=True` the state at the end of a training batch is
      stored in two non-trainable variables (`memory_h`, `memory_c`, updated
      like BatchNorm's moving statistics, without gradient: truncated
      back-propagation at batch boundaries) and the next batch starts from
      it, so the whole shuffled epoch is one sequence. With
      `carry_state=False` every batch starts from zeros. At inference the
      stored state is read but never changed, so predictions are
      reproducible, and `inference_mode` chooses:
      `"independent"` (default): every image gets one LSTM step from the
      stored state (the state learned at the end of training), so its box
      does not depend on the other test images, their order or the batch
      size; `"sequence"`: the batch is a sequence in the order given,
      starting from the stored state, as in training. "independent" is the
      default because test sets often come in a meaningful order (UTKFace
      file names start with the age, so a sorted test split is sorted by
      age) and a sequence would then pass information about the neighbours'
      ages to each image.
    - **Box parameterisation.** Eq. 4 gives four sigmoid outputs read as
      (x, y, w, h). Read literally (corner x = a (1 - w), sides from
      `min_size` to 1) the gradient of the position vanishes as w -> 1, the
      sigmoids saturate, and boxes stick at full width or at the smallest
      height. Our reading keeps a gradient across the whole range: the
      location layer's four outputs z give the box centre and log-size,

          cx = sigmoid(z_1),  cy = sigmoid(z_2)
          w = exp(softclip(z_3)),  h = exp(softclip(z_4))

      where softclip(z) = lo + (softplus(k (z - lo)) - softplus(k (z - 0))) / k,
      lo = log(min_size), k = 4: about z inside [lo, 0] (gradient ~1) and
      smoothly bounded outside, so min_size <= w, h <= 1. The location bias
      starts at (0, 0, log 0.5, log 0.5) and its kernel near zero (normal,
      stddev 0.01; a saturated LSTM state times a Glorot kernel would start
      boxes anywhere, often at a border), as a spatial transformer starts
      from the identity: every box starts as a centred box of about half
      the map's side. The centre does not depend on the size, so a box can
      move whatever its size. The region is the part of the box inside the
      map (the box clipped to [0, 1]^2; an edge beyond the border stops
      there while the other edges keep their gradient): outside the map
      there are no features to crop, and a box drawn on a face shows the
      region used. Sides of the region are at least min_size / 2.
    - **Bounded state.** The cell state C carried across a whole epoch is
      not bounded (h = o tanh(C) is); fed raw to the location layer, a large
      carried C would swamp the per-image part of S and give every face the
      same box. The location layer therefore reads S = [tanh(C), h], both in
      [-1, 1].
    - The LSTM input is the pooled global feature only (the paper's Fig. 4);
      the location network is one dense layer on S (cell state first, as
      the paper builds S = [C, h]).

    Args:
        units: LSTM cell/hidden size (128 in the paper).
        min_size: smallest relative box side, in (0, 1).
        carry_state: keep the state from one training batch to the next.
        inference_mode: "sequence" or "independent" (see above).
        **kwargs: base `Layer` arguments (use `dtype="float32"` under mixed
            precision).

    Call arguments:
        inputs: pooled features `(batch, d)`.
        training: in training mode the stored state is updated (with
            `carry_state`).

    Returns:
        Boxes `(batch, 4)` as relative `(x, y, w, h)`, `(x, y)` the top-left
        corner, inside `[0, 1]^2`, sides at least `min_size / 2`.

    Example:

    >>> locator = AttentionLSTMLocator(units=128)
    >>> boxes = locator(np.random.rand(4, 512).astype("float32"))
    >>> tuple(boxes.shape)
    (4, 4)

    Reference: Fine-Grained Age Estimation in the Wild with Attention LSTM
    Networks (https://arxiv.org/abs/1805.10445).
    """

    def __init__(self, units=128, min_size=0.1, carry_state=True, inference_mode="independent", **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"`units` must be >= 1, got {units}.")
        if not 0.0 < float(min_size) < 1.0:
            raise ValueError(f"`min_size` must be in (0, 1), got {min_size}.")
        if inference_mode not in INFERENCE_MODES:
            raise ValueError(f"`inference_mode` must be one of {INFERENCE_MODES}, got {inference_mode!r}.")
        self.units = int(units)
        self.min_size = float(min_size)
        self.carry_state = bool(carry_state)
        self.inference_mode = inference_mode
        self.cell = keras.layers.LSTMCell(self.units, dtype=self.dtype_policy, name="lstm_cell")
        half = math.log(0.5)
        self.location = keras.layers.Dense(
            4, kernel_initializer=keras.initializers.RandomNormal(stddev=LOCATION_INIT_STDDEV),
            bias_initializer=keras.initializers.Constant([0.0, 0.0, half, half]), dtype=self.dtype_policy,
            name="location",
        )

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"AttentionLSTMLocator expects pooled features of shape (batch, d), got {tuple(input_shape)}."
            )
        self.cell.build((None, input_shape[-1]))
        self.location.build((None, 2 * self.units))
        self.memory_h = self.add_weight(
            name="memory_h", shape=(1, self.units), initializer="zeros", trainable=False
        )
        self.memory_c = self.add_weight(
            name="memory_c", shape=(1, self.units), initializer="zeros", trainable=False
        )
        if not self.trainable:
            # A layer revived frozen (trainable=False in its config) must
            # freeze its sublayers itself: Keras 3.15's `trainable` setter
            # does not reach them when the layer was constructed frozen.
            for sub in [self.cell, self.location]:
                if sub is not None:
                    sub.trainable = False

    def _softclip(self, z):
        """`z` softly bounded to [log(min_size), 0] (see the class docstring)."""
        lo, k = math.log(self.min_size), SOFTCLIP_SHARPNESS
        return lo + (ops.softplus(k * (z - lo)) - ops.softplus(k * z)) / k

    def _box(self, c, h):
        z = self.location(ops.concatenate([ops.tanh(c), h], axis=-1))
        z1, z2, z3, z4 = ops.unstack(z, 4, axis=-1)
        w, hh = ops.exp(self._softclip(z3)), ops.exp(self._softclip(z4))
        cx, cy = ops.sigmoid(z1), ops.sigmoid(z2)
        # The region is the part of the box inside the map.
        x0, x1 = ops.clip(cx - w / 2, 0.0, 1.0), ops.clip(cx + w / 2, 0.0, 1.0)
        y0, y1 = ops.clip(cy - hh / 2, 0.0, 1.0), ops.clip(cy + hh / 2, 0.0, 1.0)
        return ops.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)

    def _sequence(self, inputs, h0, c0):
        """Runs the cell over the batch axis; returns S_t = [C_t, h_t] and the final state."""

        def step(carry, x):
            _, (h, c) = self.cell(x[None], list(carry))
            # The per-step output repeats the carry: the TensorFlow backend's
            # `ops.scan` wants outputs shaped like the carry.
            return (h, c), (h, c)

        (h, c), (hs, cs) = ops.scan(step, (h0, c0), inputs)
        return (cs[:, 0], hs[:, 0]), h, c

    def call(self, inputs, training=None):
        dtype = inputs.dtype
        # Copies: training assigns the memory in place below, which PyTorch's
        # autograd refuses for a tensor the forward pass still holds.
        h0 = ops.copy(ops.cast(self.memory_h, dtype))
        c0 = ops.copy(ops.cast(self.memory_c, dtype))
        if self.carry_state is False and training:
            h0, c0 = ops.zeros_like(h0), ops.zeros_like(c0)
        if not training and self.inference_mode == "independent":
            batch = ops.shape(inputs)[0]
            h = ops.broadcast_to(h0, (batch, self.units))
            c = ops.broadcast_to(c0, (batch, self.units))
            _, (h, c) = self.cell(inputs, [h, c])
            return self._box(c, h)
        (cs, hs), h, c = self._sequence(inputs, h0, c0)
        if training and self.carry_state:
            self.memory_h.assign(ops.cast(ops.stop_gradient(h), self.memory_h.dtype))
            self.memory_c.assign(ops.cast(ops.stop_gradient(c), self.memory_c.dtype))
        return self._box(cs, hs)

    def reset_state(self):
        """Sets the stored state back to zeros."""
        for memory in (self.memory_h, self.memory_c):
            memory.assign(ops.zeros(memory.shape, memory.dtype))  # zeros_like(Variable) fails on JAX

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "min_size": self.min_size,
                "carry_state": self.carry_state,
                "inference_mode": self.inference_mode,
            }
        )
        return config
