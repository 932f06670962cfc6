"""Fetch the datasets that have an anonymous public source; explain the others.

Only AFAD (Full and Lite, split `tar.xz` archives in the AFAD GitHub
repositories) and APPA-REAL (one zip) can be downloaded without an account.
Every other dataset needs a licence or a sign-up: `fetch` raises
`ManualDownloadRequired` with the official page and the folder layout the
reader expects.

Downloads resume: a partial `<file>.part` is continued with an HTTP `Range`
request. Known checksums are verified. Archives are extracted with
`tarfile`'s "data" filter / `zipfile` (no paths outside the target folder).
Without network, `fetch` raises `DownloadError` telling the user to download
on a machine with internet access and pass the folder as `data_dir` (or as
TFDS `manual_dir`).

Used by the TFDS builders and by the command line, `python -m agekeras
download` (`add_arguments` + `run`):

    python -m agekeras download --list                 # every dataset and how to get it
    python -m agekeras download afad_lite              # -> ~/agekeras_data/afad_lite/AFAD-Lite
    python -m agekeras download appa_real --out /data/appa
    python -m agekeras download adience                # prints the official page and layout
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import shutil
import socket
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from .readers import READERS

logger = logging.getLogger("agekeras.datasets")

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A dataset could not be fetched (no network, bad checksum, ...)."""


class ManualDownloadRequired(DownloadError):
    """The dataset has no anonymous source: get it by hand."""


class NotFoundOnServer(DownloadError):
    """The server answered, but has no such file (HTTP 404)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a dataset's archive lives.

    Attributes:
        url: the archive, or for split archives the URL prefix of its parts
            (`<url>.aa`, `<url>.ab`, ... fetched until one is not found).
        folder: the folder the archive unpacks to (the dataset root).
        split_parts: the archive is split into `.aa`, `.ab`, ... parts.
        md5: checksum of the (joined) archive, when known.
    """

    url: str
    folder: str
    split_parts: bool = False
    md5: str | None = None


SOURCES = {
    "afad_lite": Source(
        "https://github.com/afad-dataset/tarball-lite/raw/master/AFAD-Lite.tar.xz",
        folder="AFAD-Lite", split_parts=True,
    ),
    "afad": Source(
        "https://github.com/afad-dataset/tarball/raw/master/AFAD-Full.tar.xz",
        folder="AFAD-Full", split_parts=True,
    ),
    "appa_real": Source(
        "http://158.109.8.102/AppaRealAge/appa-real-release.zip",
        folder="appa-real-release", md5="2701c6ec291b242e6b4f8a0a56087a43",
    ),
}  # fmt: skip


def manual_instructions(name: str) -> str:
    """How to get dataset `name` by hand: official page and expected layout."""
    spec = READERS[name]
    return (
        f"{name} must be downloaded by hand (licence or sign-up required).\n"
        f"  Official page: {spec.homepage}\n"
        f"  Put it in a folder laid out as:\n{spec.layout}\n"
        f"  then: agekeras.datasets.load({name!r}, '<folder>'), or for TFDS pass the "
        "folder as manual_dir (tfds.download.DownloadConfig(manual_dir=...))."
    )


def fetch(name: str, out_dir, *, verify: bool = True, keep_archive: bool = False) -> pathlib.Path:
    """Download and extract dataset `name` into `out_dir`.

    Args:
        name: a dataset with an entry in `SOURCES` ("afad_lite", "afad",
            "appa_real").
        out_dir: where the archive is downloaded and extracted.
        verify: check the archive's md5 when one is known.
        keep_archive: keep the downloaded archive after extraction.

    Returns:
        The extracted dataset folder (`out_dir/<Source.folder>`), ready for
        `agekeras.datasets.load(name, folder)`.

    Raises:
        ManualDownloadRequired: `name` has no anonymous source.
        DownloadError: no network, a missing file on the server or a bad
            checksum.
    """
    if name not in READERS:
        raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(READERS)}.")
    if name not in SOURCES:
        raise ManualDownloadRequired(manual_instructions(name))
    source = SOURCES[name]
    out_dir = pathlib.Path(out_dir).expanduser()
    target = out_dir / source.folder
    if (target / ".complete").is_file():
        logger.info("%s: already extracted in %s", name, target)
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / source.url.rsplit("/", 1)[-1]
    if not archive.is_file():
        if source.split_parts:
            parts = _download_parts(name, source.url, out_dir)
            _join(parts, archive)
        else:
            _download(name, source.url, archive)
    if verify and source.md5:
        digest = _md5(archive)
        if digest != source.md5:
            raise DownloadError(
                f"{name}: {archive} has md5 {digest}, expected {source.md5}. Delete it and retry, "
                "or pass --no-verify if the publisher changed the archive."
            )
    _extract(archive, out_dir)
    if not target.is_dir():
        raise DownloadError(f"{name}: {archive.name} did not contain the folder {source.folder}/.")
    (target / ".complete").touch()
    if not keep_archive:
        archive.unlink()
    return target


def reachable(name: str, timeout: float = 3.0) -> bool:
    """Whether the server of dataset `name`'s source accepts a connection.

    A TCP connect only: nothing is downloaded. False for datasets without an
    anonymous source, and when offline.

    Args:
        name: a dataset name.
        timeout: seconds to wait for the connection.

    Returns:
        A bool.
    """
    if name not in SOURCES:
        return False
    url = urllib.parse.urlsplit(SOURCES[name].url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(name: str, url: str, error: Exception) -> str:
    return (
        f"{name}: could not reach {url} ({getattr(error, 'reason', error)}). No network? "
        f"Download on a machine with internet access (python -m agekeras download {name} --out DIR), "
        "copy DIR here and pass it as data_dir, or to TFDS as --manual_dir "
        "(tfds.download.DownloadConfig(manual_dir=DIR))."
    )


def _not_found(error: Exception) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code == 404
    return isinstance(getattr(error, "reason", None), FileNotFoundError)


def _download(name: str, url: str, dest: pathlib.Path) -> None:
    """Fetch `url` to `dest`, resuming `dest.part` with a Range request."""
    partial = dest.with_name(dest.name + ".part")
    start = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = start and getattr(response, "status", None) == 206
            with open(partial, "ab" if resumed else "wb") as f:
                shutil.copyfileobj(response, f, _CHUNK)
    except urllib.error.URLError as e:
        if _not_found(e):
            raise NotFoundOnServer(f"{name}: {url} not found on the server.") from e
        raise DownloadError(_offline_message(name, url, e)) from e
    except OSError as e:  # timeouts, resets: the .part file stays for a resume
        raise DownloadError(_offline_message(name, url, e)) from e
    os.replace(partial, dest)
    logger.info("%s: downloaded %s (%d bytes)", name, dest.name, dest.stat().st_size)


def _download_parts(name: str, url: str, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Fetch `<url>.aa`, `.ab`, ... until the server has no next part."""
    parts = []
    for first in "abcdefghijklmnopqrstuvwxyz":
        for second in "abcdefghijklmnopqrstuvwxyz":
            part_url = f"{url}.{first}{second}"
            dest = out_dir / part_url.rsplit("/", 1)[-1]
            if not dest.is_file():
                try:
                    _download(name, part_url, dest)
                except NotFoundOnServer:
                    if parts:
                        return parts
                    raise
            parts.append(dest)
    return parts


def _join(parts: list[pathlib.Path], archive: pathlib.Path) -> None:
    tmp = archive.with_name(archive.name + ".part")
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, _CHUNK)
    os.replace(tmp, archive)
    for part in parts:
        part.unlink()


def _md5(path: pathlib.Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extract(archive: pathlib.Path, out_dir: pathlib.Path) -> None:
    logger.info("extracting %s", archive.name)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(out_dir)
    else:
        with tarfile.open(archive) as t:
            t.extractall(out_dir, filter="data")


def add_arguments(parser):
    """Add the options of `python -m agekeras download` to `parser`.

    Args:
        parser: an `argparse.ArgumentParser` (or a sub-command's parser).

    Returns:
        The parser.

    Example:

    >>> import argparse
    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(["afad_lite", "--keep-archive"])
    >>> args.name, args.out, args.keep_archive
    ('afad_lite', None, True)
    """
    parser.add_argument("name", nargs="?", choices=sorted(READERS), help="dataset to fetch")
    parser.add_argument("--out", type=pathlib.Path, help="target folder (default: $AGEKERAS_DATA_ROOT/<name>)")
    parser.add_argument("--no-verify", action="store_true", help="skip the checksum check")
    parser.add_argument("--keep-archive", action="store_true", help="keep the archive after extraction")
    parser.add_argument("--list", action="store_true", help="list the datasets and how each is obtained")
    return parser


def run(args) -> int:
    """Run `python -m agekeras download` with the parsed `args` of `add_arguments`.

    `--list` prints every dataset, "download" or "manual", and its page. A
    dataset with an anonymous source is fetched into `--out` (default
    `agekeras.datasets.default_data_dir(name)`) and its folder printed; for
    any other, or when the download fails (e.g. no network), the reason and
    what to do go to stderr.

    Args:
        args: the `argparse.Namespace`.

    Returns:
        The exit code: 0 when listed or fetched, 1 when the dataset must be
        fetched by hand or the download failed, 2 without a dataset name.

    Example:

    >>> run(add_arguments(argparse.ArgumentParser()).parse_args(["--list"]))  # doctest: +SKIP
    0
    """
    from . import default_data_dir

    if args.list:
        for name, spec in sorted(READERS.items()):
            how = "download" if name in SOURCES else "manual"
            print(f"{name:15s} {how:8s} {spec.homepage}")
        return 0
    if args.name is None:
        print("error: give a dataset name (or --list)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or default_data_dir(args.name)
    try:
        folder = fetch(args.name, out, verify=not args.no_verify, keep_archive=args.keep_archive)
    except DownloadError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"{args.name} ready in {folder}\n  agekeras.datasets.load({args.name!r}, {str(folder)!r})")
    return 0
