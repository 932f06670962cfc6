"""Every reader as a TFDS `GeneratorBasedBuilder`: `agekeras_<name>`.

Importing `agekeras.datasets` registers them, after which

```python
import tensorflow_datasets as tfds
import agekeras.datasets  # noqa: F401

ds = tfds.load(
    "agekeras_utkface",
    split="train",
    data_dir="~/tensorflow_datasets",
    download_and_prepare_kwargs={
        "download_config": tfds.download.DownloadConfig(manual_dir="path/to/UTKFace")
    },
)
```

works. The builders are thin: they call `agekeras.datasets.load` (reader +
validation, so broken files are dropped and odd formats converted) on the
manual folder and write what it returns. AFAD, AFAD-Lite and APPA-REAL are
downloaded (`agekeras.datasets.download.fetch`) when no `manual_dir` is
given; the others need `manual_dir` (their `MANUAL_DOWNLOAD_INSTRUCTIONS` say
where to get them and how to lay them out).

Features: `image` (encoded bytes as read, decoded to 3 channels), `age`
float32, `gender` and `race` int32 (-1 unknown), `subject` text, `age_std`
float32 (NaN unknown), `group` int32, `landmarks` float32 (5, 2) (NaN
unknown). Splits are the dataset's official ones (`fold_0`..`fold_4` for
Adience; train / valid / test for MegaAge, LAP, APPA-REAL), else one "train"
split.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from . import download
from .readers import READERS

_DESCRIPTIONS = {
    "utkface": "UTKFace: 20k+ faces, age 0-116, gender and race from file names.",
    "afad": "AFAD-Full: 165k Asian faces, age 15-75, gender.",
    "afad_lite": "AFAD-Lite: 60k Asian faces, age 15-40, gender.",
    "fgnet": "FG-NET: 1,002 images of 82 subjects, age 0-69, 5 landmarks.",
    "adience": "Adience: 8 age groups, gender, 5 subject-exclusive folds.",
    "megaage_asian": "MegaAge-Asian: 40k Asian faces, official train/test lists.",
    "lap2015": "ChaLearn LAP 2015: apparent age mean and std.",
    "lap2016": "ChaLearn LAP 2016: apparent age mean and std.",
    "appa_real": "APPA-REAL: 7,591 images, apparent age mean and std.",
    "morph2": "MORPH II: 55k mugshots, age, gender, race, subject ids.",
}


class AgeBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: subclasses set `name` and `DATASET` (an `agekeras.datasets` name)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    DATASET = ""

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=_DESCRIPTIONS[self.DATASET],
            homepage=READERS[self.DATASET].homepage,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "age": tfds.features.Scalar(np.float32),
                    "gender": tfds.features.Scalar(np.int32),
                    "race": tfds.features.Scalar(np.int32),
                    "subject": tfds.features.Text(),
                    "age_std": tfds.features.Scalar(np.float32),
                    "group": tfds.features.Scalar(np.int32),
                    "landmarks": tfds.features.Tensor(shape=(5, 2), dtype=np.float32),
                }
            ),
            supervised_keys=("image", "age"),
        )

    def _data_root(self, dl_manager):
        try:
            return dl_manager.manual_dir
        except AssertionError:
            if self.DATASET not in download.SOURCES:
                raise
        return download.fetch(self.DATASET, dl_manager.download_dir / self.name)

    def _split_generators(self, dl_manager):
        from . import load

        ds = load(self.DATASET, self._data_root(dl_manager))
        splits = ds.official or {"train": np.arange(len(ds))}
        return {name: self._generate_examples(ds, rows) for name, rows in splits.items()}

    def _generate_examples(self, ds, rows):
        for i in rows:
            yield (
                int(i),
                {
                    "image": ds.paths[i],
                    "age": ds.age[i],
                    "gender": ds.gender[i],
                    "race": ds.race[i],
                    "subject": ds.subject[i],
                    "age_std": ds.age_std[i],
                    "group": ds.group[i],
                    "landmarks": ds.landmarks[i],
                },
            )


def _instructions(name: str) -> str:
    spec = READERS[name]
    auto = " (optional: without it the builder downloads the data)" if name in download.SOURCES else ""
    return (
        f"Pass the dataset folder as manual_dir{auto}.\n"
        f"Official page: {spec.homepage}\nExpected layout:\n{spec.layout}\n"
    )


BUILDERS = {
    name: type(
        "Agekeras" + "".join(part.title() for part in name.split("_")),
        (AgeBuilder,),
        {
            "__module__": __name__,
            "__doc__": f"TFDS builder of `agekeras.datasets.load({name!r})`.",
            "name": f"agekeras_{name}",
            "DATASET": name,
            "MANUAL_DOWNLOAD_INSTRUCTIONS": _instructions(name),
        },
    )
    for name in READERS
    if name != "csv"
}
