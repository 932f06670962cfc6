"""FG-NET Aging Database: labels in the file names or `annotations.csv`, 68 points per face."""

from __future__ import annotations

import re

from ..base import AgeDataset
from ..images import image_files
from .common import Rows, pick_column, read_table, require_dir, to_float
from .markup import fgnet68_to_5, read_pts

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
    root = require_dir(data_dir, "fgnet", FGNET_LAYOUT)
    image_dir = root / "images" if (root / "images").is_dir() else root
    points_dir = root / "points"
    labels = {}
    if (root / "annotations.csv").is_file():
        table = read_table(root / "annotations.csv")
        header, body = table[0], table[1:]
        i_name = pick_column(header, ("filename", "file", "image", "name", "path"))
        i_subj = pick_column(header, ("personid", "subject", "subjectid", "person", "id"))
        i_age = pick_column(header, ("age",))
        if None in (i_name, i_subj, i_age):
            raise ValueError(
                f"fgnet: {root / 'annotations.csv'} needs filename, person_id and age columns; got {header}."
            )
        for row in body:
            if len(row) > max(i_name, i_subj, i_age):
                labels[row[i_name].lower()] = (row[i_subj], row[i_age])
    rows = Rows()
    for path in image_files(image_dir):
        m = _FGNET_NAME.match(path.name)
        subject, age = labels.get(path.name.lower(), (m[1], m[2]) if m else (None, None))
        age = to_float(age)
        if subject is None or age is None:
            rows.skipped.add("unparseable name", path.name)
            continue
        if rows.checked_age(age, min_age, max_age, path.name) is None:
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
