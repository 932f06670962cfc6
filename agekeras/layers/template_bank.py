"""TemplateBank: the template faces of the DAA template variants, kept inside a model."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class TemplateBank(keras.layers.Layer):
    """Holds one template face per comparison age inside a model.

    The template variants of DAA take the style of age y from the feature
    statistics of a real face of that age: per channel (Eq. 3 of the paper,
    mu_c and sigma_c of the template's feature E(template_y)) or over all
    channels (Eq. 5). This layer stores the template faces and their ages as
    two non-trainable weights, so that a saved model carries them:
    `images` `(n, H, W, 3)` (pixel values as the model's input, [0, 255]) and
    `ages` `(n,)`. The model passes the returned images through its own
    FaceEncoder at every step and reads their statistics with
    `TemplateStatistics`.

    The call ignores the values of its input (it only anchors the layer in a
    functional graph) and returns every `interval`-th template, starting at
    the first: `(images[::interval], ages[::interval])` (interval sampling,
    Tables 6-7 of the paper).

    Our choice: the templates are chosen once (e.g. one random face per age
    of the training split) and fixed; the paper averages its template rows
    over 10 random draws, and the authors' loader may draw new ones.

    Args:
        num_templates: n, the number of stored template faces.
        image_shape: `(H, W, 3)` of one template (the model's input shape).
        interval: keep every `interval`-th template, 1 <= interval <= n.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: any tensor (ignored; e.g. the model's input image).

    Returns:
        `(images, ages)`: `(m, H, W, 3)` and `(m,)`, m = ceil(n / interval).

    Example:

    >>> bank = TemplateBank(4, (8, 8, 3), interval=2)
    >>> bank.set_templates(np.zeros((4, 8, 8, 3)), [10, 11, 12, 13])
    >>> images, ages = bank(np.zeros((1, 8, 8, 3), "float32"))
    >>> tuple(images.shape), keras.ops.convert_to_numpy(ages).tolist()
    ((2, 8, 8, 3), [10.0, 12.0])

    Reference: A Delta Age AdaIN operation for age estimation via binary code
    transformer (Chen et al., CVPR 2023), https://arxiv.org/abs/2303.07929.
    """

    def __init__(self, num_templates, image_shape, interval=1, **kwargs):
        super().__init__(**kwargs)
        self.num_templates = int(num_templates)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.interval = int(interval)
        if self.num_templates < 1:
            raise ValueError(f"`num_templates` must be >= 1, got {num_templates}.")
        if len(self.image_shape) != 3:
            raise ValueError(f"`image_shape` must be (H, W, C), got {image_shape}.")
        if self.interval < 1 or self.interval > self.num_templates:
            raise ValueError(f"`interval` must be in [1, {self.num_templates}], got {interval}.")

    def build(self, input_shape=None):
        self.images = self.add_weight(
            name="images", shape=(self.num_templates, *self.image_shape), initializer="zeros", trainable=False
        )
        self.ages = self.add_weight(name="ages", shape=(self.num_templates,), initializer="zeros", trainable=False)
        self.built = True

    def set_templates(self, images, ages):
        """Assign template `images` `(n, H, W, 3)` and `ages` `(n,)`."""
        images = np.asarray(images, "float32")
        ages = np.asarray(ages, "float32").reshape(-1)
        if images.shape != (self.num_templates, *self.image_shape) or ages.shape != (self.num_templates,):
            raise ValueError(
                f"templates must be images {(self.num_templates, *self.image_shape)} and ages "
                f"({self.num_templates},); got {images.shape} and {ages.shape}."
            )
        if not (np.all(np.isfinite(images)) and np.all(np.isfinite(ages))):
            raise ValueError("template images and ages must be finite.")
        if not self.built:
            self.build()
        self.images.assign(images)
        self.ages.assign(ages)

    def sampled_indices(self):
        """Indices of the templates the call returns: `0, k, 2k, ...`."""
        return np.arange(0, self.num_templates, self.interval)

    def call(self, inputs=None):
        idx = ops.convert_to_tensor(self.sampled_indices(), dtype="int32")
        images = ops.take(ops.cast(self.images, self.compute_dtype), idx, axis=0)
        return images, ops.take(ops.cast(self.ages, self.compute_dtype), idx, axis=0)

    def compute_output_shape(self, input_shape=None):
        n = len(self.sampled_indices())
        return (n, *self.image_shape), (n,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_templates": self.num_templates, "image_shape": list(self.image_shape), "interval": self.interval}
        )
        return config
