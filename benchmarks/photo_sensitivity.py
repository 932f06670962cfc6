"""What a trained model reads as age in photos unlike its training faces.

The run's own UTKFace test faces, each changed one way at a time the way
photos from elsewhere differ from UTKFace's crops, are scored again with
flip test-time averaging. Each change gets its MAE, mean error (predicted
minus true) and how far it moves the predicted age of the same face on
average (all faces, and faces under 20); the run's FG-NET score goes beside
them when the run has one:

* greyscale (an old scan), a Gaussian blur, a low-resolution photo (the
  face shrunk to 40 px and enlarged back), strong JPEG compression;
* the crop framed differently: the face moved 2 % of the crop down or up
  (4 px at 200 px, about the residual of a five-point alignment,
  `agekeras.datasets.align.geometry`), zoomed in or out 5 %.

A large shift means the model reads that change as age: a photo that
differs that way gets an age that much off. Prints one JSON object; with
`--write` it also writes `benchmarks/results/lab/photo_sensitivity.{csv,json}`
(rendered into README.md by `benchmarks/render.py`).

Usage (from the repository root):

```
python benchmarks/photo_sensitivity.py --run RUN [--run RUN2 ...] [--label NAME ...] [--data-dir DIR] [--write]
```

`--data-dir` points at the run's dataset when it has moved since training.
"""

import argparse
import csv
import datetime
import io
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
LAB = HERE / "results" / "lab"
NAME = "photo_sensitivity"


def _pil(image, f):
    return np.asarray(f(Image.fromarray(image)).convert("RGB"))


def greyscale(image):
    return _pil(image, lambda im: im.convert("L"))


def blurred(image, radius=2.0):
    return _pil(image, lambda im: im.filter(ImageFilter.GaussianBlur(radius)))


def low_resolution(image, side=40):
    h, w = image.shape[:2]
    return _pil(image, lambda im: im.resize((side, side), Image.BILINEAR).resize((w, h), Image.BILINEAR))


def jpeg(image, quality=15):
    def f(im):
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue()))

    return _pil(image, f)


def moved(image, fraction):
    """The face moved down (`fraction` > 0) or up by `fraction` of the crop
    height; the uncovered rows repeat the edge row."""
    h = image.shape[0]
    k = int(round(abs(fraction) * h))
    if k == 0:
        return image
    if fraction > 0:
        return np.pad(image, ((k, 0), (0, 0), (0, 0)), mode="edge")[:h]
    return np.pad(image, ((0, k), (0, 0), (0, 0)), mode="edge")[k:]


def zoomed(image, factor):
    """The crop scaled by `factor` about its centre (> 1 zooms in); a zoom
    out repeats the edge pixels."""
    h, w = image.shape[:2]
    if factor >= 1:
        ch, cw = int(round(h / factor)), int(round(w / factor))
        top, left = (h - ch) // 2, (w - cw) // 2
        part = image[top:top + ch, left:left + cw]
    else:
        ph, pw = int(round((h / factor - h) / 2)), int(round((w / factor - w) / 2))
        part = np.pad(image, ((ph, ph), (pw, pw), (0, 0)), mode="edge")
    return np.asarray(Image.fromarray(part).resize((w, h), Image.BILINEAR))


#: view name -> change applied to a face crop (uint8 H x W x 3).
VIEWS = {
    "as given": lambda x: x,
    "greyscale": greyscale,
    "blurred (Gaussian, 2 px at 200 px)": blurred,
    "low resolution (face at 40 px)": low_resolution,
    "JPEG quality 15": jpeg,
    "face 2 % lower in the crop": lambda x: moved(x, 0.02),
    "face 2 % higher in the crop": lambda x: moved(x, -0.02),
    "zoomed in 5 %": lambda x: zoomed(x, 1.05),
    "zoomed out 5 %": lambda x: zoomed(x, 1 / 1.05),
}


def sensitivity(predict, images, ages, views=VIEWS, young=20):
    """One row per view: MAE, mean error and the mean change of each face's
    predicted age against the face as given (all faces and under `young`).

    Args:
        predict: function (n, H, W, 3) uint8 -> (n,) predicted ages.
        images: the faces, uint8 (n, H, W, 3), all one size.
        ages: (n,) true ages.
    """
    ages = np.asarray(ages, "float64")
    under = ages < young
    rows, base = [], None
    for name, change in views.items():
        pred = np.asarray(predict(np.stack([change(x) for x in images])), "float64")
        base = pred if base is None else base
        err, shift = pred - ages, pred - base
        rows.append({"view": name, "n": len(ages), "mae": round(float(np.abs(err).mean()), 3),
                     "mean_error": round(float(err.mean()), 3), "shift": round(float(shift.mean()), 3),
                     f"shift_under_{young}": round(float(shift[under].mean()), 3) if under.any() else None})
    return rows


def run_predictor(run_dir, data_dir=None):
    """(predict, test faces, true ages, description) of a run's best
    checkpoint on its own test split, flip-averaged."""
    from agekeras.datasets.base import AgeDataset
    from agekeras.datasets.images import read_image
    from agekeras.evaluation import dataset_outputs, load_run, load_splits, mean_over_views, test_views

    model, config, saved = load_run(run_dir)
    if data_dir:
        config.data_dir = str(data_dir)
    splits, _ = load_splits(config)
    test = splits["test"]
    if test.images is not None:
        images = np.asarray(test.images)
    else:
        first = read_image(test.paths[0])
        size = (first.shape[1], first.shape[0])
        images = np.stack([np.asarray(Image.fromarray(read_image(p)).resize(size, Image.BILINEAR)) for p in test.paths])

    def predict(batch):
        ds = AgeDataset(name="views", age=np.zeros(len(batch), "float32"), images=batch)
        views = [dataset_outputs(model, ds, config.image_size, flip=mirrored, zoom=zoom)
                 for zoom, mirrored in test_views(flip=True)]
        return np.ravel(mean_over_views(*views)["age"])

    about = {"model": config.model, "image_size": config.image_size, "epochs": config.epochs,
             "time_budget": config.time_budget, "augment": config.augment, "label_sigma": config.label_sigma,
             "align": config.align, "test_faces": len(test)}
    return predict, images, test.age, about


#: The FG-NET score of a run, when it has one: `evaluate --run RUN --dataset fgnet --split all --align utkface --flip`.
FGNET_METRICS = "metrics_fgnet_utkface_flip.json"


def fgnet_score(run_dir):
    """The run's FG-NET MAE and mean error (all photos, colour, greyscale), or None."""
    path = pathlib.Path(run_dir) / FGNET_METRICS
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    by = m.get("by_colour", {})
    return {"photos": m["n"], "mae": round(m["mae"], 3),
            **{f"{k}_{v}": round(by[k][v], 3) for k in ("all", "colour", "greyscale") if k in by for v in ("mae", "mean_error")}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", required=True, help="a run directory (repeat for several)")
    p.add_argument("--label", action="append", help="a name per --run for the table (default: the run's model)")
    p.add_argument("--data-dir", help="the runs' dataset, when it has moved since training")
    p.add_argument("--write", action="store_true", help="write benchmarks/results/lab/photo_sensitivity.{csv,json}")
    a = p.parse_args(argv)
    labels = a.label or []
    if len(labels) not in (0, len(a.run)):
        p.error("give one --label per --run, or none")
    rows, runs = [], {}
    for i, run in enumerate(a.run):
        predict, images, ages, about = run_predictor(run, a.data_dir)
        label = labels[i] if labels else about["model"]
        runs[label] = {**about, "fgnet": fgnet_score(run)}
        rows += [{"run": label, **r} for r in sensitivity(predict, images, ages)]
    meta = {"date": datetime.date.today().isoformat(),
            "command": "python benchmarks/photo_sensitivity.py " + " ".join(f"--run RUN{i + 1}" for i in range(len(a.run))),
            "runs": runs, "flip": True}
    print(json.dumps({**meta, "rows": rows}, indent=1))
    if a.write:
        LAB.mkdir(parents=True, exist_ok=True)
        (LAB / f"{NAME}.json").write_text(json.dumps(meta, indent=1) + "\n")
        with open(LAB / f"{NAME}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
