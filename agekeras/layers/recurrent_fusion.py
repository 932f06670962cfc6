"""Recurrent fusion of a branch's sub-network features (DHAA, Eqs. 2-3)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class RecurrentFusion(keras.layers.Layer):
    """Fuses T feature vectors with an LSTM and sums its hidden states.

    DHAA (Tan et al., IJCAI 2019) fuses the three sub-network features
    z_1, z_2, z_3 of a branch with an LSTM run over them in order (Eq. 2,
    the standard LSTM: gates i_t, f_t, o_t and candidate g_t from
    [z_t, h_{t-1}], c_t = f_t * c_{t-1} + i_t * g_t, h_t = o_t * tanh(c_t))
    and sums the hidden states (Eq. 3):

        f = sum_t h_t.

    The LSTM is Keras's own `keras.layers.LSTM` (tanh / sigmoid, zero
    initial state, unit forget bias). Since h_t depends on z_1..z_t, the
    result depends on the order of the sub-networks.

    `mode="fc"` is the "FC fusion" ablation: the recurrence is removed and
    one shared fully-connected layer maps each feature, h_t = tanh(W z_t + b),
    before the same sum. Our reading of "FC fusion": it keeps the number of
    units and the sum of Eq. 3 and only drops the recurrent connection, so
    it is invariant to the order of the sub-networks (a concatenation
    followed by FC would be order-dependent, unlike the ablation the paper
    describes).

    Args:
        units: int, size of h_t and of the output (128 in the paper).
        mode: "lstm" (Eqs. 2-3) or "fc" (ablation).
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: a list of T tensors `(batch, d)` (the sub-network features,
            in order), or one tensor `(batch, T, d)`.

    Returns:
        `(batch, units)`: the sum of the T hidden states.

    Example:

    >>> fusion = RecurrentFusion(units=128)
    >>> z = np.zeros((2, 128), "float32")
    >>> tuple(fusion([z, z, z]).shape)
    (2, 128)

    Reference: Deeply-learned Hybrid Representations for Facial Age Estimation
    (Tan et al., IJCAI 2019), https://doi.org/10.24963/ijcai.2019/492.
    """

    def __init__(self, units=128, mode="lstm", **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"`units` must be positive; got {units}.")
        if mode not in ("lstm", "fc"):
            raise ValueError(f"mode must be 'lstm' or 'fc'; got {mode!r}.")
        self.units = int(units)
        self.mode = mode
        if mode == "lstm":
            self.cell = keras.layers.LSTM(self.units, return_sequences=True, name="lstm")
        else:
            self.cell = keras.layers.Dense(self.units, activation="tanh", name="fc")

    @staticmethod
    def _sequence_shape(input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            dims = {tuple(s[1:]) for s in input_shape}
            if len(dims) != 1 or len(input_shape[0]) != 2:
                raise ValueError(
                    f"RecurrentFusion expects T tensors of one shape (batch, d); got {list(input_shape)}."
                )
            return (input_shape[0][0], len(input_shape), input_shape[0][1])
        if len(input_shape) != 3:
            raise ValueError(f"RecurrentFusion expects (batch, T, d) or a list of (batch, d); got {input_shape}.")
        return tuple(input_shape)

    def build(self, input_shape):
        self.cell.build(self._sequence_shape(input_shape))

    def call(self, inputs):
        x = ops.stack(list(inputs), axis=1) if isinstance(inputs, (list, tuple)) else inputs
        return ops.sum(self.cell(x), axis=1)

    def compute_output_shape(self, input_shape):
        return (self._sequence_shape(input_shape)[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "mode": self.mode})
        return config
