"""Detect faces and five landmarks with MTCNN; write a landmarks CSV per dataset.

    python -m data_prep.align_faces utkface --data-dir ../shared/datasets/utkface-dev
    python -m data_prep.align_faces fgnet --data-dir ../shared/datasets/fgnet --out runs/fgnet_landmarks.csv
    python -m data_prep.align_faces utkface --data-dir ... --aligned-dir runs/utkface_aligned --aligned-size 256

A command-line wrapper: detection, the CSV and the alignment live in
`agekeras.datasets.align` (run from the repository root, or with agekeras
installed).

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
import pathlib

from agekeras.datasets.align import (  # noqa: F401  (the functions this command wraps)
    HEADER,
    detect,
    ensure_landmarks_csv,
    landmarks_csv_path,
    make_detector,
    similarity_to_template,
    write_aligned_crops,
    write_landmarks_csv,
)
from agekeras.datasets.align import TEMPLATES as _TEMPLATES

# Aligned crops: eye centres and upper lip at these relative positions (the
# "dhaa" template of `agekeras.datasets.align`).
ALIGN_TEMPLATE = _TEMPLATES["dhaa"].points


def fit_template_from_csv(csv_path, size, log=print):
    """Fit a template (`agekeras.datasets.align.fit_template`) to the rows of a
    landmarks CSV whose points MTCNN found (filled rows are left out).

    Returns:
        dict with `template` (5 x 2 relative positions), `faces`, and the mean
        and median per-face `residual_px`.
    """
    import csv

    import numpy as np

    from agekeras.datasets.align import fit_template

    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "mtcnn"]
    pts = np.array([[float(r[f"{a}{i}"]) for i in range(5) for a in ("lx", "ly")] for r in rows]).reshape(-1, 5, 2)
    points, residual = fit_template(pts, size)
    result = {"template": np.round(points, 4).tolist(), "faces": len(residual),
              "residual_px": float(residual.mean()), "residual_median_px": float(np.median(residual))}
    if log:
        log(f"template of {len(residual)} faces ({size} px crops): {result['template']}")
        log(f"residual after a similarity fit: mean {residual.mean():.2f} px, median {np.median(residual):.2f} px "
            f"per point at {size} px")
    return result


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
    p.add_argument("--fit-template", type=int, metavar="CROP_SIZE",
                   help="fit an alignment template to the MTCNN landmarks of already aligned crops of this size "
                        "(e.g. 200 for UTKFace) and print it with its residual")
    p.add_argument("--aligned-template", default="dhaa", choices=sorted(_TEMPLATES),
                   help="alignment convention of the crops (default: DHAA's eyes + upper lip)")
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
    if a.fit_template:
        result.update(fit_template_from_csv(out, a.fit_template))
    if a.aligned_dir:
        result["aligned_csv"] = str(write_aligned_crops(out, a.aligned_dir, a.aligned_size, a.aligned_template))
    return result


if __name__ == "__main__":
    main()
