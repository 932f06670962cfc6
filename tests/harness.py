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


def gradients(model_or_fn, inputs, variables, loss_fn=None):
    """Gradients of `loss_fn(outputs)` (default: sum of squares of every
    output) with respect to `variables`, on the TensorFlow backend."""
    import tensorflow as tf

    loss_fn = loss_fn or (lambda out: sum(ops.sum(ops.square(ops.cast(o, "float32"))) for o in _flatten(out)))
    with tf.GradientTape() as tape:
        out = model_or_fn(inputs)
        loss = loss_fn(out)
    return tape.gradient(loss, [_tf_var(v) for v in variables])


def _tf_var(v):
    """The tf.Variable behind a Keras variable (Keras wraps it as `.value`)."""
    return v if not isinstance(v, keras.Variable) else v.value


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
            g = ops.convert_to_numpy(g)
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

