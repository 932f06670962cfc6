"""Adience: 8 age groups and 5 official subject-exclusive folds."""

from __future__ import annotations

import re

from agekeras.ages import ADIENCE_GROUP_NAMES, ADIENCE_GROUPS, nearest_group

from ..base import AgeDataset
from .common import Rows, find_root, gender_code, pick_column, require_dir

ADIENCE_LAYOUT = """\
  <data_dir>/fold_0_data.txt ... fold_4_data.txt   (tab-separated, with header)
  <data_dir>/faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>
    or <data_dir>/aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>"""


def adience_group(label: str) -> int:
    """Index into `ADIENCE_GROUPS` of an Adience age label, or -1.

    The 8 official groups are 0-2, 4-6, 8-13, 15-20, 25-32, 38-43, 48-53,
    60-100 (the files write 8-13 as "(8, 12)" and 38-43 also as "(38, 42)").
    A range "(a, b)" is placed by its midpoint, a single number "35" by
    itself: the group containing it, else the nearest group (distance to
    its interval; a tie goes to the younger group). This maps the odd labels
    of the release as follows:

    | label                  | group  |
    |------------------------|--------|
    | (8, 12)                | 8-13   |
    | (8, 23)  -> 15.5       | 15-20  |
    | (27, 32)               | 25-32  |
    | (38, 42), (38, 48)     | 38-43  |
    | 2, 3                   | 0-2    |
    | 13                     | 8-13   |
    | 22                     | 15-20  |
    | 23, 29, 32, 34, 35     | 25-32  |
    | 36, 42, 45             | 38-43  |
    | 46, 55, 56             | 48-53  |
    | 57, 58                 | 60-100 |

    "None", empty, non-numeric or values outside 0..100 give -1 (the reader
    skips those rows as "unmappable age label").

    Args:
        label: the `age` field of a fold file.

    Returns:
        Group index in 0..7, or -1.
    """
    numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", str(label))]
    if len(numbers) not in (1, 2):
        return -1
    value = sum(numbers) / len(numbers)
    if not 0 <= value <= 100:
        return -1
    return int(nearest_group([value])[0])


def read_adience(data_dir, *, images: str = "auto") -> AgeDataset:
    """Adience: 8 age groups, 5 official subject-exclusive folds.

    Expected layout:

    ```
    <data_dir>/fold_0_data.txt ... fold_4_data.txt
    <data_dir>/faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>
    <data_dir>/aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>
    ```

    Fold files are tab-separated with a header naming at least `user_id`,
    `original_image`, `face_id`, `age` (e.g. "(25, 32)") and `gender`
    (m / f / u). Age labels map to the 8 groups with `adience_group` (see its
    table); unmappable labels are skipped. `group` is the group index, `age`
    its midpoint (1, 5, 10.5, 17.5, 28.5, 40.5, 50.5, 80), `subject` the
    user id, and `official["fold_k"]` the rows of fold k (`split(ds,
    "official", fold=k)` tests on fold k and trains on the other four).

    Args:
        data_dir: the folder.
        images: "faces" (coarse tilt aligned), "aligned" (landmark aligned),
            or "auto": "faces" when that folder exists, else "aligned".

    Returns:
        An `AgeDataset` with age, group, gender, subject and `official` folds.
    """
    root = find_root(
        require_dir(data_dir, "adience", ADIENCE_LAYOUT),
        lambda p: (p / "fold_0_data.txt").is_file(), "adience", ADIENCE_LAYOUT,
    )  # fmt: skip
    if images == "auto":
        images = "faces" if (root / "faces").is_dir() else "aligned"
    if images not in ("faces", "aligned"):
        raise ValueError(f"images must be 'faces', 'aligned' or 'auto'; got {images!r}.")
    prefixes = ("coarse_tilt_aligned_face", "landmark_aligned_face")
    if images == "aligned":
        prefixes = prefixes[::-1]
    midpoints = [(lo + hi) / 2 for lo, hi in ADIENCE_GROUPS]
    rows = Rows()
    for k in range(5):
        fold_file = root / f"fold_{k}_data.txt"
        if not fold_file.is_file():
            raise FileNotFoundError(f"adience: {fold_file} is missing. Expected layout:\n{ADIENCE_LAYOUT}")
        table = [
            line.split("\t") for line in fold_file.read_text(errors="replace").splitlines() if line.strip()
        ]
        header, body = [h.strip() for h in table[0]], table[1:]
        cols = {
            c: pick_column(header, (c.replace("_", ""),))
            for c in ("user_id", "original_image", "face_id", "age", "gender")
        }
        if None in cols.values():
            missing = [c for c, i in cols.items() if i is None]
            raise ValueError(f"adience: {fold_file} header lacks {missing}; got {header}.")
        for row in body:
            row = [c.strip() for c in row]
            if len(row) <= max(cols.values()):
                rows.skipped.add("malformed line", f"{fold_file.name}: {row[:2]}")
                continue
            user, original, face_id = row[cols["user_id"]], row[cols["original_image"]], row[cols["face_id"]]
            group = adience_group(row[cols["age"]])
            if group < 0:
                rows.skipped.add("unmappable age label", f"{row[cols['age']]!r} ({user}/{original})")
                continue
            candidates = [root / images / user / f"{prefix}.{face_id}.{original}" for prefix in prefixes]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                rows.skipped.add("missing file", candidates[0].relative_to(root))
                continue
            rows.add(path, midpoints[group], gender=gender_code(row[cols["gender"]]),
                     subject=user, group=group, split=f"fold_{k}")  # fmt: skip
    return rows.build("adience", group_names=ADIENCE_GROUP_NAMES)
