"""Readers: turn a dataset folder, as its authors distribute it, into an `AgeDataset`.

Every reader is tolerant: rows it cannot use (malformed file names, ages out
of range, labels it cannot map, files listed but missing) are dropped and
counted in `AgeDataset.skipped` with their reason, never silently. Readers do
not open images; `agekeras.datasets.validate` does that once, afterwards.

Rows come out in a stable order (files sorted by path, list files in their
own order), so a seeded split of the same folder is the same on every
machine.

Race codes follow UTKFace: 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others.
Gender: 0 male, 1 female, -1 unknown.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
import re
from collections.abc import Callable

import numpy as np

from agekeras.ages import ADIENCE_GROUP_NAMES, ADIENCE_GROUPS, nearest_group  # noqa: F401

from .base import AgeDataset, SkipReport

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


_GENDER_WORDS = {"m": 0, "male": 0, "man": 0, "0": 0, "f": 1, "female": 1, "woman": 1, "1": 1}
_RACE_WORDS = {
    "w": 0, "white": 0, "caucasian": 0,
    "b": 1, "black": 1, "african": 1, "african-american": 1,
    "a": 2, "asian": 2,
    "i": 3, "indian": 3,
    "h": 4, "hispanic": 4, "o": 4, "other": 4, "others": 4,
}  # fmt: skip


# ----------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class _Rows:
    """Column lists a reader appends to, then turns into an `AgeDataset`."""

    paths: list = dataclasses.field(default_factory=list)
    age: list = dataclasses.field(default_factory=list)
    gender: list = dataclasses.field(default_factory=list)
    race: list = dataclasses.field(default_factory=list)
    subject: list = dataclasses.field(default_factory=list)
    age_std: list = dataclasses.field(default_factory=list)
    group: list = dataclasses.field(default_factory=list)
    landmarks: list = dataclasses.field(default_factory=list)
    split: list = dataclasses.field(default_factory=list)
    skipped: SkipReport = dataclasses.field(default_factory=SkipReport)

    def add(self, path, age, *, gender=-1, race=-1, subject="", age_std=np.nan,
            group=-1, landmarks=None, split=""):  # fmt: skip
        self.paths.append(os.fspath(path))
        self.age.append(age)
        self.gender.append(gender)
        self.race.append(race)
        self.subject.append(subject)
        self.age_std.append(age_std)
        self.group.append(group)
        self.landmarks.append(_NAN_LANDMARKS if landmarks is None else landmarks)
        self.split.append(split)

    def build(self, name: str, *, group_names: tuple = ()) -> AgeDataset:
        split = np.asarray(self.split, dtype=str)
        official = {s: np.flatnonzero(split == s) for s in dict.fromkeys(self.split) if s}
        return AgeDataset(
            name=name,
            paths=np.asarray(self.paths, dtype=str),
            age=np.asarray(self.age, dtype="float32"),
            gender=np.asarray(self.gender, dtype="int32"),
            race=np.asarray(self.race, dtype="int32"),
            subject=np.asarray(self.subject, dtype=str),
            age_std=np.asarray(self.age_std, dtype="float32"),
            group=np.asarray(self.group, dtype="int32"),
            landmarks=np.asarray(self.landmarks, dtype="float32").reshape(-1, 5, 2),
            official=official,
            group_names=group_names,
            skipped=self.skipped,
        )


_NAN_LANDMARKS = np.full((5, 2), np.nan, dtype="float32")


def _require_dir(data_dir, name: str, layout: str) -> pathlib.Path:
    root = pathlib.Path(data_dir).expanduser()
    if not root.is_dir() or not any(root.iterdir()):
        raise FileNotFoundError(f"{name}: {root} is missing or empty. Expected layout:\n{layout}")
    return root


def _find_root(root: pathlib.Path, is_root: Callable[[pathlib.Path], bool], name: str, layout: str):
    """`root` or its only sub-folder satisfying `is_root` (archives unpack into one)."""
    if is_root(root):
        return root
    candidates = sorted(p for p in root.iterdir() if p.is_dir() and is_root(p))
    if len(candidates) == 1:
        return candidates[0]
    raise FileNotFoundError(
        f"{name}: {root} does not look like this dataset"
        + (f" (several candidates: {[c.name for c in candidates]})" if candidates else "")
        + f". Expected layout:\n{layout}"
    )


def _image_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """Image files under `folder` (recursive), sorted by path."""
    return sorted(
        pathlib.Path(dirpath, f)
        for dirpath, _, files in os.walk(folder)
        for f in files
        if f.lower().endswith(IMAGE_SUFFIXES)
    )


def _in_range(age: float, min_age: float, max_age: float) -> bool:
    return min_age <= age <= max_age


def _norm(column: str) -> str:
    return re.sub(r"[^a-z0-9]", "", column.lower())


def _pick(header: list[str], aliases: tuple[str, ...]) -> int | None:
    """Index of the first column of `header` whose normalised name is in `aliases`."""
    normed = [_norm(h) for h in header]
    for alias in aliases:
        if alias in normed:
            return normed.index(alias)
    return None


def _read_table(path: pathlib.Path) -> list[list[str]]:
    """Rows of a comma/semicolon/tab separated file, delimiter sniffed."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [[c.strip() for c in row] for row in csv.reader(text.splitlines(), dialect) if row]


def _float(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _gender(value) -> int:
    return _GENDER_WORDS.get(str(value).strip().lower(), -1)


def _race(value) -> int:
    v = str(value).strip().lower()
    if v.isdigit() and int(v) <= 4:
        return int(v)
    return _RACE_WORDS.get(v, -1)


def ibug68_to_5(points: np.ndarray) -> np.ndarray:
    """Reduce 68 iBUG/300-W landmarks to our 5 (x, y) points.

    Left eye (image left) = mean of points 36-41, right eye = mean of 42-47,
    nose tip = 30, mouth corners = 48 and 54 (0-based indices).

    Args:
        points: float array (68, 2) of pixel (x, y).

    Returns:
        float32 array (5, 2).
    """
    p = np.asarray(points, dtype="float32").reshape(68, 2)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype("float32")


def fgnet68_to_5(points: np.ndarray) -> np.ndarray:
    """Reduce the 68 FG-NET landmarks to our 5 (x, y) points.

    FG-NET's `.pts` files do not use the iBUG/300-W order: 0-14 are the jaw,
    15-26 the brows, 27-30 the image-left eye contour with its pupil at 31,
    32-35 the image-right eye with its pupil at 36, 37-47 the nose with its
    tip at 67, and 48-65 the mouth with corners 48 (image left) and 54.
    Eyes are the two pupils, then nose tip 67 and mouth corners 48 and 54.

    Args:
        points: float array (68, 2) of pixel (x, y).

    Returns:
        float32 array (5, 2).
    """
    p = np.asarray(points, dtype="float32").reshape(68, 2)
    return p[[31, 36, 67, 48, 54]]


def read_pts(path) -> np.ndarray:
    """Points of an iBUG `.pts` file (`version`, `n_points`, then `{ x y ... }`).

    Args:
        path: the `.pts` file.

    Returns:
        float32 array (n_points, 2).
    """
    text = pathlib.Path(path).read_text(errors="replace")
    body = text[text.index("{") + 1 : text.rindex("}")]
    return np.asarray(body.split(), dtype="float32").reshape(-1, 2)


# ----------------------------------------------------------------------------
# UTKFace
# ----------------------------------------------------------------------------

UTKFACE_LAYOUT = """\
  <data_dir>/**/<age>_<gender>_<race>_<datetime>.jpg[.chip.jpg]
  e.g. UTKFace/1_0_0_20161219140623097.jpg.chip.jpg (aligned & cropped 200x200)
  or the "in the wild" part1/ part2/ part3/ with optional landmark_list_part*.txt"""

_UTKFACE_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)\.")


def read_utkface(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """UTKFace: labels are in the file names, `age_gender_race_datetime.jpg...`.

    Expected layout (every image under `data_dir`, any depth):

    ```
    <data_dir>/**/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg   # aligned & cropped
    <data_dir>/**/<age>_<gender>_<race>_<datetime>.jpg            # "in the wild"
    <data_dir>/**/landmark_list*.txt                              # optional, in the wild
    ```

    gender is 0 male / 1 female, race 0 White / 1 Black / 2 Asian / 3 Indian
    / 4 Others. A few real names lack a field (`61_1_20170109142408075.jpg.chip.jpg`):
    they are skipped as "unparseable name"; ages outside `[min_age, max_age]`
    as "age out of range". The in-the-wild `landmark_list_part*.txt` files
    (`<file name> x0 y0 ... x67 y67` per line) become 5-point landmarks; rows
    without an entry keep NaN. UTKFace has no subject ids. Point `data_dir`
    at one copy only (`UTKFace/` and `crop_part1/` hold the same faces).

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, gender, race (and landmarks when given).
    """
    root = _require_dir(data_dir, "utkface", UTKFACE_LAYOUT)
    marks = {}
    for txt in sorted(root.rglob("landmark_list*.txt")):
        for line in txt.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 137:
                marks[parts[0]] = ibug68_to_5(np.asarray(parts[1:], dtype="float32"))
    rows = _Rows()
    for path in _image_files(root):
        m = _UTKFACE_NAME.match(path.name)
        if not m or int(m[2]) > 1 or int(m[3]) > 4:
            rows.skipped.add("unparseable name", path.name)
            continue
        age = int(m[1])
        if not _in_range(age, min_age, max_age):
            rows.skipped.add("age out of range", path.name)
            continue
        rows.add(path, age, gender=int(m[2]), race=int(m[3]), landmarks=marks.get(path.name))
    return rows.build("utkface")


# ----------------------------------------------------------------------------
# AFAD
# ----------------------------------------------------------------------------

AFAD_LAYOUT = """\
  <data_dir>/<age>/<111|112>/*.jpg      (111 male, 112 female)
  e.g. AFAD-Lite/22/112/638427-0.jpg"""


def _is_afad_root(p: pathlib.Path) -> bool:
    return any(
        d.is_dir() and d.name.isdigit() and ((d / "111").is_dir() or (d / "112").is_dir())
        for d in p.iterdir()
    )


def _read_afad(name: str, data_dir, min_age: float, max_age: float) -> AgeDataset:
    root = _find_root(_require_dir(data_dir, name, AFAD_LAYOUT), _is_afad_root, name, AFAD_LAYOUT)
    rows = _Rows()
    for age_dir in sorted((d for d in root.iterdir() if d.is_dir() and d.name.isdigit()),
                          key=lambda d: int(d.name)):  # fmt: skip
        age = int(age_dir.name)
        for code, gender in (("111", 0), ("112", 1)):
            for path in _image_files(age_dir / code) if (age_dir / code).is_dir() else ():
                if not _in_range(age, min_age, max_age):
                    rows.skipped.add("age out of range", path.relative_to(root))
                    continue
                rows.add(path, age, gender=gender)
    return rows.build(name)


def read_afad(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """AFAD-Full (Asian Face Age Dataset): labels are folder names.

    Expected layout (the extracted `AFAD-Full/` folder or its parent):

    ```
    <data_dir>/<age>/111/*.jpg   # male
    <data_dir>/<age>/112/*.jpg   # female
    ```

    Other folders are ignored. No subject ids.

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age and gender.
    """
    return _read_afad("afad", data_dir, min_age, max_age)


def read_afad_lite(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """AFAD-Lite: the same layout as `read_afad` (folder `AFAD-Lite/`).

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age and gender.
    """
    return _read_afad("afad_lite", data_dir, min_age, max_age)


# ----------------------------------------------------------------------------
# FG-NET
# ----------------------------------------------------------------------------

FGNET_LAYOUT = """\
  <data_dir>/images/NNNAyy[a-z].JPG     (subject NNN, age yy; any case)
  <data_dir>/points/nnnayy[a-z].pts     (optional, 68 FG-NET points)
  <data_dir>/annotations.csv            (optional: filename,person_id,age)"""

_FGNET_NAME = re.compile(r"^(\d{3})a(\d{2})[a-z]?\.(jpe?g|png|bmp|gif)$", re.IGNORECASE)


def read_fgnet(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """FG-NET Aging Database: 1,002 images of 82 subjects, ages 0-69.

    Expected layout:

    ```
    <data_dir>/images/001A02.JPG ... 082A65.JPG   # subject 001, age 02; suffix letters
                                                  # as in 001A43a.JPG allowed; any case
    <data_dir>/points/001a02.pts ...              # optional, 68 FG-NET points
    <data_dir>/annotations.csv                    # optional: filename,person_id,age
    ```

    Images may also sit directly in `data_dir`. When `annotations.csv` lists
    a file, its age and person id win over the name; otherwise they come from
    the name. Subjects are zero-padded 3-digit strings ("001"). The 68 points
    of `points/<lower-case stem>.pts` (FG-NET's own markup, not iBUG's) are
    reduced to 5 with `fgnet68_to_5` (pixel coordinates of the original
    image); a missing `.pts` leaves NaN.
    Images are a mix of RGB and grayscale JPEGs.

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, subject and landmarks.
    """
    root = _require_dir(data_dir, "fgnet", FGNET_LAYOUT)
    image_dir = root / "images" if (root / "images").is_dir() else root
    points_dir = root / "points"
    labels = {}
    if (root / "annotations.csv").is_file():
        table = _read_table(root / "annotations.csv")
        header, body = table[0], table[1:]
        i_name = _pick(header, ("filename", "file", "image", "name", "path"))
        i_subj = _pick(header, ("personid", "subject", "subjectid", "person", "id"))
        i_age = _pick(header, ("age",))
        if None in (i_name, i_subj, i_age):
            raise ValueError(
                f"fgnet: {root / 'annotations.csv'} needs filename, person_id and age columns; got {header}."
            )
        for row in body:
            if len(row) > max(i_name, i_subj, i_age):
                labels[row[i_name].lower()] = (row[i_subj], row[i_age])
    rows = _Rows()
    for path in _image_files(image_dir):
        m = _FGNET_NAME.match(path.name)
        subject, age = labels.get(path.name.lower(), (m[1], m[2]) if m else (None, None))
        age = _float(age)
        if subject is None or age is None:
            rows.skipped.add("unparseable name", path.name)
            continue
        if not _in_range(age, min_age, max_age):
            rows.skipped.add("age out of range", path.name)
            continue
        pts = points_dir / (path.stem.lower() + ".pts")
        landmarks = None
        if pts.is_file():
            points = read_pts(pts)
            if len(points) == 68:
                landmarks = fgnet68_to_5(points)
        subject = f"{int(subject):03d}" if str(subject).isdigit() else str(subject)
        rows.add(path, age, subject=subject, landmarks=landmarks)
    return rows.build("fgnet")


# ----------------------------------------------------------------------------
# Adience
# ----------------------------------------------------------------------------

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
    root = _find_root(
        _require_dir(data_dir, "adience", ADIENCE_LAYOUT),
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
    rows = _Rows()
    for k in range(5):
        fold_file = root / f"fold_{k}_data.txt"
        if not fold_file.is_file():
            raise FileNotFoundError(f"adience: {fold_file} is missing. Expected layout:\n{ADIENCE_LAYOUT}")
        table = [
            line.split("\t") for line in fold_file.read_text(errors="replace").splitlines() if line.strip()
        ]
        header, body = [h.strip() for h in table[0]], table[1:]
        cols = {
            c: _pick(header, (c.replace("_", ""),))
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
            rows.add(path, midpoints[group], gender=_gender(row[cols["gender"]]),
                     subject=user, group=group, split=f"fold_{k}")  # fmt: skip
    return rows.build("adience", group_names=ADIENCE_GROUP_NAMES)


# ----------------------------------------------------------------------------
# MegaAge-Asian
# ----------------------------------------------------------------------------

MEGAAGE_LAYOUT = """\
  <data_dir>/list/train_name.txt, train_age.txt, test_name.txt, test_age.txt
  <data_dir>/train/<name>, <data_dir>/test/<name>"""


def read_megaage_asian(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """MegaAge-Asian: official list files give the train/test protocol.

    Expected layout (the extracted `megaage_asian/` folder or its parent):

    ```
    <data_dir>/list/train_name.txt   # one image name per line ("1.jpg")
    <data_dir>/list/train_age.txt    # one age per line, same order
    <data_dir>/list/test_name.txt    # 3,945 names in the official release
    <data_dir>/list/test_age.txt
    <data_dir>/train/<name>  <data_dir>/test/<name>
    ```

    Name and age lists of different lengths raise `ValueError` (labels would
    be misaligned). `official` holds "train" and "test".

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age and `official` train/test.
    """
    root = _find_root(
        _require_dir(data_dir, "megaage_asian", MEGAAGE_LAYOUT),
        lambda p: (p / "list" / "train_name.txt").is_file(), "megaage_asian", MEGAAGE_LAYOUT,
    )  # fmt: skip
    rows = _Rows()
    for split in ("train", "test"):
        names_file, ages_file = root / "list" / f"{split}_name.txt", root / "list" / f"{split}_age.txt"
        if not (names_file.is_file() and ages_file.is_file()):
            raise FileNotFoundError(
                f"megaage_asian: {names_file} or {ages_file.name} is missing. "
                f"Expected layout:\n{MEGAAGE_LAYOUT}"
            )
        names = names_file.read_text().split()
        ages = ages_file.read_text().split()
        if len(names) != len(ages):
            raise ValueError(f"megaage_asian: {len(names)} names but {len(ages)} ages for {split}.")
        for name, age_text in zip(names, ages, strict=True):
            age = _float(age_text)
            if age is None:
                rows.skipped.add("missing age", f"{split}/{name}")
                continue
            if not _in_range(age, min_age, max_age):
                rows.skipped.add("age out of range", f"{split}/{name}")
                continue
            path = root / split / name
            if not path.is_file():
                rows.skipped.add("missing file", f"{split}/{name}")
                continue
            rows.add(path, age, split=split)
    return rows.build("megaage_asian")


# ----------------------------------------------------------------------------
# ChaLearn LAP 2015 / 2016 and APPA-REAL (apparent age)
# ----------------------------------------------------------------------------

APPARENT_LAYOUT = """\
  <data_dir>/<label file per split>.csv  with image name, apparent age mean, std
    LAP 2015:  Train.csv, Validation.csv[, Test.csv]           images in Train/ Validation/ Test/
    LAP 2016:  gt_avg_train.csv or train_gt.csv, valid..., test...  images in train/ valid/ test/
    APPA-REAL: gt_avg_train.csv, gt_avg_valid.csv, gt_avg_test.csv  images in train/ valid/ test/"""

_SPLIT_WORDS = {
    "train": ("train", "training", "trainingset"),
    "valid": ("valid", "validation", "val", "validationset"),
    "test": ("test", "testing", "testset"),
}
_NAME_COLUMNS = ("filename", "file", "image", "imagename", "img", "name", "path", "imagepath")
_MEAN_COLUMNS = (
    "apparentageavg",
    "apparentagemean",
    "apparentage",
    "mean",
    "meanage",
    "avg",
    "age",
    "apparent",
)
_STD_COLUMNS = ("apparentagestd", "std", "stdv", "stddev", "sd", "sigma", "apparentagestdv")


def _split_files(root: pathlib.Path, suffixes=(".csv", ".txt")) -> dict[str, pathlib.Path]:
    """Label file per split: names whose words include the split's word.

    When a split matches several files, one with "avg" in its name wins
    (APPA-REAL's `gt_avg_train.csv` over the per-rating `gt_train.csv`).
    """
    found = {}
    files = [p for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in suffixes]
    for split, words in _SPLIT_WORDS.items():
        matches = [p for p in files if set(re.split(r"[^a-z]+", p.stem.lower())) & set(words)]
        if len(matches) > 1:
            matches = [p for p in matches if "avg" in p.stem.lower()] or matches
        if len(matches) > 1:
            raise ValueError(f"{root}: several label files for {split}: {[p.name for p in matches]}.")
        if matches:
            found[split] = matches[0]
    return found


def _split_image_dir(root: pathlib.Path, split: str) -> pathlib.Path:
    for d in sorted(root.iterdir()):
        if d.is_dir() and _norm(d.name) in _SPLIT_WORDS[split]:
            return d
    return root


def _read_apparent(name, data_dir, *, target="apparent", face_crops=False, min_age=0, max_age=116):
    root = _require_dir(data_dir, name, APPARENT_LAYOUT)
    root = _find_root(root, lambda p: "train" in _split_files(p), name, APPARENT_LAYOUT)
    rows = _Rows()
    for split, label_file in _split_files(root).items():
        table = _read_table(label_file)
        has_header = _float(table[0][1] if len(table[0]) > 1 else None) is None
        header = table[0] if has_header else []
        i_name = _pick(header, _NAME_COLUMNS) if has_header else 0
        i_mean = _pick(header, _MEAN_COLUMNS) if has_header else 1
        i_std = _pick(header, _STD_COLUMNS) if has_header else 2
        if target == "real":
            i_mean = _pick(header, ("realage",))
        if i_name is None or i_mean is None:
            raise ValueError(
                f"{name}: {label_file.name} needs an image-name column {_NAME_COLUMNS} and a "
                f"{'real_age' if target == 'real' else 'mean'} column {_MEAN_COLUMNS}; got {header}."
            )
        image_dir = _split_image_dir(root, split)
        for row in table[1:] if has_header else table:
            age = _float(row[i_mean]) if len(row) > i_mean else None
            if age is None:
                rows.skipped.add("missing age", f"{label_file.name}: {row[:2]}")
                continue
            if not _in_range(age, min_age, max_age):
                rows.skipped.add("age out of range", f"{label_file.name}: {row[:2]}")
                continue
            file_name = row[i_name] + ("_face.jpg" if face_crops else "")
            path = next((p for p in (image_dir / file_name, root / file_name) if p.is_file()), None)
            if path is None:
                rows.skipped.add("missing file", f"{image_dir.name}/{file_name}")
                continue
            std = _float(row[i_std]) if i_std is not None and len(row) > i_std else None
            rows.add(path, age, age_std=np.nan if std is None else std, split=split)
    return rows.build(name)


def read_lap2015(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """ChaLearn LAP 2015 apparent age (ICCV '15).

    Expected layout: one label file per split, found by the split word in its
    name (train / valid, validation, val / test; any case, `.csv` or `.txt`),
    images in a folder named after the split (else `data_dir` itself):

    ```
    <data_dir>/Train.csv        <data_dir>/Train/image_1.jpg ...
    <data_dir>/Validation.csv   <data_dir>/Validation/...
    <data_dir>/Test.csv         <data_dir>/Test/...        # optional
    ```

    Label files are comma, semicolon or tab separated, with or without a
    header. With a header, columns are found by name (case and punctuation
    ignored): image = file_name / filename / image / image_name / name /
    path; mean = apparent_age_avg / apparent_age / mean / avg / age; std =
    apparent_age_std / std / stdv / stddev / sigma. Without one, columns are
    (image, mean, std). `age` is the apparent mean, `age_std` its std, and
    `official` holds the splits present ("train", "valid", "test").

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, age_std and `official` splits.
    """
    return _read_apparent("lap2015", data_dir, min_age=min_age, max_age=max_age)


def read_lap2016(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """ChaLearn LAP 2016 apparent age (CVPR '16): same rules as `read_lap2015`.

    ```
    <data_dir>/gt_avg_train.csv (or train_gt.csv)   <data_dir>/train/000000.jpg ...
    <data_dir>/gt_avg_valid.csv (or valid_gt.csv)   <data_dir>/valid/...
    <data_dir>/gt_avg_test.csv  (or test_gt.csv)    <data_dir>/test/...
    ```

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, age_std and `official` splits.
    """
    return _read_apparent("lap2016", data_dir, min_age=min_age, max_age=max_age)


def read_appa_real(data_dir, *, target: str = "apparent", face_crops: bool = False,
                   min_age: float = 0, max_age: float = 116) -> AgeDataset:  # fmt: skip
    """APPA-REAL (7,591 images: 4,113 train, 1,500 valid, 1,978 test).

    Expected layout (the extracted `appa-real-release/` folder or its parent):

    ```
    <data_dir>/gt_avg_train.csv   # file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age
    <data_dir>/gt_avg_valid.csv
    <data_dir>/gt_avg_test.csv
    <data_dir>/train/000000.jpg, 000000.jpg_face.jpg, ...
    <data_dir>/valid/...  <data_dir>/test/...
    ```

    Column rules as in `read_lap2015`; the per-rating `gt_train.csv` files
    are ignored when the `gt_avg_*` ones are present.

    Args:
        data_dir: the folder.
        target: "apparent" (age = apparent_age_avg, age_std = its std) or
            "real" (age = real_age; age_std still the apparent std).
        face_crops: read the released cropped faces `X.jpg_face.jpg` instead
            of the full images `X.jpg`.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, age_std and `official` train/valid/test.
    """
    if target not in ("apparent", "real"):
        raise ValueError(f"target must be 'apparent' or 'real'; got {target!r}.")
    return _read_apparent("appa_real", data_dir, target=target, face_crops=face_crops,
                          min_age=min_age, max_age=max_age)  # fmt: skip


# ----------------------------------------------------------------------------
# Tabular: MORPH II and generic CSV
# ----------------------------------------------------------------------------

CSV_LAYOUT = """\
  a CSV with a header: path, age[, gender, subject, race, age_std, group, lx0, ly0, ..., lx4, ly4]
  relative paths resolve against the CSV's folder"""
MORPH_LAYOUT = """\
  <data_dir>/<one .csv> with a header naming path (or photo/file/filename), age,
  gender (M/F), race (W/B/A/H/O) and optionally a subject id (id_num/subject);
  relative image paths resolve against the CSV's folder"""

_PATH_COLUMNS = ("path", "photo", "filepath", "filename", "file", "image", "img", "imagepath")
_SUBJECT_COLUMNS = ("subject", "subjectid", "idnum", "personid", "person", "id")


def _find_csv(data_dir, name: str, layout: str, prefer: str) -> pathlib.Path:
    path = pathlib.Path(data_dir).expanduser()
    if path.is_file():
        return path
    root = _require_dir(path, name, layout)
    csvs = sorted(root.glob("*.csv"))
    if len(csvs) > 1:
        csvs = [p for p in csvs if prefer in p.name.lower()] or csvs
    if len(csvs) != 1:
        raise FileNotFoundError(
            f"{name}: expected one .csv in {root}, found {[p.name for p in csvs]}; "
            f"pass the CSV file itself. Expected layout:\n{layout}"
        )
    return csvs[0]


def _read_tabular(name, csv_path, layout, *, image_dir=None, min_age=0, max_age=116):
    table = _read_table(csv_path)
    if not table:
        raise ValueError(f"{name}: {csv_path} is empty. Expected layout:\n{layout}")
    header, body = table[0], table[1:]
    cols = {
        "path": _pick(header, _PATH_COLUMNS),
        "age": _pick(header, ("age", "realage")),
        "gender": _pick(header, ("gender", "sex")),
        "race": _pick(header, ("race", "ethnicity")),
        "subject": _pick(header, _SUBJECT_COLUMNS),
        "age_std": _pick(header, ("agestd", "std")),
        "group": _pick(header, ("group", "agegroup")),
    }
    if cols["path"] is None or cols["age"] is None:
        raise ValueError(
            f"{name}: {csv_path.name} needs path and age columns; got {header}. Expected layout:\n{layout}"
        )
    marks = [_pick(header, (f"{axis}{k}",)) for k in range(5) for axis in ("lx", "ly")]
    base = pathlib.Path(image_dir).expanduser() if image_dir else csv_path.parent
    rows = _Rows()

    def cell(row, key, default=""):
        i = cols[key]
        return row[i] if i is not None and i < len(row) else default

    for row in body:
        age = _float(cell(row, "age"))
        if age is None:
            rows.skipped.add("missing age", cell(row, "path") or row)
            continue
        if not _in_range(age, min_age, max_age):
            rows.skipped.add("age out of range", cell(row, "path"))
            continue
        path = base / cell(row, "path")
        if not cell(row, "path") or not path.is_file():
            rows.skipped.add("missing file", cell(row, "path"))
            continue
        landmarks = None
        if None not in marks:
            values = [_float(row[i]) if i < len(row) else None for i in marks]
            if None not in values:
                landmarks = np.asarray(values, dtype="float32").reshape(5, 2)
        std, group = _float(cell(row, "age_std")), _float(cell(row, "group"))
        rows.add(
            path, age,
            gender=_gender(cell(row, "gender")), race=_race(cell(row, "race")),
            subject=cell(row, "subject"), age_std=np.nan if std is None else std,
            group=-1 if group is None else int(group), landmarks=landmarks,
        )  # fmt: skip
    return rows.build(name)


def read_morph2(data_dir, *, image_dir=None, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """MORPH II (Album 2) from a metadata CSV as commonly distributed.

    Expected layout: `data_dir` is the CSV, or a folder with one `.csv` (a
    name containing "morph" wins when there are several):

    ```
    photo,age,gender,race,id_num              # header; columns in any order
    Album2/246186_1M47.JPG,47,M,B,246186
    ```

    Columns are matched by name, case and punctuation ignored: path = path /
    photo / filepath / filename / file / image; age; gender / sex (M, F,
    male, female, 0, 1); race / ethnicity (W White, B Black, A Asian,
    I Indian, H Hispanic and O Other -> 4 "Others", or UTKFace codes 0-4);
    subject = subject / subject_id / id_num / person_id / id (optional, but
    `split(..., "morph_caucasian")` is subject-exclusive only with it).
    `official` is empty: use `split(ds, "random")` (80/20) or
    `split(ds, "morph_caucasian")`.

    Args:
        data_dir: the CSV or its folder.
        image_dir: folder relative image paths resolve against (default: the
            CSV's folder).
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, gender, race and subject.
    """
    csv_path = _find_csv(data_dir, "morph2", MORPH_LAYOUT, prefer="morph")
    return _read_tabular("morph2", csv_path, MORPH_LAYOUT, image_dir=image_dir,
                         min_age=min_age, max_age=max_age)  # fmt: skip


def read_csv(data_dir, *, image_dir=None, name: str = "csv", min_age: float = 0,
             max_age: float = 116) -> AgeDataset:  # fmt: skip
    """Any dataset described by a CSV with a header.

    Columns (matched by name, case and punctuation ignored): `path` and `age`
    (required); optional `gender` (0/1 or M/F), `subject`, `race` (0-4 or
    words), `age_std`, `group` and the 5 landmarks `lx0, ly0, ..., lx4, ly4`
    (pixels). The delimiter (comma, semicolon, tab) is sniffed. Relative
    paths resolve against the CSV's folder (or `image_dir`); rows whose
    image is missing are skipped as "missing file".

    Args:
        data_dir: the CSV, or a folder holding exactly one `.csv`.
        image_dir: folder relative paths resolve against.
        name: the dataset name to report.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset`.
    """
    csv_path = _find_csv(data_dir, name, CSV_LAYOUT, prefer=name)
    return _read_tabular(name, csv_path, CSV_LAYOUT, image_dir=image_dir,
                         min_age=min_age, max_age=max_age)  # fmt: skip


# ----------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReaderSpec:
    """How to read a dataset and where to get it.

    Attributes:
        reader: `reader(data_dir, **kwargs) -> AgeDataset`.
        layout: the expected folder layout, for error messages.
        homepage: the official page.
        download: True when `python -m data_prep.download` can fetch it anonymously.
    """

    reader: Callable[..., AgeDataset]
    layout: str
    homepage: str
    download: bool = False


READERS = {
    "utkface": ReaderSpec(read_utkface, UTKFACE_LAYOUT, "https://susanqq.github.io/UTKFace/"),
    "afad": ReaderSpec(read_afad, AFAD_LAYOUT, "https://afad-dataset.github.io/", download=True),
    "afad_lite": ReaderSpec(read_afad_lite, AFAD_LAYOUT, "https://afad-dataset.github.io/", download=True),
    "fgnet": ReaderSpec(read_fgnet, FGNET_LAYOUT, "FG-NET Aging Database (its original host is offline; "
                        "ask your course staff for the copy used in class)"),
    "adience": ReaderSpec(read_adience, ADIENCE_LAYOUT,
                          "https://talhassner.github.io/home/projects/Adience/Adience-data.html"),
    "megaage_asian": ReaderSpec(read_megaage_asian, MEGAAGE_LAYOUT, "http://mmlab.ie.cuhk.edu.hk/projects/MegaAge/"),
    "lap2015": ReaderSpec(read_lap2015, APPARENT_LAYOUT,
                          "https://chalearnlap.cvc.uab.cat/ (Apparent age V1, ICCV '15)"),
    "lap2016": ReaderSpec(read_lap2016, APPARENT_LAYOUT, "https://chalearnlap.cvc.uab.cat/dataset/19/description/"),
    "appa_real": ReaderSpec(read_appa_real, APPARENT_LAYOUT,
                            "https://chalearnlap.cvc.uab.cat/dataset/26/description/", download=True),
    "morph2": ReaderSpec(read_morph2, MORPH_LAYOUT,
                         "MORPH Album 2 (academic licence from the UNCW face aging group)"),
    "csv": ReaderSpec(read_csv, CSV_LAYOUT, "your own CSV"),
}  # fmt: skip
