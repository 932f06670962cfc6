"""CORAL head: K-1 rank-consistent binary tasks with one shared weight vector."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class CORALHead(keras.layers.Layer):
    """CORAL ordinal-regression head (Cao, Mirjalili and Raschka, 2020).

    Age label y in {0, ..., K-1} (after subtracting the dataset's minimum
    age) is split into K-1 binary tasks "is y > k?". All tasks share one
    weight vector w and each has its own bias b_k:

        logit_k(x) = w^T x + b_k,   P(y > k | x) = sigmoid(logit_k),

    Eqs. 4-6 of the VoVNetv4 paper. Because the tasks differ only in their
    bias, P(y > k) is non-increasing in k whenever b_1 >= b_2 >= ...; the
    CORAL paper proves training keeps that order (Theorem 1), and
    `coral_probabilities` / `coral_label` below never need it to hold.
    The predicted rank is the number of probabilities above 0.5 (Eq. 7).

    The biases start as a ramp decreasing linearly from 0.5 to -0.5
    (the reference implementation coral-pytorch uses a decreasing ramp too),
    so the head is rank-consistent from the first step.

    Args:
        num_classes: int, number of ranks K (the head returns K-1 logits).
        kernel_initializer: initializer of the shared weight vector.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: features of shape `(batch, d)`.

    Returns:
        Logits of shape `(batch, K-1)`.

    Example:

    >>> head = CORALHead(num_classes=26)
    >>> logits = head(np.zeros((4, 512), "float32"))
    >>> tuple(coral_label(logits).shape)
    (4,)
    """

    def __init__(self, num_classes, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"`num_classes` must be >= 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], 1), initializer=self.kernel_initializer
        )
        k = self.num_classes - 1
        ramp = [(k - 1 - i) / max(k - 1, 1) - 0.5 for i in range(k)]
        self.bias = self.add_weight(
            name="bias",
            shape=(k,),
            initializer=keras.initializers.Constant(ramp),
        )

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes - 1,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def coral_probabilities(logits):
    """P(y > k) for k = 0..K-2 from CORAL logits (Eq. 6): `sigmoid(logits)`."""
    return ops.sigmoid(logits)


def coral_label(logits):
    """Predicted rank = number of P(y > k) above 0.5 (Eq. 7), as int32."""
    return ops.sum(ops.cast(ops.sigmoid(logits) > 0.5, "int32"), axis=-1)


@keras.saving.register_keras_serializable(package="agekeras")
class CORALDecode(keras.layers.Layer):
    """Turns CORAL logits into an age: `age_min + coral_label(logits)`.

    Not differentiable (a count); use it for the model's "age" output next to
    the "age_logits" output that carries the CORAL loss.

    Args:
        age_min: the age of rank 0.

    Call arguments:
        inputs: logits `(batch, K-1)`.

    Returns:
        float ages `(batch,)`.
    """

    def __init__(self, age_min=0, **kwargs):
        super().__init__(**kwargs)
        self.age_min = age_min

    def call(self, inputs):
        rank = ops.cast(coral_label(inputs), self.compute_dtype)
        return rank + ops.cast(self.age_min, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config["age_min"] = self.age_min
        return config
