"""One shared harness for layer tests, in the style of keras-hub's
`TestCase.run_layer_test`.

`run_layer_test(cls, init_kwargs, input_data, ...)` checks, for any layer:

1. config round trip: `from_config(get_config())` gives the same config, and
   every init kwarg appears in the config;
2. eager call: output shapes (and `compute_output_shape` when defined);
3. symbolic call: the layer inside a functional model built on `keras.Input`s;
4. one fit step: every trainable weight receives a finite, non-zero gradient
   and changes after one optimizer step;
5. `.keras` save/load with `safe_mode=True` reproduces the outputs.
"""

import contextlib
import os
import tempfile

import keras
import numpy as np
from keras import ops
from keras import tree


def _to_numpy(x):
    return tree.map_structure(lambda t: ops.convert_to_numpy(t), x)


def _input_spec(data):
    def one(x):
        x = np.asarray(x)
        return keras.Input(shape=x.shape[1:], batch_size=None, dtype=str(x.dtype))

    return tree.map_structure(one, data)


def _flatten(x):
    return tree.flatten(x)


def _call(layer, data, call_kwargs):
    return layer(data, **call_kwargs)


def _shape_list(expected):
    """A single shape tuple or a list of them -> a list of shape tuples."""
    if all(isinstance(v, (int, type(None))) for v in expected):
        return [tuple(expected)]
    return [tuple(s) for s in (expected.values() if isinstance(expected, dict) else expected)]


def _is_float(x):
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _sum_of_squares(out):
    return sum(ops.sum(ops.square(ops.cast(o, "float32"))) for o in _flatten(out))


def backend_gradients(fn, inputs, variables=(), loss_fn=None):
    """Gradients of `loss_fn(fn(inputs))` on the current Keras backend.

    `loss_fn` defaults to the sum of squares of every output. `fn`'s layers
    must be built (call them once first). Works on TensorFlow
    (`tf.GradientTape`), JAX (`jax.grad` over the variables' values inside a
    `keras.StatelessScope`) and PyTorch (`torch.autograd.grad`).

    Args:
        fn: callable taking `inputs` (a layer, a model or a lambda).
        inputs: NumPy array or structure of arrays; the floating ones are
            differentiated too.
        variables: Keras variables (trainable weights) to differentiate.

    Returns:
        (variable_grads, input_grads): a list of NumPy arrays (None where
        the backend reports no gradient path) and a structure like `inputs`
        with a NumPy gradient per floating input (None for integer inputs).
    """
    loss_fn = loss_fn or _sum_of_squares
    variables = list(variables)
    leaves = [np.asarray(ops.convert_to_numpy(x)) for x in tree.flatten(inputs)]
    fidx = [i for i, x in enumerate(leaves) if _is_float(x)]

    def rebuild(float_values):
        new = list(leaves)
        for i, v in zip(fidx, float_values):
            new[i] = v
        return tree.pack_sequence_as(inputs, new)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.convert_to_tensor(leaves[i]) for i in fidx]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = loss_fn(fn(rebuild(xs)))
        grads = tape.gradient(loss, [v.value for v in variables] + xs)
    elif backend == "jax":
        import jax

        def loss_of(values, xs):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn(fn(rebuild(xs)))

        xs = [jax.numpy.asarray(leaves[i]) for i in fidx]
        g_vars, g_xs = jax.grad(loss_of, argnums=(0, 1))([v.value for v in variables], xs)
        grads = list(g_vars) + list(g_xs)
    elif backend == "torch":
        import torch

        xs = [torch.tensor(leaves[i], requires_grad=True) for i in fidx]
        loss = loss_fn(fn(rebuild(xs)))
        grads = torch.autograd.grad(loss, [v.value for v in variables] + xs, allow_unused=True)
    else:
        raise NotImplementedError(f"no gradient helper for the {backend!r} backend")
    grads = [None if g is None else np.asarray(ops.convert_to_numpy(g)) for g in grads]
    g_inputs = [None] * len(leaves)
    for i, g in zip(fidx, grads[len(variables):]):
        g_inputs[i] = g
    return grads[: len(variables)], tree.pack_sequence_as(inputs, g_inputs)


@contextlib.contextmanager
def float64_enabled():
    """Let float64 stay float64 inside the block (JAX truncates to float32
    unless x64 is enabled; the other backends always keep float64)."""
    if keras.backend.backend() == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def gradients(fn, inputs, variables, loss_fn=None):
    """Gradients (NumPy, or None) of `loss_fn(fn(inputs))` with respect to
    the Keras `variables`, on any backend; see `backend_gradients`."""
    return backend_gradients(fn, inputs, variables, loss_fn)[0]


def input_gradients(fn, inputs, loss_fn=None):
    """Gradient (NumPy) of `loss_fn(fn(inputs))` with respect to each
    floating input, in the structure of `inputs`; see `backend_gradients`."""
    return backend_gradients(fn, inputs, (), loss_fn)[1]


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    call_kwargs=None,
    run_training_check=True,
    run_saving_check=True,
    allow_zero_grad=(),
    atol=1e-5,
):
    """Run the standard checks on a layer; see the module docstring.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: NumPy array, or list/tuple/dict of arrays (a batch).
        expected_output_shape: shape tuple, or a structure of shape tuples
            matching the outputs.
        expected_num_trainable_weights, expected_num_non_trainable_weights:
            optional counts of weight variables.
        call_kwargs: extra keyword arguments for `call`.
        run_training_check: run the gradient/fit-step check.
        run_saving_check: run the `.keras` round trip.
        allow_zero_grad: substrings of weight paths allowed to get no or zero
            gradient (e.g. BatchNorm moving statistics are non-trainable anyway).
        atol: tolerance of the save/load output comparison.

    Returns:
        The layer instance that was tested (built), for further checks.
    """
    call_kwargs = call_kwargs or {}

    # 1. Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"init arg {key!r} missing from get_config()"
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "from_config(get_config()) changed the config"
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls
    assert keras.saving.get_registered_name(layer_cls).startswith("agekeras>"), (
        "public layers must be registered with package='agekeras'"
    )

    # 2. Eager call.
    out = _call(layer, input_data, call_kwargs)
    if expected_output_shape is not None:
        got = [tuple(t.shape) for t in _flatten(out)]
        assert got == _shape_list(expected_output_shape), (
            f"output shapes {got} != expected {expected_output_shape}"
        )
    for t in _flatten(out):
        assert np.all(np.isfinite(ops.convert_to_numpy(t).astype("float64"))), "non-finite output"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{len(layer.trainable_weights)} trainable weights"
        )
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    # 3. Symbolic call inside a functional model.
    sym_layer = layer_cls.from_config(config)
    inputs = _input_spec(input_data)
    sym_out = _call(sym_layer, inputs, call_kwargs)
    sym_shapes = [tuple(t.shape) for t in _flatten(sym_out)]
    eager_shapes = [tuple(t.shape) for t in _flatten(out)]
    assert len(sym_shapes) == len(eager_shapes)
    for s, e in zip(sym_shapes, eager_shapes):
        assert tuple(s[1:]) == tuple(e[1:]), f"symbolic shape {s} vs eager {e}"
    model = keras.Model(inputs, sym_out)

    # 4. Gradient to every trainable weight, then one fit step.
    if run_training_check and model.trainable_weights:
        grads = gradients(model, input_data, model.trainable_weights)
        for w, g in zip(model.trainable_weights, grads):
            if any(s in w.path for s in allow_zero_grad):
                continue
            assert g is not None, f"no gradient reaches {w.path}"
            assert np.all(np.isfinite(g)), f"non-finite gradient for {w.path}"
            assert np.any(g != 0), f"zero gradient for {w.path}"
        before = [ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
        targets = tree.map_structure(lambda t: np.zeros(t.shape, "float32") + 0.5, _to_numpy(model(input_data)))
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        model.fit(input_data, targets, batch_size=len(_flatten(input_data)[0]), epochs=1, verbose=0)
        changed = [
            not np.allclose(b, ops.convert_to_numpy(w))
            for b, w in zip(before, model.trainable_weights)
        ]
        assert any(changed), "one fit step changed no weight"

    # 5. .keras round trip under safe_mode.
    if run_saving_check:
        ref = _to_numpy(model(input_data))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path, safe_mode=True)
        got = _to_numpy(loaded(input_data))
        for a, b in zip(_flatten(ref), _flatten(got)):
            np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)
    return layer


def model_image_size(name):
    """The image size the model tests train a registered model at: 32 px, or
    48 px for C3AE, whose valid convolutions want >= 40 px."""
    return 48 if "c3ae" in name else 32
