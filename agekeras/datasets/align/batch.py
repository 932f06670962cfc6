"""Align whole datasets: aligned in-memory crops, landmarks CSV files, aligned crop files.

The command line `python -m agekeras align` is `add_arguments` + `run`:

    python -m agekeras align utkface --data-dir ~/agekeras_data/utkface
    python -m agekeras align fgnet --data-dir ~/agekeras_data/fgnet --out runs/fgnet_landmarks.csv
    python -m agekeras align utkface --data-dir ... --aligned-dir runs/utkface_aligned --aligned-size 256

For every face of the dataset (in the reader's order) the landmarks CSV gets
one row in the generic format of `agekeras.datasets.load("csv", ...)`:

    path,age,gender,race,subject,lx0,ly0,lx1,ly1,lx2,ly2,lx3,ly3,lx4,ly4,source

with absolute image paths, pixel landmarks (pixel centres at integers) in the
order of `agekeras.face_template` and `source` saying where the points come
from: "dataset" (the reader's own landmarks, e.g. FG-NET's 68 points reduced
to 5, kept unless `--no-keep-existing`), "mtcnn", or "filled".

Faces MTCNN does not find are never dropped silently: they are listed, with
the reason, in `<csv stem>.not_found.csv` beside the CSV and counted on the
console, and `--missing` says what their row gets: "fill" (default) the
median landmarks of the detected faces, scaled to the image (`source`
"filled"), so the dataset keeps every row and its seeded random split stays
the one of the original reader; "nan" empty landmark cells (the reader then
gives NaN, and DHAA's `AlignedRegionPooling` falls back to its canonical
face); "drop" no row. When an image holds several faces, the largest box
above `--min-confidence` wins (face crops hold the subject's face large and
centred). Detections go through the `DetectionCache`.

Default output: `~/.cache/agekeras/landmarks/<dataset>-<folder name>.csv`
(`landmarks_csv_path`); an existing CSV is reused unless `--force`. Images
are never copied; with `--aligned-dir`, aligned crops are written there
(`--aligned-template`, by default DHAA's: the eye centres and the upper lip at
fixed positions) plus a second CSV `<aligned-dir>/landmarks.csv` pointing at
them.
"""

from __future__ import annotations

import csv
import os
import pathlib
import sys
import time

import numpy as np

from ..base import AgeDataset
from ..images import ImageReadError, read_image
from ..readers import READERS
from ..validate import cache_dir
from .detection import detect_file_rows, select_faces
from .geometry import TEMPLATES, align_face, centre_crop, fit_template, get_template

HEADER = ["path", "age", "gender", "race", "subject"] + [f"{a}{k}" for k in range(5) for a in ("lx", "ly")] + ["source"]


def aligned_dataset(ds, align, *, size=None, detector=None, cache=True, min_confidence=0.9, log=None):
    """`ds` (file-backed) as an in-memory dataset of aligned face crops.

    The main (largest) face of each photo is aligned with `align`; photos
    where no face is found get the centre crop of the whole photo (the
    framing of the input pipeline) and are counted.

    Args:
        ds: a file-backed `AgeDataset`.
        align: a template name of `TEMPLATES`.
        size: crop side (default: the template's).
        detector, cache: see `detect_file_rows`.
        min_confidence: see `detect_faces`.
        log: optional printer.

    Returns:
        (aligned, report): an `AgeDataset` with `images` uint8 (n', size,
        size, 3) and the moved landmarks (unreadable files dropped), and a
        dict with `align`, `faces_missed`, `missed` (paths), `unreadable`
        and `detection_seconds`.

    Example:

    >>> aligned, report = aligned_dataset(load("fgnet", folder), "utkface")  # doctest: +SKIP
    >>> aligned.images.shape, report["faces_missed"]                         # doctest: +SKIP
    """
    t = get_template(align)
    size = int(size or t.size)
    if ds.paths is None:
        raise ValueError("aligned_dataset needs a file-backed dataset (ds.paths).")
    rows, errors, seconds = detect_file_rows(list(ds.paths), detector, cache=cache)
    keep, images, points, missed = [], [], [], []
    fallback = t.landmarks(size)  # centre crops: assume the canonical face
    for i, p in enumerate(ds.paths):
        if rows[i] is None:
            continue
        try:
            image = read_image(p)
        except ImageReadError as e:
            errors[p] = str(e)
            continue
        found = select_faces(rows[i], min_confidence)
        if found.faces:
            crop, pts = align_face(image, found.faces[0].landmarks, t, size)
        else:
            crop, pts = centre_crop(image, size), fallback.astype("float32")
            missed.append(str(p))
        keep.append(i)
        images.append(crop)
        points.append(pts)
    if not keep:
        raise ValueError(f"no readable image in {ds.name} ({len(ds)} rows)")
    sub = ds.subset(np.asarray(keep))
    out = AgeDataset(
        name=f"{ds.name}-{t.name}", age=sub.age, images=np.stack(images), gender=sub.gender, race=sub.race,
        subject=sub.subject, age_std=sub.age_std, group=sub.group, landmarks=np.stack(points),
    )  # fmt: skip
    missed_set = set(missed)
    found = [str(ds.paths[i]) not in missed_set for i in keep]  # per row of the aligned dataset
    report = {"align": t.name, "faces_missed": len(missed), "missed": missed, "found": found,
              "unreadable": len(errors), "detection_seconds": round(seconds, 2)}  # fmt: skip
    if log:
        log(f"{ds.name}: aligned {len(keep) - len(missed)} faces ({t.name}), {len(missed)} without a face found "
            f"(centre crop), {len(errors)} unreadable")  # fmt: skip
    return out, report


def landmarks_csv_path(name, data_dir):
    """The default cache path of a dataset's landmarks CSV.

    Example:

    >>> landmarks_csv_path("utkface", "~/agekeras_data/utkface").name  # doctest: +SKIP
    'utkface-utkface.csv'
    """
    return cache_dir() / "landmarks" / f"{name}-{pathlib.Path(data_dir).expanduser().resolve().name}.csv"


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


def write_landmarks_csv(ds, out_csv, *, detector=None, cache=True, missing="fill", keep_existing=True,
                        batch_size=16, min_confidence=0.9, log=print):  # fmt: skip
    """Detect the landmarks of every face of `ds` and write the CSV files.

    For every face of the dataset (in the reader's order) the CSV gets one
    row `path,age,gender,race,subject,lx0,ly0,...,lx4,ly4,source` with
    absolute image paths, pixel landmarks and `source` saying where the
    points come from: "dataset" (the reader's own landmarks, kept unless
    `keep_existing=False`), "mtcnn", "filled" or "none". When an image holds
    several faces, the largest box above `min_confidence` wins.

    Args:
        ds: a file-backed `AgeDataset` (`ds.paths`).
        out_csv: the CSV to write; the list of faces not found goes to
            `<stem>.not_found.csv` beside it.
        detector, cache: see `detect_file_rows`.
        missing: what the row of a face MTCNN does not find gets: "fill" the
            median landmarks of the detected faces, scaled to the image
            (keeps every row, so seeded splits stay those of the reader);
            "nan" empty landmark cells; "drop" no row. (An unreadable file
            cannot be filled: its row keeps empty cells unless dropped.)
        keep_existing: keep the dataset's own landmarks where it has them.
        batch_size: see `detect_rows`.
        min_confidence: detections below it are ignored.
        log: progress printer (`None` for quiet).

    Returns:
        dict with `csv`, `not_found_csv`, `n`, `detected`, `existing`,
        `not_found` (list of paths), `missing`.

    Example:

    >>> write_landmarks_csv(load("utkface", folder), "marks.csv")  # doctest: +SKIP
    """
    if missing not in ("fill", "nan", "drop"):
        raise ValueError(f"missing must be 'fill', 'nan' or 'drop'; got {missing!r}.")
    if ds.paths is None:
        raise ValueError("write_landmarks_csv needs a file-backed dataset (ds.paths).")
    out_csv = pathlib.Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    n = len(ds)
    has = ds.landmarks_found if keep_existing else np.zeros(n, bool)
    todo = np.flatnonzero(~has)
    landmarks = ds.landmarks.astype("float32").copy()
    landmarks[~has] = np.nan
    source = np.where(has, "dataset", "").astype(object)
    errors = {}
    if len(todo):
        start = time.time()

        def progress(done):
            log(f"  {done}/{len(todo)} images, {time.time() - start:.0f} s")

        rows, errors, _ = detect_file_rows([ds.paths[i] for i in todo], detector, cache=cache,
                                           batch_size=batch_size, chunk=256, progress=progress if log else None)  # fmt: skip
        for i, r in zip(todo, rows):
            found = select_faces(r, min_confidence) if r is not None else None
            if found and found.faces:
                landmarks[i] = found.faces[0].landmarks
    detected = np.all(np.isfinite(landmarks), axis=(1, 2)) & ~has
    source[detected] = "mtcnn"
    not_found = np.flatnonzero(~has & ~detected)
    if missing == "fill" and len(not_found):
        known = has | detected
        sizes = np.zeros((n, 2), dtype="float64")
        for i in np.flatnonzero(known):
            sizes[i] = _image_size(ds.paths[i])
        rel = _fill_value(landmarks[known], sizes[known])
        if rel is None:
            raise RuntimeError("No face has landmarks: nothing to fill the missing landmarks with.")
        for i in not_found:
            if ds.paths[i] not in errors:
                landmarks[i] = rel * np.asarray(_image_size(ds.paths[i]))[::-1] - 0.5
                source[i] = "filled"
    not_found_csv = out_csv.with_suffix(".not_found.csv")
    with open(not_found_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age", "reason", "handled"])
        for i in not_found:
            reason = errors.get(ds.paths[i], "no face found by MTCNN")
            handled = missing if missing != "fill" or source[i] == "filled" else "nan"
            w.writerow([os.path.abspath(ds.paths[i]), f"{ds.age[i]:g}", reason, handled])
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

    Args:
        name, data_dir: as for `agekeras.datasets.load`.
        out_csv: where to write it (default `landmarks_csv_path`).
        force: recompute an existing CSV.
        **kwargs: passed to `write_landmarks_csv`.

    Returns:
        The CSV path (load it with `agekeras.datasets.load("csv", path)`).

    Example:

    >>> marks = load("csv", ensure_landmarks_csv("fgnet", folder))  # doctest: +SKIP
    """
    from agekeras import datasets

    out_csv = pathlib.Path(out_csv) if out_csv else landmarks_csv_path(name, data_dir)
    if out_csv.exists() and not force:
        return out_csv
    ds = datasets.load(name, data_dir)
    write_landmarks_csv(ds, out_csv, **kwargs)
    return out_csv


def write_aligned_crops(csv_path, aligned_dir, size=256, template="dhaa", log=print):
    """Aligned crops of every row of a landmarks CSV, and their own CSV.

    Args:
        csv_path: a CSV of `write_landmarks_csv`.
        aligned_dir: where the crops (PNG) and `landmarks.csv` go.
        size: crop side in pixels.
        template: the alignment convention (default DHAA's).
        log: printer, or None.

    Returns:
        The path of `<aligned_dir>/landmarks.csv` (landmarks moved along).

    Example:

    >>> aligned = load("csv", write_aligned_crops("marks.csv", "aligned/"))  # doctest: +SKIP
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
            crop, moved = align_face(read_image(row["path"]), pts, template, size)
            target = aligned_dir / f"{k:06d}_{pathlib.Path(row['path']).stem}.png"
            Image.fromarray(crop).save(target)
            row.update({"path": str(target.resolve())})
            row.update({f"{a}{i}": f"{moved[i, j]:.2f}" for i in range(5) for j, a in enumerate(("lx", "ly"))})
            w.writerow(row)
    if log:
        log(f"aligned crops: {aligned_dir} ({out_csv.name})")
    return out_csv


def fit_template_from_csv(csv_path, size, log=print):
    """Fit a template (`fit_template`) to the rows of a landmarks CSV whose
    points MTCNN found (filled rows and the dataset's own are left out).

    Args:
        csv_path: a CSV of `write_landmarks_csv` over aligned crops.
        size: the crops' side in pixels (200 for UTKFace).
        log: printer, or None.

    Returns:
        dict with `template` (5 x 2 relative positions), `faces`, and the mean
        and median per-face residual in pixels (`residual_px`,
        `residual_median_px`).

    Example:

    >>> fit_template_from_csv("utkface-marks.csv", 200)["template"]  # doctest: +SKIP
    """
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "mtcnn"]
    if not rows:
        raise ValueError(f"{csv_path}: no row with landmarks found by MTCNN to fit a template to.")
    pts = np.array([[float(r[f"{a}{i}"]) for i in range(5) for a in ("lx", "ly")] for r in rows]).reshape(-1, 5, 2)
    points, residual = fit_template(pts, size)
    result = {"template": np.round(points, 4).tolist(), "faces": len(residual),
              "residual_px": float(residual.mean()), "residual_median_px": float(np.median(residual))}  # fmt: skip
    if log:
        log(f"template of {len(residual)} faces ({size} px crops): {result['template']}")
        log(f"residual after a similarity fit: mean {residual.mean():.2f} px, median {np.median(residual):.2f} px "
            f"per point at {size} px")
    return result


def add_arguments(parser):
    """Add the options of `python -m agekeras align` to `parser`.

    Args:
        parser: an `argparse.ArgumentParser` (or a sub-command's parser).

    Returns:
        The parser.

    Example:

    >>> import argparse
    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(["fgnet", "--data-dir", "data/fgnet"])
    >>> args.missing, args.aligned_template
    ('fill', 'dhaa')
    """
    p = parser
    p.add_argument("name", choices=sorted(READERS), help="dataset reader")
    p.add_argument("--data-dir", required=True, help="the dataset folder")
    p.add_argument("--out", type=pathlib.Path, help="CSV to write (default: the cache path)")
    p.add_argument("--missing", default="fill", choices=["fill", "nan", "drop"],
                   help="row of a face MTCNN does not find: median landmarks (fill), empty cells (nan) or none (drop)")
    p.add_argument("--no-keep-existing", action="store_true", help="run MTCNN even where the dataset has landmarks")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--min-confidence", type=float, default=0.9)
    p.add_argument("--force", action="store_true", help="recompute an existing CSV")
    p.add_argument("--aligned-dir", type=pathlib.Path, help="also write aligned crops there")
    p.add_argument("--aligned-size", type=int, default=256)
    p.add_argument("--aligned-template", default="dhaa", choices=sorted(TEMPLATES),
                   help="alignment convention of the crops (default: DHAA's eyes + upper lip)")
    p.add_argument("--fit-template", type=int, metavar="CROP_SIZE",
                   help="fit an alignment template to the MTCNN landmarks of already aligned crops of this size "
                        "(e.g. 200 for UTKFace) and print it with its residual")  # fmt: skip
    return parser


def run(args) -> int:
    """Run `python -m agekeras align` with the parsed `args` of `add_arguments`.

    Writes (or reuses) the landmarks CSV, then optionally fits a template
    and writes aligned crops; progress and results go to stdout.

    Args:
        args: the `argparse.Namespace`.

    Returns:
        The exit code: 0, or 2 with a message on stderr when the data is
        missing or unusable.

    Example:

    >>> run(add_arguments(argparse.ArgumentParser()).parse_args(["fgnet", "--data-dir", "d"]))  # doctest: +SKIP
    """
    from agekeras import datasets

    out = args.out or landmarks_csv_path(args.name, args.data_dir)
    try:
        if out.exists() and not args.force:
            print(f"{out} exists (use --force to recompute)")
        else:
            ds = datasets.load(args.name, args.data_dir)
            write_landmarks_csv(ds, out, missing=args.missing, keep_existing=not args.no_keep_existing,
                                batch_size=args.batch_size, min_confidence=args.min_confidence)  # fmt: skip
        if args.fit_template:
            fit_template_from_csv(out, args.fit_template)
        if args.aligned_dir:
            write_aligned_crops(out, args.aligned_dir, args.aligned_size, args.aligned_template)
    except (FileNotFoundError, ValueError, RuntimeError, ModuleNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
