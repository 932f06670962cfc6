"""Detect faces and five landmarks with MTCNN; write a landmarks CSV per dataset.

    python data_prep/align_faces.py utkface --data-dir ../shared/datasets/utkface-dev
    python data_prep/align_faces.py fgnet --data-dir ../shared/datasets/fgnet --out runs/fgnet_landmarks.csv
    python data_prep/align_faces.py utkface --data-dir ... --aligned-dir runs/utkface_aligned --aligned-size 256

The detector is the `mtcnn` package (1.0, pip; its wheel ships the P-, R- and
O-Net weights, so it runs offline on TensorFlow). For every face of the
dataset (in the reader's order) the CSV gets one row in the generic format
of `agekeras.datasets.load("csv", ...)`:

    path,age,gender,race,subject,lx0,ly0,lx1,ly1,lx2,ly2,lx3,ly3,lx4,ly4,source

with absolute image paths, pixel landmarks (pixel centres at integers) in
the order left eye, right eye, nose tip, left and right mouth corner, where
"left" is the image left (MTCNN's `left_eye` is the eye on the image's left,
so its order is already ours) and `source` saying where the points come from:
"dataset" (the reader's own landmarks, e.g. FG-NET's 68 points reduced to 5,
kept unless `--no-keep-existing`), "mtcnn", or "filled".

Faces MTCNN does not find are never dropped silently: they are listed, with
the reason, in `<csv stem>.not_found.csv` beside the CSV and counted on the
console, and `--missing` says what their row gets: "fill" (default) the
median landmarks of the detected faces, scaled to the image (`source`
"filled"), so the dataset keeps every row and its seeded random split stays
the one of the original reader; "nan" empty landmark cells (the reader then
gives NaN, and DHAA's `AlignedRegionPooling` falls back to its canonical
face); "drop" no row.

When an image holds several faces, the largest box above `--min-confidence`
wins (face crops hold the subject's face large and centred).

Default output: `~/.cache/agekeras/landmarks/<dataset>-<folder name>.csv`
(`landmarks_csv_path`); an existing CSV is reused unless `--force`. Images
are never copied; with `--aligned-dir`, aligned crops are written there
(similarity transform putting the eye centres and the upper lip -- the
midpoint of the mouth corners -- at fixed positions, as in the DHAA paper)
plus a second CSV `<aligned-dir>/landmarks.csv` pointing at them.
"""

from __future__ import annotations

import argparse
import csv
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout

from agekeras.datasets.validate import cache_dir  # noqa: E402

HEADER = ["path", "age", "gender", "race", "subject"] + [f"{a}{k}" for k in range(5) for a in ("lx", "ly")] + ["source"]
# Aligned crops: eye centres and upper lip at these relative positions (the
# canonical face of `agekeras.layers.aligned_region_pooling.CANONICAL`).
ALIGN_TEMPLATE = np.array([[0.305, 0.30], [0.695, 0.30], [0.5, 0.68]])


def landmarks_csv_path(name, data_dir):
    """The default cache path of a dataset's landmarks CSV."""
    return cache_dir() / "landmarks" / f"{name}-{pathlib.Path(data_dir).expanduser().resolve().name}.csv"


def make_detector():
    """An `mtcnn.MTCNN` face + landmark detector on the CPU (offline weights)."""
    from mtcnn import MTCNN

    return MTCNN(stages="face_and_landmarks_detection", device="CPU:0")


def _read_rgb(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def detect(images, detector=None, batch_size=16, min_confidence=0.9):
    """Five landmarks of the main face of every image.

    Args:
        images: list of uint8 RGB arrays (H, W, 3), sizes may differ.
        detector: an `mtcnn.MTCNN` (default: `make_detector()`), or any
            object with the same `detect_faces(list, box_format="xyxy",
            output_type="numpy")` returning rows `[image index, x1, y1, x2,
            y2, confidence, 5 x, 5 y]`.
        batch_size: images per detector call (same-size images only are
            batched together, to avoid padding).
        min_confidence: detections below it are ignored.

    Returns:
        (landmarks, confidence): float32 (n, 5, 2) pixel (x, y), NaN where no
        face was found, and float32 (n,) confidence (0 where none).
    """
    detector = detector or make_detector()
    n = len(images)
    landmarks = np.full((n, 5, 2), np.nan, dtype="float32")
    confidence = np.zeros(n, dtype="float32")
    by_shape = {}
    for i, im in enumerate(images):
        by_shape.setdefault(tuple(np.shape(im)), []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            rows = _detect_batch(detector, [images[i] for i in chunk])
            for j, i in enumerate(chunk):
                faces = rows[(rows[:, 0] == j) & (rows[:, 5] >= min_confidence)]
                if len(faces):
                    area = (faces[:, 3] - faces[:, 1]) * (faces[:, 4] - faces[:, 2])
                    best = faces[int(np.argmax(area))]
                    landmarks[i] = np.stack([best[6:11], best[11:16]], axis=-1)
                    confidence[i] = best[5]
    return landmarks, confidence


def _detect_batch(detector, images):
    try:
        rows = detector.detect_faces(list(images), box_format="xyxy", output_type="numpy")
    except Exception:  # noqa: BLE001 -- mtcnn 1.0 can fail on a batch without faces; retry one by one
        if len(images) == 1:
            return np.empty((0, 16))
        parts = []
        for j, im in enumerate(images):
            r = _detect_batch(detector, [im])
            if len(r):
                r = np.array(r, dtype="float64")
                r[:, 0] = j
                parts.append(r)
        return np.concatenate(parts) if parts else np.empty((0, 16))
    rows = np.asarray(rows, dtype="float64").reshape(-1, 16) if np.size(rows) else np.empty((0, 16))
    return rows


def _image_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]


def _fill_value(landmarks, sizes):
    """Median landmarks of the faces with landmarks, relative to the image size."""
    ok = np.all(np.isfinite(landmarks), axis=(1, 2))
    if not ok.any():
        return None
    rel = (landmarks[ok] + 0.5) / sizes[ok][:, None, ::-1]  # (x / W, y / H)
    return np.median(rel, axis=0)


def write_landmarks_csv(ds, out_csv, *, detector=None, missing="fill", keep_existing=True, batch_size=16,
                        min_confidence=0.9, log=print):  # fmt: skip
    """Detect the landmarks of every face of `ds` and write the CSV files.

    Args:
        ds: a file-backed `AgeDataset` (`ds.paths`).
        out_csv: the CSV to write; the list of faces not found goes to
            `<stem>.not_found.csv` beside it.
        detector: see `detect`.
        missing: "fill", "nan" or "drop" (see the module docstring).
        keep_existing: keep the dataset's own landmarks where it has them.
        batch_size, min_confidence: see `detect`.
        log: progress printer (`None` for quiet).

    Returns:
        dict with `csv`, `not_found_csv`, `n`, `detected`, `existing`,
        `not_found` (list of paths), `missing`.
    """
    if missing not in ("fill", "nan", "drop"):
        raise ValueError(f"missing must be 'fill', 'nan' or 'drop'; got {missing!r}.")
    if ds.paths is None:
        raise ValueError("write_landmarks_csv needs a file-backed dataset (ds.paths).")
    out_csv = pathlib.Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    n = len(ds)
    has = np.all(np.isfinite(ds.landmarks), axis=(1, 2)) if keep_existing else np.zeros(n, bool)
    todo = np.flatnonzero(~has)
    landmarks = ds.landmarks.astype("float32").copy()
    landmarks[~has] = np.nan
    sizes = np.zeros((n, 2), dtype="float64")
    source = np.where(has, "dataset", "").astype(object)
    detector = detector or (make_detector() if len(todo) else None)
    start, chunk = time.time(), 256
    for s in range(0, len(todo), chunk):
        idx = todo[s:s + chunk]
        images = [_read_rgb(ds.paths[i]) for i in idx]
        sizes[idx] = [im.shape[:2] for im in images]
        found, _ = detect(images, detector, batch_size=batch_size, min_confidence=min_confidence)
        landmarks[idx] = found
        if log:
            log(f"  {min(s + chunk, len(todo))}/{len(todo)} images, {time.time() - start:.0f} s")
    detected = np.all(np.isfinite(landmarks), axis=(1, 2)) & ~has
    source[detected] = "mtcnn"
    not_found = np.flatnonzero(~has & ~detected)
    if missing == "fill" and len(not_found):
        known = has | detected
        for i in np.flatnonzero(known & (sizes[:, 0] == 0)):
            sizes[i] = _image_size(ds.paths[i])
        rel = _fill_value(landmarks[known], sizes[known])
        if rel is None:
            raise RuntimeError("No face has landmarks: nothing to fill the missing landmarks with.")
        for i in not_found:
            landmarks[i] = rel * sizes[i][::-1] - 0.5
        source[not_found] = "filled"
    not_found_csv = out_csv.with_suffix(".not_found.csv")
    with open(not_found_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age", "reason", "handled"])
        for i in not_found:
            w.writerow([os.path.abspath(ds.paths[i]), f"{ds.age[i]:g}", "no face found by MTCNN", missing])
    tmp = out_csv.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            if missing == "drop" and source[i] == "":
                continue
            pts = [] if not np.all(np.isfinite(landmarks[i])) else [f"{v:.2f}" for v in landmarks[i].reshape(-1)]
            w.writerow(
                [os.path.abspath(ds.paths[i]), f"{ds.age[i]:g}", _code(ds.gender[i]), _code(ds.race[i]),
                 ds.subject[i], *(pts or [""] * 10), source[i] or "none"]
            )  # fmt: skip
    os.replace(tmp, out_csv)
    result = {
        "csv": str(out_csv), "not_found_csv": str(not_found_csv), "n": n, "detected": int(detected.sum()),
        "existing": int(has.sum()), "not_found": [str(ds.paths[i]) for i in not_found], "missing": missing,
    }  # fmt: skip
    if log:
        log(f"{out_csv}: {n} faces, {result['existing']} with the dataset's landmarks, {result['detected']} "
            f"found by MTCNN, {len(not_found)} not found ({missing}; listed in {not_found_csv.name})")  # fmt: skip
    return result


def _code(value):
    return "" if int(value) < 0 else str(int(value))


def ensure_landmarks_csv(name, data_dir, out_csv=None, force=False, **kwargs):
    """The landmarks CSV of dataset `name` in `data_dir`, computed once and cached.

    Returns:
        The CSV path (load it with `agekeras.datasets.load("csv", path)`).
    """
    from agekeras import datasets

    out_csv = pathlib.Path(out_csv) if out_csv else landmarks_csv_path(name, data_dir)
    if out_csv.exists() and not force:
        return out_csv
    ds = datasets.load(name, data_dir)
    write_landmarks_csv(ds, out_csv, **kwargs)
    return out_csv


def similarity_to_template(points, size):
    """2 x 3 similarity (rotation, uniform scale, shift) sending the eye
    centres and the upper lip (mouth-corner midpoint) of `points` (5, 2) onto
    `ALIGN_TEMPLATE * size`, by least squares (Umeyama without reflection)."""
    src = np.stack([points[0], points[1], points[3:5].mean(0)]).astype("float64")
    dst = ALIGN_TEMPLATE * size
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / a.var(0).sum()
    shift = mu_d - scale * rot @ mu_s
    return np.c_[scale * rot, shift]


def write_aligned_crops(csv_path, aligned_dir, size=256, log=print):
    """Aligned crops of every row of a landmarks CSV, and their own CSV.

    Returns:
        The path of `<aligned_dir>/landmarks.csv` (landmarks moved along).
    """
    from PIL import Image

    aligned_dir = pathlib.Path(aligned_dir)
    aligned_dir.mkdir(parents=True, exist_ok=True)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    out_csv = aligned_dir / "landmarks.csv"
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        w.writeheader()
        for k, row in enumerate(rows):
            if not row["lx0"]:
                continue
            pts = np.array([float(row[f"{a}{i}"]) for i in range(5) for a in ("lx", "ly")]).reshape(5, 2)
            m = similarity_to_template(pts + 0.5, size)  # continuous coordinates
            inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
            with Image.open(row["path"]) as im:
                crop = im.convert("RGB").transform((size, size), Image.AFFINE, inv.reshape(-1).tolist(), Image.BILINEAR)
            target = aligned_dir / f"{k:06d}_{pathlib.Path(row['path']).stem}.png"
            crop.save(target)
            moved = (np.c_[pts + 0.5, np.ones(5)] @ m.T) - 0.5
            row.update({"path": str(target.resolve())})
            row.update({f"{a}{i}": f"{moved[i, j]:.2f}" for i in range(5) for j, a in enumerate(("lx", "ly"))})
            w.writerow(row)
    if log:
        log(f"aligned crops: {aligned_dir} ({out_csv.name})")
    return out_csv


def main(argv=None):
    """Run the command line; returns the result dict of `write_landmarks_csv`."""
    from agekeras.datasets.readers import READERS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=sorted(READERS), help="dataset reader")
    p.add_argument("--data-dir", required=True, help="the dataset folder")
    p.add_argument("--out", type=pathlib.Path, help="CSV to write (default: the cache path)")
    p.add_argument("--missing", default="fill", choices=["fill", "nan", "drop"])
    p.add_argument("--no-keep-existing", action="store_true", help="run MTCNN even where the dataset has landmarks")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--min-confidence", type=float, default=0.9)
    p.add_argument("--force", action="store_true", help="recompute an existing CSV")
    p.add_argument("--aligned-dir", type=pathlib.Path, help="also write aligned crops there")
    p.add_argument("--aligned-size", type=int, default=256)
    a = p.parse_args(argv)
    from agekeras import datasets

    out = a.out or landmarks_csv_path(a.name, a.data_dir)
    if out.exists() and not a.force:
        print(f"{out} exists (use --force to recompute)")
        result = {"csv": str(out)}
    else:
        ds = datasets.load(a.name, a.data_dir)
        result = write_landmarks_csv(
            ds, out, missing=a.missing, keep_existing=not a.no_keep_existing,
            batch_size=a.batch_size, min_confidence=a.min_confidence,
        )  # fmt: skip
    if a.aligned_dir:
        result["aligned_csv"] = str(write_aligned_crops(out, a.aligned_dir, a.aligned_size))
    return result


if __name__ == "__main__":
    main()
