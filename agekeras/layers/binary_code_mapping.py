"""Binary code mapping of the DAA paper: age -> learned style (s_y, t_y)."""

import keras
import numpy as np
from keras import ops


def binary_codes(num_ages, bits=8, normalize=True):
    """The DAA age codes z_y = bin(y + 1) as a NumPy array.

    Row i holds the `bits`-bit binary representation of the integer i + 1,
    most significant bit first (Python's `bin(i + 1)` padded with zeros on
    the left), as float32 zeros and ones. With `normalize=True` each row is
    divided by its L2 norm (the authors' code applies `F.normalize` to the
    codes; every code is non-zero because of the "+ 1").

    Args:
        num_ages: number of ages (rows).
        bits: code length; needs `num_ages <= 2**bits - 1`.
        normalize: unit L2 norm per code.

    Returns:
        float32 array `(num_ages, bits)`.

    Example:

    >>> binary_codes(3, bits=4, normalize=False)
    array([[0., 0., 0., 1.],
           [0., 0., 1., 0.],
           [0., 0., 1., 1.]], dtype=float32)
    """
    num_ages, bits = int(num_ages), int(bits)
    if num_ages < 1:
        raise ValueError(f"`num_ages` must be >= 1, got {num_ages}.")
    if num_ages > 2**bits - 1:
        raise ValueError(
            f"{bits} bits code at most {2**bits - 1} ages (bin(y + 1) must fit), got num_ages={num_ages}; "
            "raise `bits`."
        )
    values = np.arange(1, num_ages + 1)[:, None]
    shifts = np.arange(bits - 1, -1, -1)[None, :]
    codes = ((values >> shifts) & 1).astype("float32")
    if normalize:
        codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    return codes


@keras.saving.register_keras_serializable(package="agekeras")
class BinaryCodeMapping(keras.layers.Layer):
    """Binary code mapping of DAA: learned style statistics for every age.

    Each comparison age y_i = age_min + i (i = 0..num_ages-1) gets a fixed
    code z_i = bin(i + 1) of `bits` bits, normalised to unit L2 norm (see
    `binary_codes`). A small MLP (the paper's "three FC layers": Dense 16,
    ReLU, Dense 32, ReLU, Dense 2) maps each code to two numbers, the style
    standard deviation s_y and mean t_y that Eq. 7 (`DeltaAgeAdaIN`) uses in
    place of the statistics of a template face of age y. They are shared by
    all channels of the encoder feature, and learned jointly with the rest of
    the network by back-propagation; at test time only the learned S =
    (s_y) and T = (t_y) are needed (`style_statistics()`), which is also what
    Fig. 3 of the paper plots against age.

    Interval sampling (Tables 6-7 of the paper): with `interval=k` the layer
    returns only every k-th age, i = 0, k, 2k, ... (starting at age_min).
    The weights do not depend on `interval`, so a model trained with k = 1
    can be rebuilt with another k and the same weights
    (`agekeras.models.daa.with_interval`).

    Readings of the paper and the authors' code (github.com/redcping/
    Delta_Age_AdaIN):
    - column 0 of the MLP output is the mean t_y, column 1 the standard
      deviation s_y (the authors' `torch.split(..., [1, 1])` order); s_y is
      used as is (no abs or softplus), as in their `DeltaAdaIN` module;
    - the paper compares with ages 0..99 (100 codes); here the comparison
      ages are the model's age classes age_min..age_min+num_ages-1, and code
      i = bin(i + 1) encodes the class index, so 8 bits cover up to 255
      classes;
    - the layer's input carries no information: it only anchors the layer
      in a functional graph (a Keras layer must be called on a tensor), so
      any tensor can be passed, e.g. the encoder's feature map.

    Args:
        num_ages: number of comparison ages A (the paper: 100).
        age_min: the age of code 0 (comparison ages are age_min + i).
        bits: code length (the paper: 8).
        hidden_units: widths of the two hidden Dense layers (the paper: 16, 32).
        interval: keep every `interval`-th age (1 = all).
        kernel_initializer: initializer of the three Dense kernels.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: any tensor (ignored, see above).

    Returns:
        A tuple `(s, t, ages)`, each of shape `(A_k,)` with
        `A_k = len(range(0, num_ages, interval))`: style std s_y, style mean
        t_y and the comparison ages y in years (float).

    Example:

    >>> mapping = BinaryCodeMapping(num_ages=100, age_min=1, interval=10)
    >>> s, t, ages = mapping(np.zeros((1,), "float32"))  # the input is ignored
    >>> tuple(s.shape), ops.convert_to_numpy(ages)[:3]
    ((10,), array([ 1., 11., 21.], dtype=float32))
    >>> s_all, t_all, ages_all = mapping.style_statistics(np.arange(100))  # Fig. 3

    Reference: DAA: A Delta Age AdaIN operation for age estimation via binary code
    transformer (Chen et al., CVPR 2023), https://arxiv.org/abs/2303.07929.
    """

    def __init__(
        self,
        num_ages=100,
        age_min=0,
        bits=8,
        hidden_units=(16, 32),
        interval=1,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_ages = int(num_ages)
        self.age_min = age_min
        self.bits = int(bits)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.interval = int(interval)
        if self.interval < 1 or self.interval > self.num_ages:
            raise ValueError(f"`interval` must be in [1, num_ages={self.num_ages}], got {interval}.")
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise ValueError(f"`hidden_units` must be positive widths, got {hidden_units}.")
        self._codes = binary_codes(self.num_ages, self.bits)  # validates num_ages/bits
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.hidden = [
            keras.layers.Dense(
                u,
                activation="relu",
                kernel_initializer=self.kernel_initializer,
                name=f"fc{i + 1}",
                dtype=self.dtype_policy,
            )
            for i, u in enumerate(self.hidden_units)
        ]
        self.out = keras.layers.Dense(
            2,
            kernel_initializer=self.kernel_initializer,
            name=f"fc{len(self.hidden_units) + 1}",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape=None):
        dim = self.bits
        for layer in self.hidden:
            layer.build((None, dim))
            dim = layer.units
        self.out.build((None, dim))
        self.built = True

    def codes(self):
        """The normalised binary codes `(num_ages, bits)` (NumPy)."""
        return self._codes.copy()

    def sampled_indices(self):
        """Indices i of the ages the layer returns: `0, interval, 2 interval, ...`."""
        return np.arange(0, self.num_ages, self.interval)

    def style_statistics(self, indices=None):
        """Learned `(s, t, ages)` for the given code indices (default: the
        sampled ones), without any input: what inference and Fig. 3 need.

        Args:
            indices: optional int array of code indices in [0, num_ages).

        Returns:
            Tensors `(s, t, ages)`, each `(len(indices),)`.
        """
        if not self.built:
            self.build()
        idx = self.sampled_indices() if indices is None else np.asarray(indices, dtype="int64").reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.num_ages:
            raise ValueError(f"indices must lie in [0, {self.num_ages}), got {indices}.")
        x = ops.convert_to_tensor(self._codes[idx], dtype=self.compute_dtype)
        for layer in self.hidden:
            x = layer(x)
        st = self.out(x)
        ages = ops.convert_to_tensor((idx + self.age_min).astype("float32"), dtype=self.compute_dtype)
        return st[:, 1], st[:, 0], ages

    def call(self, inputs=None):
        return self.style_statistics()

    def compute_output_shape(self, input_shape=None):
        n = len(self.sampled_indices())
        return (n,), (n,), (n,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_ages": self.num_ages,
                "age_min": self.age_min,
                "bits": self.bits,
                "hidden_units": list(self.hidden_units),
                "interval": self.interval,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
