"""OR-CNN head: K-1 independent binary classifiers "is y > k?"."""

import keras

from agekeras.layers.coral_head import CORALHead, coral_prior_bias


@keras.saving.register_keras_serializable(package="agekeras")
class ORCNNHead(CORALHead):
    """Ordinal regression with multiple binary outputs (OR-CNN, Niu et al., 2016).

    Like CORAL, age label y in {0, ..., K-1} becomes K-1 binary tasks
    "is y > k?" trained with a binary cross-entropy each; unlike CORAL each
    task has its own weight vector w_k and bias b_k:

        logit_k(x) = w_k^T x + b_k,   P(y > k | x) = sigmoid(logit_k),

    so nothing keeps P(y > k) non-increasing in k (no rank consistency):
    this is the comparison OR-CNN of Table II of the VoVNetv4 paper. Its
    logits follow the `age_logits` output convention (`agekeras.models.outputs`):
    they train with the same binary loss as CORAL (`agekeras.losses.CORALLoss`,
    uniform task weights; OR-CNN's own per-task importance weights are an
    option of that loss) and decode by counting the tasks above 0.5
    (`coral_label`, `CORALDecode`), as OR-CNN does.

    Bias initialisation (our choice, as in `CORALHead`): with `age_prior`
    the biases start at logit(P(y > k)) of the training labels; without it,
    at zero (Keras' Dense default).

    Args:
        num_classes: int, number of ranks K (the head returns K-1 logits).
        kernel_initializer: initializer of the `(d, K-1)` weight matrix.
        age_prior: optional list of K class probabilities of the training labels.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: features of shape `(batch, d)`.

    Returns:
        Logits of shape `(batch, K-1)`.

    Example:

    >>> head = ORCNNHead(num_classes=5)
    >>> logits = head(np.ones((2, 8), "float32"))
    >>> tuple(logits.shape), tuple(head.kernel.shape)
    ((2, 4), (8, 4))

    Reference: "Ordinal Regression With Multiple Output CNN for Age Estimation"
    (Niu, Zhou, Wang, Gao, Hua, CVPR 2016), https://doi.org/10.1109/CVPR.2016.532.
    """

    def build(self, input_shape):
        # CORALHead's constructor, call and config; only the weights differ:
        # a weight vector per task (d, K-1), and biases at zero without a prior.
        k = self.num_classes - 1
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], k), initializer=self.kernel_initializer)
        if self.age_prior is None:
            start = "zeros"
        else:
            start = keras.initializers.Constant(coral_prior_bias(self.age_prior).tolist())
        self.bias = self.add_weight(name="bias", shape=(k,), initializer=start)
