"""DHAA at work: what notebook 04 drives.

The model itself (`dhaa`, with a flag for every ablation) is built by
`agekeras.models.dhaa`; this module trains and evaluates it the way the
paper does:

| name | what |
|---|---|
| `PAPER_RESULTS` | the paper's numbers (Tables 1-2, 4-5), with table, dataset, protocol and pre-training |
| `paper_rows` | those numbers in the form `agekeras.tables.results_table(paper=...)` takes |
| `ABLATIONS`, `train_ablation_variant` | the variants of Table 1 / Fig. 5, trained with one config |
| `landmark_data` | the dataset of a notebook mode: a landmarks CSV when present, else synthetic faces |
| `face_arrays`, `rotate_faces` | the test faces and landmarks as arrays; faces turned by an angle, landmarks alike |
| `flip_averaged_outputs`, `evaluate_with_flip` | flip test-time averaging (Sec. 4.2) |
| `with_best_weights`, `last_epoch_was_best` | a model passed to `train`, holding its run's best weights |
| `classifier_maes` | MAE of the final and of each sub-network classifier (Fig. 6) |
| `fused_embeddings` | the fused feature (layer "embedding") for the t-SNE of Fig. 7 |
| `branch_parameter_counts` | parameters of the trunk, each sub-network and the fusion |
| `region_polygons`, `region_crops`, `plot_regions`, `plot_region_crops` | what ARP cuts out of a face (Fig. 2) |
| `training_speed` | images per second and peak memory of a DHAA training step |

Reference: Deeply-learned Hybrid Representations for Facial Age Estimation
(IJCAI 2019, https://doi.org/10.24963/ijcai.2019/492).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import keras
import numpy as np

from agekeras import plots
from agekeras.ages import expected_age
from agekeras.experiments.course import LANDMARKS_CSV
from agekeras.layers import AlignedRegionPooling
from agekeras.layers.aligned_region_pooling import DEFAULT_REGIONS, canonical_landmarks
from agekeras.models.dhaa import SUB_NETWORKS, build_dhaa
from agekeras.training import TrainConfig, architecture, train
from agekeras.evaluation import dataset_outputs, load_run, mean_over_views
from agekeras.runs import BEST, RunDir

# ----- the paper's numbers ---------------------------------------------------------

_MORPH = "MORPH II"
PAPER_RESULTS = [
    # Table 1 (branch ablation), MORPH 80-20 and Web-FaceAge; the row labels of
    # the single-branch rows are read from the order of the paper's text.
    {"method": "Res18+EX", "MAE": 2.331, "table": "Table 1", "dataset": _MORPH, "protocol": "80-20 random",
     "pretraining": "ImageNet"},
    {"method": "global", "MAE": 2.081, "table": "Table 1", "dataset": _MORPH, "protocol": "80-20 random",
     "pretraining": "ImageNet"},
    {"method": "local", "MAE": 2.194, "table": "Table 1", "dataset": _MORPH, "protocol": "80-20 random",
     "pretraining": "ImageNet"},
    {"method": "global-local", "MAE": 2.029, "table": "Table 1", "dataset": _MORPH, "protocol": "80-20 random",
     "pretraining": "ImageNet"},
    {"method": "global + local", "MAE": 1.989, "table": "Table 1", "dataset": _MORPH, "protocol": "80-20 random",
     "pretraining": "ImageNet"},
    {"method": "DHAA", "MAE": 1.908, "table": "Table 1 / 3", "dataset": _MORPH, "protocol": "80-20 random",
     "pretraining": "ImageNet"},
    {"method": "DHAA", "MAE": 2.487, "table": "Table 1 / 3", "dataset": _MORPH,
     "protocol": "partial 80-20 (5,493 Caucasian)", "pretraining": "ImageNet"},
    {"method": "DHAA", "MAE": 2.489, "table": "Table 1 / 3", "dataset": _MORPH, "protocol": "S1-S2-S3",
     "pretraining": "ImageNet"},
    {"method": "Res18+EX", "MAE": 3.739, "table": "Table 1 / 2", "dataset": "Web-FaceAge (private)",
     "protocol": "104,917 train / 20,000 test", "pretraining": "ImageNet"},
    {"method": "DHAA", "MAE": 3.549, "table": "Table 1 / 2", "dataset": "Web-FaceAge (private)",
     "protocol": "104,917 train / 20,000 test", "pretraining": "ImageNet"},
    # Table 4: FG-NET leave-one-person-out and CACD.
    {"method": "Res18+EX", "MAE": 4.260, "table": "Table 4", "dataset": "FG-NET", "protocol": "leave-one-person-out",
     "pretraining": "ImageNet"},
    {"method": "Res18+EX", "MAE": 2.977, "table": "Table 4", "dataset": "FG-NET", "protocol": "leave-one-person-out",
     "pretraining": "ImageNet + IMDB-WIKI"},
    {"method": "DHAA", "MAE": 3.721, "table": "Table 4", "dataset": "FG-NET", "protocol": "leave-one-person-out",
     "pretraining": "ImageNet"},
    {"method": "DHAA", "MAE": 2.595, "table": "Table 4", "dataset": "FG-NET", "protocol": "leave-one-person-out",
     "pretraining": "ImageNet + IMDB-WIKI"},
    {"method": "Res18+EX", "MAE": 4.511, "table": "Table 4", "dataset": "CACD",
     "protocol": "1,800 / 80 / 120 celebrities", "pretraining": "ImageNet"},
    {"method": "DHAA", "MAE": 4.347, "table": "Table 4", "dataset": "CACD",
     "protocol": "1,800 / 80 / 120 celebrities", "pretraining": "ImageNet"},
    # Table 5: ChaLearn LAP 2015, validation set.
    {"method": "Res18+EX", "MAE": 3.291, "epsilon": 0.286, "table": "Table 5", "dataset": "ChaLearn LAP 2015",
     "protocol": "validation set", "pretraining": "ImageNet + IMDB-WIKI"},
    {"method": "DHAA", "MAE": 3.052, "epsilon": 0.265, "table": "Table 5", "dataset": "ChaLearn LAP 2015",
     "protocol": "validation set", "pretraining": "ImageNet + IMDB-WIKI"},
]
"""The paper's MAE (years) and, for Table 5, its epsilon-error, one dict per
number. The Fig. 5 ablations (ROI pooling, FC fusion, no sub-network losses)
are bars whose labels the paper's text does not keep apart, so they are not
listed; the paper gives no parameter count."""

PAPER_SETTINGS = ("table", "dataset", "protocol", "pretraining", "size")
"""The setting keys of `PAPER_RESULTS` rows, for `results_table(settings=...)`."""


def paper_rows(methods=None, table=None, dataset=None, protocol=None):
    """The `paper=` argument of `agekeras.tables.results_table`: method label
    -> the paper's number and its setting.

    Args:
        methods: optional dict of our method label -> the paper's method name
            (e.g. `{"DHAA (ours)": "DHAA"}`); default: every method, by name.
        table: keep only the rows of this table number (e.g. 4).
        dataset, protocol: keep only rows whose dataset / protocol contains
            this text.

    Returns:
        dict of label -> the paper's row (without "method"). A method with
        several matching rows gets one entry per row, labelled
        `"<label>, <dataset>: <protocol> / <pretraining>"`.
    """
    rows = [
        r for r in PAPER_RESULTS
        if (table is None or int(table) in _table_numbers(r["table"]))
        and (dataset is None or dataset in r["dataset"])
        and (protocol is None or protocol in r["protocol"])
    ]  # fmt: skip
    wanted = methods or {r["method"]: r["method"] for r in rows}
    out = {}
    for label, name in wanted.items():
        mine = [r for r in rows if r["method"] == name]
        for r in mine:
            key = label if len(mine) == 1 else f"{label}, {r['dataset']}: {r['protocol']} / {r['pretraining']}"
            out[key] = {k: v for k, v in r.items() if k != "method"}
    return out


def _table_numbers(text):
    """"Table 1 / 3" -> {1, 3}."""
    return {int(t) for t in text.replace("/", " ").split() if t.isdigit()}


# ----- data -----------------------------------------------------------------------


def landmark_data(course, *, fallback_n=4000, quick_n=240, image_size=None):
    """`(dataset, data_dir, dataset_kwargs)` for `TrainConfig`, per mode.

    Quick mode uses `quick_n` synthetic faces (exact landmarks). Otherwise a
    UTKFace landmarks CSV (`--dataset csv`, `Course.landmarks_csv`); when
    none is found, one printed sentence says how to make it and `fallback_n`
    synthetic faces are used.

    Args:
        course: the notebook's `agekeras.experiments.course.Course`.
        fallback_n, quick_n: synthetic faces when no CSV is used.
        image_size: the synthetic faces' size (default: the training size).
    """
    synthetic = {"n": quick_n if course.quick else fallback_n}
    if image_size is not None:
        synthetic["image_size"] = int(image_size)
    if course.quick:
        return "synthetic", None, synthetic
    found = course.landmarks_csv()
    if found:
        return "csv", str(found), {}
    target = course.data_root / LANDMARKS_CSV  # the first place Course.landmarks_csv looks
    print(
        f"No UTKFace landmarks CSV found: using {synthetic['n']} synthetic faces instead (make it with "
        f"`python -m agekeras align utkface --data-dir {course.data_root / 'utkface'} --out {target}`)."
    )
    return "synthetic", None, synthetic


# ----- ablations (Table 1, Fig. 5) -------------------------------------------------

ABLATIONS = {
    "Res18+EX": ("resnet18_dex", {}),
    "global": ("dhaa", {"branches": ["global"]}),
    "local": ("dhaa", {"branches": ["local"]}),
    "global-local": ("dhaa", {"branches": ["global_local"]}),
    "global + local": ("dhaa", {"branches": ["global", "local"]}),
    "DHAA": ("dhaa", {}),
    "DHAA, ROI pooling": ("dhaa", {"pooling": "roi"}),
    "DHAA, FC fusion": ("dhaa", {"fusion": "fc"}),
    "DHAA, no sub-network losses": ("dhaa", {"sub_losses": False}),
}
"""The variants of Table 1 / Fig. 5: label -> (registry name, model kwargs)."""


def slug(label):
    """A file name for a variant label ("DHAA, FC fusion" -> "dhaa__fc_fusion")."""
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def train_ablation_variant(label, config, out_root, variants=None):
    """Train one variant of `ABLATIONS` with the settings of `config`.

    DHAA variants get `config.model_kwargs` (e.g. the quick-mode `width`) plus
    their own flags; the baseline gets none of them. The run goes to
    `out_root/<slug(label)>` (an existing run there resumes).

    Returns:
        `(run_dir, test metrics dict of agekeras.training.train)`.
    """
    name, kwargs = (variants or ABLATIONS)[label]
    base = dict(config.model_kwargs) if name == "dhaa" else {}
    run_dir = pathlib.Path(out_root) / slug(label)
    cfg = dataclasses.replace(config, model=name, model_kwargs={**base, **kwargs}, out=str(run_dir))
    return run_dir, train(cfg)


# ----- faces as arrays, rotated faces ---------------------------------------------------


def face_arrays(ds, image_size, batch_size=64):
    """`(images, landmarks, ages)` of every face of `ds` as the test pipeline
    reads them (resized to `image_size`, landmarks moved alike), in the order
    read: NumPy float32 images and landmarks, float64 ages."""
    from agekeras.datasets.pipeline import make_tf_dataset

    images, marks, ages = [], [], []
    for x, y in make_tf_dataset(ds, image_size=image_size, batch_size=batch_size, with_landmarks=True):
        images.append(x["image"].numpy())
        marks.append(x["landmarks"].numpy())
        ages.append(np.asarray(y["age"], "float64").reshape(-1))
    return np.concatenate(images), np.concatenate(marks), np.concatenate(ages)


def rotate_faces(images, landmarks, degrees):
    """Rotate every face by `degrees` about the image centre (positive: clockwise
    on screen, y pointing down), the landmarks with it; bilinear, borders mirrored.

    Args:
        images: `(n, H, W, C)` float array.
        landmarks: `(n, 5, 2)` pixel (x, y), pixel centres at integers.
        degrees: the angle.

    Returns:
        `(images, landmarks)`, float32, same shapes.
    """
    import tensorflow as tf

    images = np.asarray(images, "float32")
    height, width = images.shape[1:3]
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    t = np.deg2rad(float(degrees))
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # output = rot (input - c) + c
    moved = (np.asarray(landmarks, "float64") - centre) @ rot.T + centre
    inv = rot.T  # input = inv (output - c) + c, as the resampler reads it
    shift = centre - inv @ centre
    transform = np.array([inv[0, 0], inv[0, 1], shift[0], inv[1, 0], inv[1, 1], shift[1], 0.0, 0.0], "float32")
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=np.tile(transform, (len(images), 1)), output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )  # fmt: skip
    return warped.numpy(), moved.astype("float32")


# ----- flip test-time averaging -------------------------------------------------------


def flip_averaged_outputs(model, ds, image_size, batch_size=64, plain=None):
    """The model's outputs averaged over each face and its mirror image.

    Every output is the mean of the outputs on the image and on its mirror
    image (landmarks mirrored and left/right swapped, see
    `agekeras.evaluation.view_pipeline` and `agekeras.evaluation.mean_over_views`),
    so `age` is the expectation of the averaged `age_probs` (Sec. 4.2: the
    prediction of the test image and of its flipped copy are averaged).

    Args:
        model: a model with a dict of outputs.
        ds: an `AgeDataset`.
        image_size: the model's input size.
        batch_size: prediction batch size.
        plain: the un-flipped outputs if already computed (saves one pass).

    Returns:
        dict of NumPy arrays, one per output.
    """
    if plain is None:
        plain = dataset_outputs(model, ds, image_size, batch_size)
    return mean_over_views(plain, dataset_outputs(model, ds, image_size, batch_size, flip=True))


def last_epoch_was_best(run_dir):
    """Whether the run's last epoch scored best, so that best.keras holds the
    last epoch's weights (what `train` leaves in a model passed to it)."""
    run = RunDir(run_dir)
    state = run.read_state()
    scores = run.read_history().get(state.get("monitor"), np.array([]))
    if not len(scores) or state.get("best") is None or not np.isfinite(scores[-1]):
        return False
    return bool(np.isclose(scores[-1], state["best"], rtol=1e-9, atol=0.0) and np.all(scores[:-1] > scores[-1]))


def with_best_weights(model, run_dir):
    """`model`, the object `train(config, model=model)` trained in `run_dir`,
    holding the run's best.keras weights.

    `train` leaves the last epoch's weights in it: when the last epoch scored
    best they are already the best ones; otherwise the weights of best.keras
    are loaded into it (no model is rebuilt from the file).

    Raises:
        ValueError: `model` is not the architecture the run trained.
    """
    run = RunDir(run_dir)
    saved = run.read_config().get("model", {})
    mine = architecture(model)["fingerprint"]
    if saved.get("fingerprint") != mine:
        raise ValueError(f"{run.path} trained architecture {saved.get('fingerprint')}, not {mine}: pass that run's model")
    if not last_epoch_was_best(run.path):
        model.load_weights(run.checkpoint(BEST))
    return model


def evaluate_with_flip(run_dir, ds, checkpoint=BEST, batch_size=64, model=None):
    """Test MAE of a run with and without flip test-time averaging.

    Args:
        run_dir: the run.
        ds: the faces to score (an `AgeDataset`).
        checkpoint: best.keras or last.keras.
        batch_size: prediction batch size.
        model: optional, the object `train(config, model=model)` trained in
            `run_dir`: it is scored with the run's best weights
            (`with_best_weights`) instead of a model loaded from the file.

    Returns:
        `(row, outputs, model, age_min)`: row = dict with "MAE", "MAE flip"
        and "RMSE flip"; outputs = the flip-averaged outputs; the model scored
        and the run's `age_min` (from its config.json).
    """
    if model is None or checkpoint != BEST:
        model, config, saved = load_run(run_dir, checkpoint)
    else:
        model = with_best_weights(model, run_dir)
        saved = RunDir(run_dir).read_config()
        config = TrainConfig.from_json(saved["train"])
    age_min = saved["age_min"]
    plain, labels = dataset_outputs(model, ds, config.image_size, batch_size, with_labels=True)
    flipped = flip_averaged_outputs(model, ds, config.image_size, batch_size, plain=plain)
    true = np.asarray(labels["age"], "float64")  # the ages of the faces read, in order
    err = np.asarray(flipped["age"], "float64").reshape(-1) - true
    row = {
        "MAE": float(np.mean(np.abs(np.asarray(plain["age"], "float64").reshape(-1) - true))),
        "MAE flip": float(np.mean(np.abs(err))),
        "RMSE flip": float(np.sqrt(np.mean(err**2))),
    }
    return row, flipped, model, age_min


def classifier_maes(outputs, ages, age_min):
    """MAE of the expectation of every `age_probs*` output (Fig. 6).

    Returns:
        dict name -> MAE: "final" for `age_probs`, the sub-network name for
        `age_probs_<sub>`, in the order of `outputs`.
    """
    ages = np.asarray(ages, dtype="float64")
    result = {}
    for key, probs in outputs.items():
        if key.startswith("age_probs"):
            name = "final" if key == "age_probs" else key[len("age_probs_"):]
            result[name] = float(np.mean(np.abs(expected_age(probs, age_min) - ages)))
    return result


def fused_embeddings(model, ds, image_size, batch_size=64, layer="embedding"):
    """The output of `layer` for every face of `ds`: DHAA's fused feature
    (the concatenated branch features) or the pooled feature of the
    baselines, both named "embedding"."""
    features = keras.Model(model.inputs, {"embedding": model.get_layer(layer).output})
    return np.asarray(dataset_outputs(features, ds, image_size, batch_size)["embedding"])


# ----- the model -------------------------------------------------------------------


def sub_network_names(model):
    """Names of the sub-networks whose classifier is an output of `model`."""
    return [k[len("age_probs_"):] for k in model.output if k.startswith("age_probs_")]


def branch_parameter_counts(model):
    """Parameters of a DHAA model: total, shared trunk (stem + C_B1), each
    sub-network (its blocks, head conv/FC and classifier) and the fusion +
    final classifier (groups by the builder's layer-name prefixes)."""
    counts = {"total": model.count_params()}
    groups = {"trunk": ("conv1_", "pool1_", "c_b1")}
    for group in SUB_NETWORKS.values():
        for sub in group:
            groups[sub] = (f"{sub}_",)
    groups["fusion+final"] = tuple(f"{b}_fusion" for b in SUB_NETWORKS) + ("dex_head",)
    for key, prefixes in groups.items():
        n = sum(layer.count_params() for layer in model.layers if layer.name.startswith(prefixes))
        if n:
            counts[key] = n
    return counts


def training_speed(input_shape=(64, 64, 3), batch_size=16, steps=3, num_classes=101, **model_kwargs):
    """Training speed of DHAA on random data (after one warm-up step).

    Returns:
        dict with `img_per_s`, `params` and `peak_rss_mib`: the process's
        peak resident memory so far (`ru_maxrss`, KiB on Linux; None where
        the `resource` module is missing). It also counts whatever the
        process did before the call.
    """
    from agekeras.models import entry

    model = build_dhaa(input_shape=input_shape, num_classes=num_classes, **model_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **entry("dhaa").compile_args(model))
    rng = np.random.default_rng(0)
    x = {
        "image": rng.uniform(0, 255, (batch_size, *input_shape)).astype("float32"),
        "landmarks": (canonical_landmarks(input_shape[0])[None] + rng.normal(0, 1, (batch_size, 5, 2))).astype(
            "float32"
        ),
    }
    klass = rng.integers(0, num_classes, batch_size)
    y = {k: klass for k in model.output if k.startswith("age_probs")}
    y["age"] = klass.astype("float32")
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except ImportError:  # not on Linux / macOS
        peak = None
    return {"img_per_s": steps * batch_size / seconds, "params": model.count_params(), "peak_rss_mib": peak}


# ----- regions (Fig. 2) ---------------------------------------------------------------


def region_polygons(landmarks, image_size, regions=None, mode="affine"):
    """Corners of each ARP region in image pixels, for drawing.

    Args:
        landmarks: `(n, 5, 2)` pixel landmarks.
        image_size: int, the image size the landmarks refer to.
        regions: region names (default: all six).
        mode: "affine" or "roi".

    Returns:
        `(n, R, 4, 2)` continuous pixel coordinates (0 = left edge of the
        image) of the corners top-left, top-right, bottom-right, bottom-left.
    """
    arp = AlignedRegionPooling(4, image_size, regions=regions or DEFAULT_REGIONS, mode=mode)
    theta = keras.ops.convert_to_numpy(arp.region_thetas(np.asarray(landmarks, "float32")))
    corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], "float64")
    normalised = np.einsum("ck,nrdk->nrcd", corners, theta)
    return (normalised + 1.0) / 2.0 * image_size


def region_crops(images, landmarks, regions=None, mode="affine", crop_size=48):
    """What each region sees: ARP applied to the images themselves.

    Returns:
        dict region name -> `(n, crop_size, crop_size, 3)` array.
    """
    regions = tuple(regions or DEFAULT_REGIONS)
    images = np.asarray(images, "float32")
    arp = AlignedRegionPooling(crop_size, images.shape[1], regions=regions, mode=mode)
    crops = arp([images, np.asarray(landmarks, "float32")])
    return {r: keras.ops.convert_to_numpy(c) for r, c in zip(regions, crops)}


def plot_regions(images, landmarks, regions=None, mode="affine", title=None, save_to=None):
    """Faces with their landmarks and the outline of every ARP region."""
    regions = tuple(regions or DEFAULT_REGIONS)
    images = np.asarray(images, "float32")
    polys = region_polygons(landmarks, images.shape[1], regions, mode)
    return plots.plot_polygons(images, polys, labels=regions, points=landmarks, title=title or f"regions ({mode})",
                               save_to=save_to)


def plot_region_crops(images, landmarks, regions=None, mode="affine", crop_size=48, save_to=None):
    """One row per face, one column per region: the crop ARP takes."""
    crops = region_crops(images, landmarks, regions, mode, crop_size)
    names = list(crops)
    n = len(np.asarray(images))
    grid = np.stack([crops[r][i] for i in range(n) for r in names])
    titles = [f"{r} ({mode})" if i == 0 else "" for i in range(n) for r in names]
    return plots.plot_image_grid(grid, titles=titles, ncols=len(names), save_to=save_to)
