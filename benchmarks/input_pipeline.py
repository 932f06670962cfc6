"""Input pipeline throughput on UTKFace: images per second.

Measures `agekeras.datasets.pipeline.make_tf_dataset` in training mode (batch
128, shuffled, no cache) over one full pass after a short warm-up, at 64 and
128 px:

* `decode_resize`: read + decode + crop/resize, no augmentation;
* `decode_resize_augment`: the same plus the default Keras augmentation;
* both again with `fast_decode=False` (JPEGs always decoded at full size);
* `augment_only`: the augmentation alone, on images already decoded in
  memory (with `in_memory_no_augment` as its baseline), in total and per
  layer, to show what the augmentation costs.
* `augment_only_landmarks`: the same default augmentation on faces with
  landmarks (`with_landmarks=True`): flip, then rotation, translation and
  zoom drawn as one similarity per image that moves the landmarks too
  (`random_similarity`: one resampling instead of three).

`--augment-only` skips the decoding measurements.

Prints one JSON object. Usage (from the repository root):

```
python benchmarks/input_pipeline.py [--data-dir <data root>/utkface] [--sizes 64 128]
```

`--data-dir` defaults to the data root's `utkface` folder
(`agekeras.datasets.default_data_dir("utkface")`: `$AGEKERAS_DATA_ROOT/utkface`,
or `~/agekeras_data/utkface`).
"""

import argparse
import collections
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from agekeras.datasets.base import AgeDataset  # noqa: E402
from agekeras.datasets.pipeline import (  # noqa: E402
    jpeg_decode_ratio,
    make_tf_dataset,
    steps_per_epoch,
)

# Augmentation configurations with a single layer switched on.
SINGLE_LAYERS = {
    name: {key: (value if key == name else 0) for key, value in
           {"flip": True, "rotation": 10 / 360, "translation": 0.05, "zoom": 0.1}.items()}
    for name in ("flip", "rotation", "translation", "zoom")
}


def load_utkface(data_dir):
    """UTKFace as an `AgeDataset`, with the name of the loader used.

    Uses `agekeras.datasets.load` when it works, else parses the file names
    (`<age>_<gender>_<race>_<date>.jpg.chip.jpg`) without checking the images.
    """
    try:
        from agekeras.datasets import load

        return load("utkface", data_dir), "agekeras.datasets.load"
    except Exception as error:  # The readers are optional for this benchmark.
        reason = f"{type(error).__name__}: {error}"
    paths, ages, genders, races = [], [], [], []
    for path in sorted(pathlib.Path(data_dir).glob("*.jpg")):
        fields = path.name.split("_")
        try:
            age, gender, race = int(fields[0]), int(fields[1]), int(fields[2])
        except (ValueError, IndexError):
            continue
        paths.append(str(path))
        ages.append(age)
        genders.append(gender)
        races.append(race)
    ds = AgeDataset("utkface", age=ages, paths=paths, gender=genders, race=races)
    return ds, f"file-name parser ({reason})"


def throughput(ds, size, batch_size, warmup, **kwargs):
    """Images per second over one pass of `ds`, after `warmup` batches."""
    dataset = make_tf_dataset(
        ds, image_size=size, batch_size=batch_size, training=True, repeat=True, **kwargs
    )
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(steps_per_epoch(len(ds), batch_size)):
        x, _ = next(iterator)
        images += int((x["image"] if isinstance(x, dict) else x).shape[0])
    return round(images / (time.perf_counter() - start))


def decoded(ds, size, rows):
    """The first `rows` images of `ds` decoded at `size`, as an in-memory dataset."""
    subset = ds.subset(np.arange(min(rows, len(ds))))
    batches = make_tf_dataset(subset, image_size=size, batch_size=256, augment=False)
    images = np.concatenate([x.numpy() for x, _ in batches]).astype("uint8")
    return AgeDataset("in-memory", age=subset.age[: len(images)], images=images)


def with_landmarks(ds, size):
    """`ds` with the canonical five landmarks of a `size` px face on every image."""
    from agekeras.layers.aligned_region_pooling import canonical_landmarks

    points = np.broadcast_to(canonical_landmarks(size), (len(ds), 5, 2)).astype("float32")
    return AgeDataset("in-memory", age=ds.age, images=ds.images, landmarks=points)


def decode_ratios(ds, size, sample=200):
    """How often each JPEG decode ratio is used, on a sample of the files."""
    counts = collections.Counter()
    for path in ds.paths[:sample]:
        contents = tf.io.read_file(path)
        if tf.io.is_jpeg(contents):
            shape = tf.image.extract_jpeg_shape(contents)
            counts[f"jpeg 1/{int(jpeg_decode_ratio(shape, size))}"] += 1
        else:
            counts["not jpeg"] += 1
    return dict(counts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="UTKFace folder (default: <data root>/utkface)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10, help="batches before timing")
    parser.add_argument(
        "--in-memory-rows", type=int, default=2048,
        help="images decoded once for the augmentation-only measurements",
    )
    parser.add_argument("--augment-only", action="store_true", help="skip the decoding measurements")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        from agekeras.datasets import default_data_dir

        args.data_dir = str(default_data_dir("utkface"))
    if not pathlib.Path(args.data_dir).is_dir():
        sys.exit(
            f"UTKFace not found at {args.data_dir}. Pass --data-dir pointing at a folder "
            "of UTKFace crops (<age>_<gender>_<race>_<date>.jpg.chip.jpg), or set AGEKERAS_DATA_ROOT."
        )

    ds, loader = load_utkface(args.data_dir)
    result = {
        "dataset": "utkface",
        "images": len(ds),
        "loader": loader,
        "batch_size": args.batch_size,
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "img_per_s": {},
    }
    for size in args.sizes:
        run = {} if args.augment_only else {"decode_ratio": decode_ratios(ds, size)}
        for fast in () if args.augment_only else (True, False):
            suffix = "" if fast else "_no_fast_decode"
            for augment in (False, True):
                name = "decode_resize" + ("_augment" if augment else "") + suffix
                run[name] = throughput(
                    ds, size, args.batch_size, args.warmup, augment=augment, fast_decode=fast
                )
        memory = decoded(ds, size, args.in_memory_rows)
        run["in_memory_no_augment"] = throughput(
            memory, size, args.batch_size, args.warmup, augment=False
        )
        run["augment_only"] = throughput(memory, size, args.batch_size, args.warmup, augment=True)
        run["augment_only_landmarks"] = throughput(
            with_landmarks(memory, size), size, args.batch_size, args.warmup, augment=True, with_landmarks=True
        )
        run["augment_only_per_layer"] = {
            name: throughput(memory, size, args.batch_size, args.warmup, augment=config)
            for name, config in SINGLE_LAYERS.items()
        }
        result["img_per_s"][str(size)] = run
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
