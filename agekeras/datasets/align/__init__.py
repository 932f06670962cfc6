"""Face detection (MTCNN) and alignment to the framing a model was trained on.

```python
from agekeras.datasets import align

image = align.read_image("photo.jpg")                  # uint8 RGB, EXIF-rotated
found = align.detect_faces([image])[0]                 # every face of the photo
crop, points = align.align_face(image, found.faces[0].landmarks, "utkface")
crop.shape                                             # (200, 200, 3), UTKFace framing
```

Everything is importable from here; the code lives in three modules:

- `detection`: the MTCNN detector (`make_detector`, imported only when a
  detector is made), its entry points `detect_faces` (images -> chosen
  faces), `detect_rows` (images -> raw rows) and `detect_file_rows` (files
  -> raw rows through the `DetectionCache`), and `select_faces`.
- `geometry`: the templates (`TEMPLATES`: "utkface", "dhaa"), the
  similarity transform, `warp`, `align_face`, `centre_crop`, `fit_template`.
- `batch`: whole datasets: `aligned_dataset` (in-memory aligned crops for
  evaluation), `write_landmarks_csv` / `ensure_landmarks_csv` (a dataset's
  main-face landmarks as a CSV readable by `agekeras.datasets.load("csv",
  ...)`), `write_aligned_crops`, and the command line
  `python -m agekeras align` (`batch.add_arguments`, `batch.run`).

Images come from `agekeras.datasets.images` (`read_image`, `list_images`):
grayscale, palette, CMYK and 16-bit images become RGB, transparent ones are
put on white, the EXIF orientation is applied; an unreadable file raises
`ImageReadError` (a `ValueError`) with a one-line reason.
"""

from ..images import IMAGE_SUFFIXES, ImageReadError, list_images, read_image, to_rgb
from . import batch, detection, geometry
from .batch import (
    HEADER,
    aligned_dataset,
    ensure_landmarks_csv,
    fit_template_from_csv,
    landmarks_csv_path,
    write_aligned_crops,
    write_landmarks_csv,
)
from .detection import (
    DetectionCache,
    Detections,
    Face,
    detect_faces,
    detect_file_rows,
    detect_rows,
    make_detector,
    select_faces,
)
from .geometry import (
    TEMPLATES,
    Template,
    align_face,
    apply_transform,
    centre_crop,
    eyes_and_lip,
    fit_template,
    get_template,
    similarity_to_template,
    similarity_transform,
    warp,
)

__all__ = [
    "HEADER",
    "IMAGE_SUFFIXES",
    "TEMPLATES",
    "DetectionCache",
    "Detections",
    "Face",
    "ImageReadError",
    "Template",
    "align_face",
    "aligned_dataset",
    "apply_transform",
    "batch",
    "centre_crop",
    "detect_faces",
    "detect_file_rows",
    "detect_rows",
    "detection",
    "ensure_landmarks_csv",
    "eyes_and_lip",
    "fit_template",
    "fit_template_from_csv",
    "geometry",
    "get_template",
    "landmarks_csv_path",
    "list_images",
    "make_detector",
    "read_image",
    "select_faces",
    "similarity_to_template",
    "similarity_transform",
    "to_rgb",
    "warp",
]
