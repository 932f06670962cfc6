"""Tiny on-disk copies of each dataset layout, built with Pillow in tmp_path."""

import io
import pathlib

import numpy as np
from PIL import Image


def image_bytes(*, size=(32, 32), mode="RGB", fmt="JPEG", seed=0, **save_kw) -> bytes:
    """Encoded random image of `size` (width, height) in `mode`."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if mode in ("I;16", "I"):
        im = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    elif mode == "P+transparency":
        im = rgb.convert("P")
        save_kw.setdefault("transparency", 0)
    else:
        im = rgb.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **save_kw)
    return buf.getvalue()


def save_image(path, **kw) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(**kw))
    return path


def write(path, text) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


BAD_FILES = {
    # name -> (bytes factory, expected skip reason)
    "empty file": lambda: b"",
    "truncated image": lambda: image_bytes(size=(64, 64))[:600],
    "not an image": lambda: b"this is not an image, just text\n" * 10,
    "corrupt image": lambda: _corrupt_png(),
}


def _corrupt_png() -> bytes:
    """A PNG whose header is fine but whose compressed pixel data is garbage."""
    data = bytearray(image_bytes(fmt="PNG"))
    i = data.find(b"IDAT")
    data[i + 10 : i + 60] = b"\xff" * 50
    return bytes(data)


ODD_FORMATS = {
    # file suffix, save kwargs: decodable but not a plain 8-bit JPEG/PNG
    "cmyk": (".jpg", {"mode": "CMYK", "fmt": "JPEG"}),
    "i16": (".png", {"mode": "I;16", "fmt": "PNG"}),
    "la": (".png", {"mode": "LA", "fmt": "PNG"}),
    "ptrans": (".png", {"mode": "P+transparency", "fmt": "PNG"}),
    "gif": (".gif", {"mode": "RGB", "fmt": "GIF"}),
    "tiff": (".tif", {"mode": "RGB", "fmt": "TIFF"}),
}


def make_utkface(root, *, broken=False, odd=False) -> dict:
    """UTKFace chips: 6 good, 2 unparseable names, 1 age out of range.

    With `broken`, 4 more well-named files that cannot be decoded (one per
    `BAD_FILES` reason); with `odd`, one per `ODD_FORMATS` plus a grayscale
    JPEG and an RGBA PNG, which stay as they are.
    """
    root = pathlib.Path(root)
    good = {
        "25_0_0_20170116174525125.jpg.chip.jpg": (25, 0, 0),
        "1_1_2_20161219140623097.jpg.chip.jpg": (1, 1, 2),
        "80_0_1_20170109142408075.jpg.chip.jpg": (80, 0, 1),
        "116_1_3_20170112213303693.jpg.chip.jpg": (116, 1, 3),
        "40_1_4_20170104230051255.jpg.chip.jpg": (40, 1, 4),
        "sub/33_0_2_20170117195506573.jpg": (33, 0, 2),
    }
    for i, name in enumerate(good):
        save_image(root / name, seed=i)
    for name in ("61_1_20170109142408075.jpg.chip.jpg", "img_0001.jpg"):
        save_image(root / name)
    save_image(root / "117_0_0_20170117195506573.jpg.chip.jpg")
    write(root / "readme.txt", "not an image, ignored")
    if broken:
        for i, data in enumerate(BAD_FILES.values()):
            (root / f"{30 + i}_0_0_2017011719550657{i}.jpg.chip.jpg").write_bytes(data())
    if odd:
        for i, (suffix, kw) in enumerate(ODD_FORMATS.values()):
            save_image(root / f"{50 + i}_1_0_2017011719550657{i}{suffix}", **kw)
        save_image(root / "60_0_0_20170117195506500.jpg.chip.jpg", mode="L")
        save_image(root / "61_0_0_20170117195506500.png", mode="RGBA", fmt="PNG")
    return good


def make_afad(root) -> None:
    """AFAD-Lite/: ages 18 and 22, 111 male and 112 female, plus noise."""
    root = pathlib.Path(root) / "AFAD-Lite"
    save_image(root / "18" / "111" / "a.jpg")
    save_image(root / "18" / "112" / "b.jpg")
    save_image(root / "18" / "112" / "c.jpg")
    save_image(root / "22" / "111" / "d.jpg")
    write(root / "AFAD-Lite.txt", "list file, ignored")
    write(root / "22" / "111" / "Thumbs.db", "ignored")


def fgnet_points(seed=0) -> np.ndarray:
    """68 FG-NET points where 31, 36, 67, 48, 54 are easy to recognise."""
    pts = np.random.default_rng(seed).uniform(0, 30, (68, 2)).round(3)
    for i, p in {31: (10, 12), 36: (22, 12), 67: (16, 18), 48: (11, 25), 54: (21, 25)}.items():
        pts[i] = p
    return pts


def pts_text(points) -> str:
    body = "\n".join(f"{x} {y}" for x, y in points)
    return f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n"


def make_fgnet(root, *, annotations=True) -> None:
    """images/ with 5 images of 2 subjects (mixed case, suffixes), points/, annotations."""
    root = pathlib.Path(root)
    names = ["001A02.JPG", "001A43a.JPG", "001a43b.jpg", "002A10.JPG", "002A61.JPG"]
    for i, name in enumerate(names):
        save_image(root / "images" / name, mode="L" if i % 2 else "RGB", seed=i)
    save_image(root / "images" / "notes.jpg")
    for name in names[:4]:
        write(root / "points" / (pathlib.Path(name).stem.lower() + ".pts"), pts_text(fgnet_points()))
    if annotations:
        rows = ["filename,person_id,age"] + [f"{n},{int(n[:3])},{int(n[4:6])}" for n in names[:4]]
        rows.append("002A61.JPG,2,60")  # the annotation wins over the name
        write(root / "annotations.csv", "\n".join(rows) + "\n")


ADIENCE_HEADER = "\t".join(
    ["user_id", "original_image", "face_id", "age", "gender", "x", "y", "dx", "dy", "tilt_ang",
     "fiducial_yaw_angle", "fiducial_score"]
)  # fmt: skip


def make_adience(root, *, folder="faces", prefix="coarse_tilt_aligned_face") -> list:
    """5 folds, 2 users per fold; odd labels; one None label; one missing image."""
    root = pathlib.Path(root)
    labels = [
        "(25, 32)",
        "(8, 23)",
        "35",
        "(0, 2)",
        "(60, 100)",
        "(38, 42)",
        "(8, 12)",
        "57",
        "(15, 20)",
        "(48, 53)",
    ]
    genders = ["m", "f", "u", "f", "m", "", "m", "f", "m", "f"]
    rows_per_fold = {k: [] for k in range(5)}
    for i, (label, gender) in enumerate(zip(labels, genders, strict=True)):
        k, user = i // 2, f"user{i // 2}_{i % 2}"
        original = f"{1000 + i}_abc.jpg"
        rows_per_fold[k].append(f"{user}\t{original}\t{i}\t{label}\t{gender}\t0\t0\t10\t10\t0\t0\t1")
        save_image(root / folder / user / f"{prefix}.{i}.{original}", seed=i)
    rows_per_fold[0].append("user0_0\t9999_none.jpg\t99\tNone\tm\t0\t0\t10\t10\t0\t0\t1")
    rows_per_fold[1].append("user1_0\t8888_missing.jpg\t88\t(4, 6)\tf\t0\t0\t10\t10\t0\t0\t1")
    for k, rows in rows_per_fold.items():
        write(root / f"fold_{k}_data.txt", "\n".join([ADIENCE_HEADER, *rows]) + "\n")
    return labels


def make_megaage(root) -> None:
    root = pathlib.Path(root) / "megaage_asian"
    for split, names, ages in (
        ("train", ["1.jpg", "2.jpg", "3.jpg"], [10, 20, 30]),
        ("test", ["1.jpg", "2.jpg"], [5, 70]),
    ):
        for i, n in enumerate(names):
            save_image(root / split / n, seed=i)
        write(root / "list" / f"{split}_name.txt", "\n".join(names) + "\n")
        write(root / "list" / f"{split}_age.txt", "\n".join(map(str, ages)) + "\n")


def make_lap2015(root) -> None:
    """Headerless semicolon label files, images in Train/ and Validation/."""
    root = pathlib.Path(root)
    for split, n in (("Train", 3), ("Validation", 2)):
        lines = []
        for i in range(n):
            save_image(root / split / f"image_{i}.jpg", seed=i)
            lines.append(f"image_{i}.jpg;{20 + i}.5;{3 + i}.25")
        write(root / f"{split}.csv", "\n".join(lines) + "\n")


def make_appa(root, *, per_rating=True) -> None:
    """appa-real-release/ with gt_avg_{train,valid,test}.csv (+ per-rating gt_*.csv)."""
    root = pathlib.Path(root) / "appa-real-release"
    for split, n in (("train", 3), ("valid", 2), ("test", 2)):
        lines = ["file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age"]
        for i in range(n):
            name = f"{split[:2]}{i:04d}.jpg"
            save_image(root / split / name, seed=i)
            save_image(root / split / (name + "_face.jpg"), size=(16, 16), seed=i)
            lines.append(f"{name},38,{30 + i}.5,{4 + i}.0,{31 + i}")
        write(root / f"gt_avg_{split}.csv", "\n".join(lines) + "\n")
        if per_rating:
            write(root / f"gt_{split}.csv", "file_name,real_age,apparent_age,worker_age,worker_gender\n")


def make_morph(root) -> None:
    """A MORPH-style CSV: 6 subjects, races W/B/H, one missing image."""
    root = pathlib.Path(root)
    lines = ["id_num,picture_num,dob,doa,race,gender,age,photo"]
    races = ["W", "W", "B", "W", "H", "W"]
    for s, race in enumerate(races):
        for j in range(2):
            path = f"Album2/{s:06d}_{j}M{20 + s}.JPG"
            save_image(root / path, seed=s * 2 + j)
            lines.append(f"{s:06d},{j},1980-01-01,2003-01-01,{race},{'M' if s % 2 else 'F'},{20 + s},{path}")
    lines.append("000099,0,1980-01-01,2003-01-01,W,M,30,Album2/missing.JPG")
    write(root / "morph_2008_nonCommercial.csv", "\n".join(lines) + "\n")


def serve_split_tarball(server, folder, make, *, parts=3) -> str:
    """Build `folder/` with `make(tmp)`, pack it as `<folder>.tar.xz` split in
    `.aa`, `.ab`, ... parts inside `server`, and return the `file://` URL prefix."""
    import tarfile

    server = pathlib.Path(server)
    build = server / "build"
    make(build)  # creates build/<folder>/...
    archive = server / f"{folder}.tar.xz"
    with tarfile.open(archive, "w:xz") as t:
        t.add(build / folder, arcname=folder)
    data = archive.read_bytes()
    archive.unlink()
    step = len(data) // parts + 1
    for i, start in enumerate(range(0, len(data), step)):
        (server / f"{folder}.tar.xz.a{'abcdefgh'[i]}").write_bytes(data[start : start + step])
    return archive.as_uri()
