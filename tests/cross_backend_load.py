"""Load the `.keras` files of a folder under the current `KERAS_BACKEND` and
write their outputs (helper of tests/layers/test_cross_backend_saving.py).

    KERAS_BACKEND=jax python -m tests.cross_backend_load FOLDER

For each FOLDER/NAME.keras with its inputs in FOLDER/NAME.npz (x0, x1, ...),
writes FOLDER/NAME.<backend>.npz (y0, y1, ...) and a summary
FOLDER/report-<backend>.json ({"backend": ..., "cases": {NAME: {} or
{"error": text}}}).
"""

import json
import pathlib
import sys
import traceback

import keras
import numpy as np
from keras import ops

import agekeras.layers  # noqa: F401  (registers the layers for deserialisation)


def main(folder):
    folder = pathlib.Path(folder)
    backend = keras.backend.backend()
    cases = {}
    for path in sorted(folder.glob("*.keras")):
        name = path.stem
        try:
            data = np.load(folder / f"{name}.npz")
            xs = [data[f"x{i}"] for i in range(len([k for k in data.files if k.startswith("x")]))]
            model = keras.saving.load_model(path, safe_mode=True)
            out = keras.tree.flatten(model(xs if len(xs) > 1 else xs[0]))
            np.savez(folder / f"{name}.{backend}.npz", **{f"y{i}": ops.convert_to_numpy(y) for i, y in enumerate(out)})
            cases[name] = {}
        except Exception:  # reported per case, so one failure doesn't hide the others
            cases[name] = {"error": traceback.format_exc(limit=5)}
    (folder / f"report-{backend}.json").write_text(json.dumps({"backend": backend, "cases": cases}))


if __name__ == "__main__":
    main(sys.argv[1])
