"""The readers by name, with each dataset's layout and where to get it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..base import AgeDataset
from .adience import ADIENCE_LAYOUT, read_adience
from .afad import AFAD_LAYOUT, read_afad, read_afad_lite
from .apparent import APPARENT_LAYOUT, read_appa_real, read_lap2015, read_lap2016
from .fgnet import FGNET_LAYOUT, read_fgnet
from .megaage import MEGAAGE_LAYOUT, read_megaage_asian
from .tabular import CSV_LAYOUT, MORPH_LAYOUT, read_csv, read_morph2
from .utkface import UTKFACE_LAYOUT, read_utkface


@dataclasses.dataclass(frozen=True)
class ReaderSpec:
    """How to read a dataset and where to get it.

    Attributes:
        reader: `reader(data_dir, **kwargs) -> AgeDataset`.
        layout: the expected folder layout, for error messages.
        homepage: the official page. (Which datasets can be downloaded
            anonymously is `agekeras.datasets.download.SOURCES`.)

    Example:

    >>> READERS["afad"].reader("~/agekeras_data/afad")  # doctest: +SKIP
    """

    reader: Callable[..., AgeDataset]
    layout: str
    homepage: str


READERS = {
    "utkface": ReaderSpec(read_utkface, UTKFACE_LAYOUT, "https://susanqq.github.io/UTKFace/"),
    "afad": ReaderSpec(read_afad, AFAD_LAYOUT, "https://afad-dataset.github.io/"),
    "afad_lite": ReaderSpec(read_afad_lite, AFAD_LAYOUT, "https://afad-dataset.github.io/"),
    "fgnet": ReaderSpec(read_fgnet, FGNET_LAYOUT, "FG-NET Aging Database (its original host is offline; "
                        "ask your course staff for the copy used in class)"),
    "adience": ReaderSpec(read_adience, ADIENCE_LAYOUT,
                          "https://talhassner.github.io/home/projects/Adience/Adience-data.html"),
    "megaage_asian": ReaderSpec(read_megaage_asian, MEGAAGE_LAYOUT, "http://mmlab.ie.cuhk.edu.hk/projects/MegaAge/"),
    "lap2015": ReaderSpec(read_lap2015, APPARENT_LAYOUT,
                          "https://chalearnlap.cvc.uab.cat/ (Apparent age V1, ICCV '15)"),
    "lap2016": ReaderSpec(read_lap2016, APPARENT_LAYOUT, "https://chalearnlap.cvc.uab.cat/dataset/19/description/"),
    "appa_real": ReaderSpec(read_appa_real, APPARENT_LAYOUT,
                            "https://chalearnlap.cvc.uab.cat/dataset/26/description/"),
    "morph2": ReaderSpec(read_morph2, MORPH_LAYOUT,
                         "MORPH Album 2 (academic licence from the UNCW face aging group)"),
    "csv": ReaderSpec(read_csv, CSV_LAYOUT, "your own CSV"),
}  # fmt: skip
