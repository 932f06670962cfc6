"""Readers: turn a dataset folder, as its authors distribute it, into an `AgeDataset`.

One module per dataset family: `utkface`, `afad`, `fgnet` (with the 68-point
maps of `markup`), `adience`, `megaage`, `apparent` (ChaLearn LAP 2015 / 2016,
APPA-REAL), `tabular` (MORPH II and any CSV); `common` holds what they share
and `registry` the `READERS` by name. Every reader is importable from here:

```python
from agekeras.datasets import readers

ds = readers.read_fgnet("~/agekeras_data/fgnet")
readers.READERS["fgnet"].layout      # the folder layout it expects
```

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

from agekeras.ages import ADIENCE_GROUP_NAMES, ADIENCE_GROUPS

from ..images import IMAGE_SUFFIXES
from .adience import ADIENCE_LAYOUT, adience_group, read_adience
from .afad import AFAD_LAYOUT, read_afad, read_afad_lite
from .apparent import APPARENT_LAYOUT, read_appa_real, read_lap2015, read_lap2016
from .fgnet import FGNET_LAYOUT, read_fgnet
from .markup import fgnet68_to_5, ibug68_to_5, read_pts
from .megaage import MEGAAGE_LAYOUT, read_megaage_asian
from .registry import READERS, ReaderSpec
from .tabular import CSV_LAYOUT, MORPH_LAYOUT, read_csv, read_morph2
from .utkface import UTKFACE_LAYOUT, read_utkface

__all__ = [
    "ADIENCE_GROUPS",
    "ADIENCE_GROUP_NAMES",
    "ADIENCE_LAYOUT",
    "AFAD_LAYOUT",
    "APPARENT_LAYOUT",
    "CSV_LAYOUT",
    "FGNET_LAYOUT",
    "IMAGE_SUFFIXES",
    "MEGAAGE_LAYOUT",
    "MORPH_LAYOUT",
    "READERS",
    "ReaderSpec",
    "UTKFACE_LAYOUT",
    "adience_group",
    "fgnet68_to_5",
    "ibug68_to_5",
    "read_adience",
    "read_afad",
    "read_afad_lite",
    "read_appa_real",
    "read_csv",
    "read_fgnet",
    "read_lap2015",
    "read_lap2016",
    "read_megaage_asian",
    "read_morph2",
    "read_pts",
    "read_utkface",
]
