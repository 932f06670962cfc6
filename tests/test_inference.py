"""`agekeras.predict`, the `predict` / `export` commands and `load_run`, on tiny
models and synthetic faces written as files (a fake detector stands in for
MTCNN; the real one runs in the slow and integration tests)."""

import csv
import json
import pathlib

import keras
import numpy as np
import pytest
from PIL import Image

import agekeras
from agekeras import cli, inference
from agekeras.datasets import align as A
from agekeras.datasets import load
from agekeras.models.baselines import age_model
from agekeras.training import TrainConfig
from agekeras.evaluation import load_run

SIZE = 32


def tiny_model(head="dex", gender=True, size=SIZE):
    def features(x):
        return keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)

    return age_model(features, input_shape=(size, size, 3), head=head, num_classes=70, age_min=1, name="tiny",
                     gender=gender)


def landmark_model(size=SIZE):
    image = keras.Input((size, size, 3), name="image")
    marks = keras.Input((5, 2), name="landmarks")
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(image), keras.layers.Flatten()(marks)])
    age = keras.layers.Reshape(())(keras.layers.Dense(1)(x))
    return keras.Model({"image": image, "landmarks": marks}, {"age": age}, name="marks")


def make_run(run_dir, model, align="utkface", image_size=SIZE, checkpoint="best.keras"):
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True)
    config = TrainConfig(dataset="utkface", image_size=image_size, align=align, out=str(run_dir))
    (run_dir / "config.json").write_text(json.dumps({"train": config.to_json(), "age_min": 1, "num_classes": 70}))
    if model is not None:
        model.save(run_dir / checkpoint)
    return run_dir


def _row(box, conf, pts):
    return [*box, conf, *pts[:, 0], *pts[:, 1]]


class ShapeDetector:
    """Fake MTCNN: faces looked up by the image's shape."""

    def __init__(self, table):
        self.table = table

    def detect_faces(self, images, box_format="xyxy", output_type="numpy"):
        rows = [[j, *r] for j, im in enumerate(images) for r in self.table.get(im.shape[:2], [])]
        return np.array(rows, dtype="float64").reshape(-1, 16)


@pytest.fixture
def photos(tmp_path):
    """A folder of photos of every kind, and a fake detector that knows them."""
    mem = load("synthetic", n=1, image_size=128, seed=3)
    face, pts = mem.images[0], mem.landmarks[0].astype("float64")
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(face).save(d / "face.jpg", quality=95)
    Image.fromarray(np.concatenate([face, face], 1)).save(d / "sub" / "two.png")  # 128 x 256: two faces
    Image.fromarray(face).convert("L").save(d / "gray.png")
    Image.fromarray(face).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(np.dstack([face, np.full((128, 128), 200, "uint8")])).save(d / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    Image.fromarray(np.ascontiguousarray(np.rot90(face, -1))).save(d / "exif.jpg", exif=exif)
    Image.fromarray(np.full((90, 120, 3), 128, "uint8")).save(d / "wall.png")  # no face
    Image.fromarray(np.full((100, 100, 3), 60, "uint8")).save(d / "crowd.png")  # only a tiny face
    (d / "broken.jpg").write_bytes((d / "face.jpg").read_bytes()[:300])
    (d / "notes.txt").write_text("not an image")  # ignored in a folder
    (d / "fake.png").write_text("not an image either")
    det = ShapeDetector({
        (128, 128): [_row([20, 20, 110, 110], 0.99, pts)],
        (128, 256): [_row([20, 20, 110, 110], 0.99, pts), _row([148, 20, 238, 110], 0.97, pts + [128, 0])],
        (100, 100): [_row([10, 10, 18, 18], 0.99, pts * 0.06 + 10)],
    })
    return d, det


def test_predict_on_a_folder_of_every_kind(photos, tmp_path):
    folder, det = photos
    run = make_run(tmp_path / "run", tiny_model())
    faces = agekeras.predict(folder, run, detector=det, annotate_dir=tmp_path / "ann")
    by_file = {}
    for f in faces:
        by_file.setdefault(pathlib.Path(f["file"]).name, []).append(f)
    assert sorted(by_file) == ["cmyk.jpg", "exif.jpg", "face.jpg", "gray.png", "rgba.png", "two.png"]
    assert [f["face"] for f in by_file["two.png"]] == [0, 1]
    f = by_file["face.jpg"][0]
    assert set(f) >= {"file", "face", "box", "confidence", "landmarks", "age", "age_std", "age_interval",
                      "gender", "gender_prob", "align"}
    assert f["align"] == "utkface" and len(f["landmarks"]) == 5 and len(f["box"]) == 4
    assert 1 <= f["age"] <= 70 and f["age_std"] > 0 and f["age_interval"][0] <= f["age"] <= f["age_interval"][1]
    assert f["gender"] in ("male", "female") and 0.5 <= f["gender_prob"] <= 1
    json.dumps(list(faces))  # JSON-ready
    problems = "\n".join(faces.problems)
    assert len(faces.problems) == 4, problems
    for name, why in [("wall.png", "no face found"), ("crowd.png", "smaller than 20 px"), ("broken.jpg", "broken"),
                      ("fake.png", "not an image")]:
        assert any(name in p and why in p for p in faces.problems), (name, problems)
    s = faces.stats
    assert s["faces"] == 7 and s["images"] == 10 and s["tiny_faces"] == 1 and s["model_faces_per_s"] > 0
    assert len(list((tmp_path / "ann").glob("*.jpg"))) == 8  # every readable photo, annotated
    # Same face, same age: through JPEG, grayscale conversion aside.
    assert abs(by_file["exif.jpg"][0]["age"] - f["age"]) < 1.0


def test_predict_api_inputs_alignment_and_heads(photos, tmp_path):
    folder, det = photos
    face = A.read_image(folder / "face.jpg")
    model = tiny_model(head="coral", gender=False)
    faces = inference.predict([face, face[..., 0]], model, detector=det)
    assert [f["file"] for f in faces] == ["<image 0>", "<image 1>"]
    assert "gender" not in faces[0] and faces[0]["age_std"] > 0  # CORAL: spread from its probabilities
    # No alignment: the whole photo, one prediction per image, no detector needed.
    whole = inference.predict([face, np.zeros((50, 80, 3), "uint8")], model, align=None, detector=object())
    assert len(whole) == 2 and whole[1]["box"] == [0.0, 0.0, 80.0, 50.0]
    # A model with a landmarks input gets the aligned landmarks in its pixels.
    marks = inference.predict(face, landmark_model(), detector=det)
    assert len(marks) == 1 and "age_std" not in marks[0]
    # Regression head and the DHAA template.
    reg = inference.predict(face, tiny_model(head="regression"), align="dhaa", detector=det)
    assert reg[0]["align"] == "dhaa" and "age_std" not in reg[0]


def test_predict_flip_averages_each_face_and_its_mirror_image(photos):
    folder, det = photos
    image = keras.Input((SIZE, SIZE, 3))  # a linear read-out of the pixels: left and right weigh differently
    age = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0))(
        keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(image)))
    model = keras.Model(image, {"age": keras.layers.Reshape(())(age)})
    face = np.asarray(Image.fromarray(A.read_image(folder / "face.jpg")).resize((SIZE, SIZE)))
    plain, mirrored = (inference.predict(im, model, align=None)[0] for im in (face, face[:, ::-1].copy()))
    both = inference.predict(face, model, align=None, flip=True)[0]
    assert abs(plain["age"] - mirrored["age"]) > 0.5  # the mirror image is a different input
    assert both["age"] == pytest.approx((plain["age"] + mirrored["age"]) / 2, abs=0.011)  # ages are printed to 0.01
    # A landmarks model gets the mirrored landmarks; aligned faces run too.
    assert len(inference.predict(folder / "face.jpg", landmark_model(), detector=det, flip=True)) == 1
    # tta: the mean over the six views of TTA_VIEWS, each made from the face as the evaluation pipeline makes it.
    from agekeras.datasets.pipeline import zoom_images
    from agekeras.evaluation import TTA_VIEWS

    views = []
    for zoom, flip in TTA_VIEWS:
        view = np.asarray(zoom_images(face[None].astype("float32"), None, zoom)[0])
        views.append(float(np.asarray(model.predict_on_batch(view[:, :, ::-1] if flip else view)["age"]).ravel()[0]))
    assert inference.predict(face, model, align=None, tta=True)[0]["age"] == pytest.approx(np.mean(views), abs=0.011)
    assert len(inference.predict(folder / "face.jpg", landmark_model(), detector=det, tta=True)) == 1
    with pytest.raises(ValueError, match="not both"):
        inference.predict(face, model, align=None, flip=True, tta=True)


@pytest.fixture
def family(tmp_path):
    """Four photos of five different faces (one photo holds two, the others are
    of three shapes), each face with its detector row."""
    from tests.tiny_runs import linear_model

    mem = load("synthetic", n=5, image_size=128, seed=11)
    faces, pts = mem.images, mem.landmarks.astype("float64")
    photos, rows = [], []  # rows[p]: the detector rows of photo p, largest face first
    for p, (shape, offsets) in enumerate([((128, 128), [(0, 0)]), ((132, 256), [(0, 0), (128, 4)]),
                                          ((160, 128), [(0, 20)]), ((140, 150), [(22, 6)])]):
        photo, photo_rows = np.zeros((*shape, 3), "uint8"), []
        for ox, oy in offsets:
            k = sum(len(r) for r in rows) + len(photo_rows)
            photo[oy:oy + 128, ox:ox + 128] = faces[k]
            side = 90 - 10 * len(photo_rows)  # the first face of a photo is its largest
            photo_rows.append(_row([ox + 20, oy + 20, ox + 20 + side, oy + 20 + side], 0.99, pts[k] + [ox, oy]))
        photos.append(tmp_path / f"photo{p}.png")
        Image.fromarray(photo).save(photos[-1])
        rows.append(photo_rows)
    shapes = [A.read_image(p).shape[:2] for p in photos]
    assert len(set(shapes)) == len(shapes)  # the fake detector tells the photos apart by their shape
    return photos, shapes, rows, linear_model()


@pytest.mark.parametrize("flip", [False, True])
def test_predict_gives_every_face_of_several_photos_its_own_outputs(family, flip):
    """Every face's outputs are the model's on that face's crop alone, whatever
    photo and batch it shares: predict one photo with one face as the reference."""
    photos, shapes, rows, model = family
    det = ShapeDetector({s: r for s, r in zip(shapes, rows)})
    faces = inference.predict(photos, model, detector=det, batch_size=2, chunk=3, flip=flip)
    assert [(pathlib.Path(f["file"]).name, f["face"]) for f in faces] == [
        ("photo0.png", 0), ("photo1.png", 0), ("photo1.png", 1), ("photo2.png", 0), ("photo3.png", 0)]
    alone = []
    one_face = [(photo, shape, row) for photo, shape, photo_rows in zip(photos, shapes, rows) for row in photo_rows]
    for (photo, shape, row), face in zip(one_face, faces, strict=True):
        ref = inference.predict(photo, model, detector=ShapeDetector({shape: [row]}), batch_size=1, flip=flip)
        assert len(ref) == 1 and ref[0]["box"] == face["box"]
        assert face["age"] == pytest.approx(ref[0]["age"], abs=0.011), (face["file"], face["face"])
        assert (face["gender"], face["gender_prob"]) == (ref[0]["gender"], pytest.approx(ref[0]["gender_prob"], abs=2e-3))
        alone.append(ref[0]["age"])
    assert min(abs(a - b) for i, a in enumerate(alone) for b in alone[i + 1:]) > 0.1  # five different ages


class BlobDetector:
    """Fake MTCNN that finds the bright rectangle of each image it is given and
    puts five landmarks at fixed places inside it (in that image's pixels)."""

    RELATIVE = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])

    def detect_faces(self, images, box_format="xyxy", output_type="numpy"):
        rows = []
        for j, im in enumerate(images):
            ys, xs = np.nonzero(im[..., 0] > 127)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            pts = [x1, y1] + self.RELATIVE * [x2 - x1, y2 - y1] - 0.5
            rows.append([j, x1, y1, x2, y2, 0.99, *pts[:, 0], *pts[:, 1]])
        return np.array(rows, dtype="float64")


def test_predict_finds_faces_of_large_photos_of_any_shape_in_their_own_pixels(family):
    """Photos larger than the detector's input are shrunk for it, keeping
    their aspect; the faces come back in the photo's pixels. A wide and a tall
    photo, each with a 400 px bright "face"."""
    model = family[-1]
    wide, tall = np.zeros((1100, 1600, 3), "uint8"), np.zeros((1600, 1100, 3), "uint8")
    wide[300:700, 900:1300] = 255
    tall[1000:1400, 200:600] = 255
    faces = inference.predict([wide, tall], model, detector=BlobDetector())
    assert len(faces) == 2
    for face, (x1, y1) in zip(faces, [(900, 300), (200, 1000)]):
        np.testing.assert_allclose(face["box"], [x1, y1, x1 + 400, y1 + 400], atol=3)
        np.testing.assert_allclose(face["landmarks"], [x1, y1] + BlobDetector.RELATIVE * 400 - 0.5, atol=3)


def test_predict_aligns_a_face_in_a_wide_or_tall_photo_like_in_a_square_one(family):
    """The aligned crop depends on the face, not on the shape of the photo
    around it: a 504 px face on black in a square, a wide and a tall photo.
    Its landmarks are spread 2.5x about its centre, so that the alignment
    shrinks the photo about 3x: the path that reduces the photo first (sizes
    and offsets are whole reduced pixels, so every reduced face is the same)."""
    photos, shapes, rows, model = family
    side = 504
    face = np.asarray(Image.fromarray(A.read_image(photos[0])).resize((side, side), Image.BILINEAR))
    base = np.array(rows[0][0])
    base[:4] *= side / 128
    base[5:] = ((base[5:] + 0.5) * side / 128 - side / 2) * 2.5 + side / 2 - 0.5
    got = []
    for shape, (ox, oy) in (((600, 600), (48, 48)), ((600, 900), (240, 48)), ((960, 600), (48, 168))):
        photo = np.zeros((*shape, 3), "uint8")
        photo[oy:oy + side, ox:ox + side] = face
        row = base.copy()
        row[[0, 2, *range(5, 10)]] += ox
        row[[1, 3, *range(10, 15)]] += oy
        got.append(inference.predict(photo, model, detector=ShapeDetector({shape: [row]}))[0])
        assert got[-1]["age"] == pytest.approx(got[0]["age"], abs=0.011), shape
        np.testing.assert_allclose(got[-1]["landmarks"], np.array(got[0]["landmarks"]) + [ox - 48, oy - 48], atol=0.11)


def test_predict_flip_feeds_a_landmarks_model_the_mirror_image_and_its_landmarks():
    """By hand: the mean of the model on the face with its landmarks and on the
    mirror image with the landmarks mirrored (x -> S - 1 - x, left and right
    eyes and mouth corners swapped)."""
    model = landmark_model()
    face = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    pts = A.TEMPLATES[inference.DEFAULT_ALIGN].landmarks(SIZE).astype("float32")  # a whole image's landmarks
    mirrored = pts[[1, 0, 2, 4, 3]].copy()
    mirrored[:, 0] = SIZE - 1 - mirrored[:, 0]

    def age(image, marks):
        x = {"image": image[None].astype("float32"), "landmarks": marks[None]}
        return float(np.asarray(model.predict_on_batch(x)["age"]).ravel()[0])

    want = (age(face, pts) + age(face[:, ::-1], mirrored)) / 2
    unswapped = pts.copy()
    unswapped[:, 0] = SIZE - 1 - unswapped[:, 0]
    assert abs((age(face, pts) + age(face[:, ::-1], unswapped)) / 2 - want) > 0.05  # the swap matters
    assert inference.predict(face, model, align=None, flip=True)[0]["age"] == pytest.approx(want, abs=0.011)


def test_predict_names_the_gender_of_the_models_probabilities():
    """gender_probs[:, 0] is "male" (code 0 of every dataset), [:, 1] "female": a
    model that answers [0.9, 0.1] for a dark image and [0.1, 0.9] for a bright one."""
    from agekeras.ages import GENDER_NAMES

    image = keras.Input((SIZE, SIZE, 3))
    bright = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(image))  # (B, 3), mean in [0, 1]
    slope = np.log(9.0) / 0.8  # logit_0 - logit_1 = slope * (1 - 2 b): +-log 9 at b = 0.1 / 0.9, i.e. 0.9 / 0.1
    gender = keras.layers.Dense(2, activation="softmax",
                                kernel_initializer=keras.initializers.Constant([[-slope / 3, slope / 3]] * 3),
                                bias_initializer=keras.initializers.Constant([slope / 2, -slope / 2]))(bright)
    age = keras.layers.Reshape(())(keras.layers.Dense(1)(bright))
    model = keras.Model(image, {"age": age, "gender_probs": gender})
    dark, light = np.full((SIZE, SIZE, 3), 0.1 * 255, "uint8"), np.full((SIZE, SIZE, 3), 0.9 * 255, "uint8")
    probs = np.asarray(model.predict_on_batch(np.stack([dark, light]).astype("float32"))["gender_probs"])
    np.testing.assert_allclose(probs, [[0.9, 0.1], [0.1, 0.9]], atol=0.01)
    faces = inference.predict([dark, light], model, align=None)
    assert [(f["gender"], f["gender_prob"]) for f in faces] == [("male", pytest.approx(0.9, abs=0.01)),
                                                                ("female", pytest.approx(0.9, abs=0.01))]
    assert GENDER_NAMES == {0: "male", 1: "female"}


def test_spread_of_dex_and_coral_distributions():
    probs = np.zeros((1, 10))
    probs[0, [3, 4, 5]] = [0.25, 0.5, 0.25]
    std, iv = inference.spread(probs, np.array([24.0]))
    np.testing.assert_allclose(std, [np.sqrt(0.5)])
    np.testing.assert_allclose(iv, [[23.0, 25.0]])
    # CORAL: P(age > k) falling 1 -> 0 around class 4 is a distribution there.
    logits = np.array([[9, 9, 9, 2, -2, -9, -9, -9, -9]], dtype="float64")
    p = inference.age_distribution({"age_logits": logits})
    assert p.shape == (1, 10) and abs(p.sum() - 1) < 1e-9 and p.argmax() in (3, 4)
    assert inference.age_distribution({"age": np.zeros(1)}) is None


def test_annotate_sizes_each_label_to_its_face_and_keeps_it_on_the_photo():
    """A group photo: a large face, a small one in the top right corner, a middle one at the bottom."""
    photo = np.full((480, 640, 3), 90, "uint8")
    faces = [
        {"box": [40, 120, 340, 430], "age": 34.4, "age_std": 4.2, "gender": "female"},  # large, room above
        {"box": [612, 0, 639, 30], "age": 61.0, "age_std": 7.9, "gender": "male"},      # small, in the corner
        {"box": [420, 330, 540, 479], "age": 8.2, "age_std": 2.0},                      # middle, at the bottom
    ]
    out, labels = inference.annotate(photo, faces)
    assert out.shape == photo.shape and out.dtype == np.uint8 and not np.array_equal(out, photo)
    np.testing.assert_array_equal(photo, 90)  # the photo itself is left alone
    for x0, y0, x1, y1 in labels:
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
        assert np.mean(out[y0:y1, x0:x1, 0] == 255) > 0.95  # filled: red ground, white text
    heights = [y1 - y0 for _, y0, _, y1 in labels]
    assert heights[0] > heights[2] > heights[1]  # text follows the face's size
    assert labels[0][3] <= 120  # above the large face, where there is room
    assert labels[1][0] < 612 and labels[1][2] <= 640  # the corner face's label moved left, inside the photo
    # a photo narrower than its label: the text shrinks to fit
    narrow, (rect,) = inference.annotate(np.zeros((60, 30, 3), "uint8"),
                                         [{"box": [0, 0, 29, 59], "age": 44.0, "age_std": 12.0, "gender": "male"}])
    assert 0 <= rect[0] and rect[2] <= 30 and 0 <= rect[1] and rect[3] <= 60


def test_load_run_falls_back_and_fails_clearly(tmp_path):
    run = make_run(tmp_path / "r", tiny_model(), checkpoint="last.keras")
    model, config, saved = load_run(run)
    assert isinstance(model, keras.Model) and config.align == "utkface" and saved["checkpoint"] == "last.keras"
    with pytest.raises(FileNotFoundError, match="no best.keras nor last.keras"):
        load_run(make_run(tmp_path / "empty", None))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_run(tmp_path)
    # Runs saved before the align field: taken from the dataset.
    assert TrainConfig.from_json({"dataset": "utkface"}).align == "utkface"
    assert TrainConfig.from_json({"dataset": "fgnet"}).align is None
    assert TrainConfig(dataset="utkface", align=None).align is None


def test_predict_command_exit_codes_and_errors(photos, tmp_path, monkeypatch, capsys):
    folder, det = photos
    monkeypatch.setattr(A.detection, "make_detector", lambda: det)
    monkeypatch.setenv("AGEKERAS_CACHE", str(tmp_path / "cache"))
    run = make_run(tmp_path / "run", tiny_model())
    out = tmp_path / "ages.jsonl"
    code = cli.main(["predict", str(folder), str(tmp_path / "missing.jpg"), "--run", str(run), "--out", str(out)])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    err = capsys.readouterr().err
    assert code == 0 and len(lines) == 7
    assert "missing.jpg: no such file" in err and "7 faces in 6 of 10 images" in err and "faces/s" in err
    # Nothing processed: exit code 1.
    assert cli.main(["predict", str(folder / "broken.jpg"), str(folder / "wall.png"), "--model",
                     str(run / "best.keras")]) == 1
    # A run directory without a model, a model of another input size: one clear line, exit 2.
    assert cli.main(["predict", str(folder), "--run", str(make_run(tmp_path / "nomodel", None))]) == 2
    assert "no best.keras nor last.keras" in capsys.readouterr().err
    wrong = make_run(tmp_path / "wrong", tiny_model(size=48), image_size=SIZE)
    assert cli.main(["predict", str(folder), "--run", str(wrong)]) == 2
    assert "takes 48 px images but its run says 32 px" in capsys.readouterr().err


def test_cli_align_choices_are_the_templates():
    assert set(cli.ALIGN_CHOICES) == {"auto", "none", *A.TEMPLATES}


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, "float64").reshape(-1) - np.asarray(b, "float64").reshape(-1))))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["plain", "landmarks"])
def test_export_saved_model_and_tflite_match_keras(tmp_path, kind):
    import tensorflow as tf

    model = tiny_model() if kind == "plain" else landmark_model()
    run = make_run(tmp_path / "run", model)
    crops = np.random.default_rng(0).integers(0, 256, size=(5, SIZE, SIZE, 3)).astype("uint8")
    predictor = inference.load_predictor(run)
    if kind == "plain":
        want = model.predict_on_batch(crops.astype("float32"))["age"]
    else:
        pts = np.broadcast_to(A.TEMPLATES["utkface"].landmarks(SIZE), (5, 5, 2)).astype("float32")
        want = model.predict_on_batch({"image": crops.astype("float32"), "landmarks": pts})["age"]
    assert predictor.needs_landmarks == (kind == "landmarks")

    assert cli.main(["export", "--run", str(run), "--format", "saved_model"]) == 0
    loaded = tf.saved_model.load(str(run / "export_saved_model"))
    got = loaded.serve(tf.constant(crops))
    got = got["age"] if isinstance(got, dict) else got
    assert _max_diff(got, want) < 1e-4

    assert cli.main(["export", "--run", str(run), "--format", "tflite"]) == 0
    interp = tf.lite.Interpreter(model_path=str(run / "model.tflite"))
    runner = interp.get_signature_runner()
    got = runner(**{list(runner.get_input_details())[0]: crops})
    assert _max_diff(list(got.values())[0], want) < 1e-2


@pytest.mark.slow
def test_cross_dataset_evaluate_aligns_and_counts_missed_faces(photos, tmp_path, monkeypatch):
    from agekeras.training import evaluate

    folder, det = photos
    monkeypatch.setattr(A.detection, "make_detector", lambda: det)
    monkeypatch.setenv("AGEKERAS_CACHE", str(tmp_path / "cache"))
    table = tmp_path / "faces.csv"
    names = ["face.jpg", "gray.png", "wall.png", "sub/two.png"]
    table.write_text("path,age\n" + "".join(f"{folder / n},{20 + i}\n" for i, n in enumerate(names)))
    run = make_run(tmp_path / "run", tiny_model())
    aligned = evaluate(run, dataset="csv", data_dir=str(table), split="all")
    assert aligned["align"] == "utkface" and aligned["faces_missed"] == 1 and aligned["n"] == 4
    assert aligned["missed"] == [str(folder / "wall.png")]
    assert (run / "metrics_csv_utkface.json").exists()
    # greyscale photos (equal channels) apart from colour ones, among the faces found
    by = aligned["by_colour"]
    assert {k: v["n"] for k, v in by.items()} == {"all": 4, "faces_found": 3, "colour": 2, "greyscale": 1}
    rows = list(csv.DictReader(open(run / "predictions_csv_utkface.csv")))
    error = [float(r["predicted"]) - float(r["age"]) for r in rows]  # face, gray, wall, two
    assert by["greyscale"]["mean_error"] == pytest.approx(error[1], abs=1e-3)
    assert by["colour"]["mean_error"] == pytest.approx((error[0] + error[3]) / 2, abs=1e-3)
    assert aligned["interval"]["level"] == 0.9 and "0.9" in aligned["interval"]["coverage"]
    plain = evaluate(run, dataset="csv", data_dir=str(table), split="all", align=None)
    assert "faces_missed" not in plain and (run / "metrics_csv.json").exists()
    # The detections are cached: a second aligned pass never calls the detector.
    monkeypatch.setattr(A.detection, "make_detector", lambda: pytest.fail("detector called despite the cache"))
    again = evaluate(run, dataset="csv", data_dir=str(table), split="all")
    assert again["mae"] == pytest.approx(aligned["mae"])


@pytest.mark.slow
@pytest.mark.integration
def test_real_mtcnn_reproduces_the_utkface_framing(utkface_dev_dir):
    """Re-aligning a UTKFace crop with the fitted "utkface" template gives back
    nearly the same crop: the template is UTKFace's framing."""
    pytest.importorskip("mtcnn")
    files = sorted(utkface_dev_dir.rglob("*.jpg"))[:12]
    images = [A.read_image(f) for f in files]
    found = A.detect_faces(images, min_confidence=0.9)
    diffs, shifts, scales = [], [], []
    t = A.TEMPLATES["utkface"]
    for im, f in zip(images, found):
        if not f.faces:
            continue
        crop, _ = A.align_face(im, f.faces[0].landmarks, "utkface")
        diffs.append(np.abs(crop.astype(int) - im).mean())
        m = A.similarity_transform(f.faces[0].landmarks + 0.5, t.points * 200)
        shifts.append(np.abs(A.apply_transform(m, [[100.0, 100.0]]) - 100).max())
        scales.append(abs(np.sqrt(abs(np.linalg.det(m[:, :2]))) - 1))
    assert len(diffs) >= 8
    # Median over faces: the crop centre moves by ~1 px (of 200), the scale by ~1 %.
    assert np.median(shifts) < 3, shifts
    assert np.median(scales) < 0.03, scales
    assert np.median(diffs) < 15, diffs


@pytest.mark.slow
@pytest.mark.integration
def test_predict_on_fgnet_photos_with_real_mtcnn(fgnet_dir, tmp_path):
    pytest.importorskip("mtcnn")
    files = sorted((fgnet_dir / "images").glob("*"))[:4]
    faces = inference.predict(files, tiny_model(), annotate_dir=tmp_path / "ann")
    assert len({f["file"] for f in faces}) >= 3
    for f in faces:
        w, h = Image.open(f["file"]).size
        x1, y1, x2, y2 = f["box"]
        assert -5 <= x1 < x2 <= w + 5 and -5 <= y1 < y2 <= h + 5
    assert faces.stats["detection_faces_per_s"] > 0


@pytest.mark.parametrize("dataset, warned", [("csv", True), ("utkface", False), ("synthetic", False)])
def test_a_run_without_face_alignment_warns_that_photos_go_in_whole(tmp_path, caplog, dataset, warned):
    import logging

    from tests.tiny_runs import make_run as make_config_run

    run = make_config_run(tmp_path / dataset, tiny_model(), image_size=SIZE, dataset=dataset)
    with caplog.at_level(logging.WARNING, logger="agekeras.inference"):
        predictor = inference.load_predictor(run)
        inference.load_predictor(run / "best.keras")
    notes = [r.getMessage() for r in caplog.records if "records no face alignment" in r.getMessage()]
    assert len(notes) == (2 if warned else 0)
    assert all("--align utkface" in n and f"{dataset!r}" in n for n in notes)
    assert predictor.align == (None if dataset != "utkface" else "utkface")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agekeras.inference"):
        assert inference.load_predictor(run, align="utkface").align == "utkface"  # said by hand: nothing to warn
    assert not caplog.records
