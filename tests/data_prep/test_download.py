"""Download helpers against local `file://` archives and fake servers; never the network."""

import argparse
import hashlib
import io
import socket
import urllib.error
import urllib.request
import zipfile

import pytest

from agekeras import datasets
from agekeras.datasets import download
from data_prep import download as script

from ..datasets import fixtures


def command(*argv):
    """`python -m agekeras download ARGV`: the package's arguments and run."""
    return download.run(download.add_arguments(argparse.ArgumentParser()).parse_args(argv))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEKERAS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def serve_afad_lite(tmp_path, monkeypatch):
    url = fixtures.serve_split_tarball(tmp_path / "server", "AFAD-Lite", fixtures.make_afad)
    monkeypatch.setitem(
        download.SOURCES, "afad_lite", download.Source(url, folder="AFAD-Lite", split_parts=True)
    )
    return url


def test_split_tarball_is_joined_extracted_and_readable(tmp_path, monkeypatch):
    serve_afad_lite(tmp_path, monkeypatch)
    folder = download.fetch("afad_lite", tmp_path / "out")
    assert folder == tmp_path / "out" / "AFAD-Lite"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["AFAD-Lite"]  # parts and archive removed
    ds = datasets.load("afad_lite", tmp_path / "out")
    assert sorted(ds.age.tolist()) == [18, 18, 18, 22]


def test_second_fetch_does_not_touch_the_network(tmp_path, monkeypatch):
    serve_afad_lite(tmp_path, monkeypatch)
    first = download.fetch("afad_lite", tmp_path / "out")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    assert download.fetch("afad_lite", tmp_path / "out") == first


def make_appa_zip(tmp_path) -> bytes:
    fixtures.make_appa(tmp_path / "build", per_rating=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted((tmp_path / "build").rglob("*")):
            z.write(p, p.relative_to(tmp_path / "build"))
    return buf.getvalue()


def test_zip_with_checksum(tmp_path, monkeypatch):
    data = make_appa_zip(tmp_path)
    (tmp_path / "appa-real-release.zip").write_bytes(data)
    url = (tmp_path / "appa-real-release.zip").as_uri()
    source = download.Source(url, folder="appa-real-release", md5=hashlib.md5(data).hexdigest())
    monkeypatch.setitem(download.SOURCES, "appa_real", source)
    folder = download.fetch("appa_real", tmp_path / "out", keep_archive=True)
    assert (tmp_path / "out" / "appa-real-release.zip").is_file()
    ds = datasets.load("appa_real", folder)
    assert sorted(ds.official) == ["test", "train", "valid"] and len(ds) == 7


def test_bad_checksum_is_refused(tmp_path, monkeypatch):
    (tmp_path / "a.zip").write_bytes(make_appa_zip(tmp_path))
    source = download.Source((tmp_path / "a.zip").as_uri(), folder="appa-real-release", md5="0" * 32)
    monkeypatch.setitem(download.SOURCES, "appa_real", source)
    with pytest.raises(download.DownloadError, match="expected 0000"):
        download.fetch("appa_real", tmp_path / "out")
    assert download.fetch("appa_real", tmp_path / "out", verify=False).is_dir()


class RangeServer:
    """Stands in for `urlopen`: serves `data`, honouring `Range: bytes=N-` with a 206."""

    def __init__(self, data):
        self.data, self.ranges = data, []

    def __call__(self, request, timeout=None):
        header = request.get_header("Range")
        self.ranges.append(header)
        start = int(header[len("bytes=") : -1]) if header else 0
        response = io.BytesIO(self.data[start:])
        response.status = 206 if header else 200
        return response


def test_download_resumes_a_partial_file(tmp_path, monkeypatch):
    data = bytes(range(256)) * 100
    server = RangeServer(data)
    monkeypatch.setattr(urllib.request, "urlopen", server)
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(data[:1000])
    download._download("appa_real", download.SOURCES["appa_real"].url, dest)  # served by RangeServer
    assert server.ranges == ["bytes=1000-"]
    assert dest.read_bytes() == data and not (tmp_path / "file.bin.part").exists()


def test_offline_says_what_to_do(tmp_path, offline):
    with pytest.raises(download.DownloadError) as info:
        download.fetch("afad_lite", tmp_path)
    message = str(info.value)
    assert "No network?" in message and "manual_dir" in message
    assert "python -m agekeras download afad_lite --out DIR" in message


def test_arguments_parse_on_a_fresh_parser():
    args = download.add_arguments(argparse.ArgumentParser()).parse_args(["appa_real", "--out", "d", "--no-verify"])
    assert (args.name, str(args.out), args.no_verify, args.keep_archive, args.list) == ("appa_real", "d", True,
                                                                                      False, False)  # fmt: skip
    assert download.add_arguments(argparse.ArgumentParser()).parse_args([]).name is None
    with pytest.raises(SystemExit):  # not a dataset: argparse refuses it
        download.add_arguments(argparse.ArgumentParser()).parse_args(["imdb_wiki"])


def test_command_offline_exits_with_message(tmp_path, offline, capsys):
    assert command("appa_real", "--out", str(tmp_path)) == 1
    assert "No network?" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, page", [("adience", "talhassner"), ("morph2", "MORPH"), ("utkface", "UTKFace")]
)
def test_command_manual_datasets_print_page_and_layout(tmp_path, name, page, capsys):
    assert command(name, "--out", str(tmp_path)) == 1
    message = capsys.readouterr().err
    assert "must be downloaded by hand" in message and page in message
    assert datasets.readers.READERS[name].layout in message


def test_command_downloads_and_lists(tmp_path, monkeypatch, capsys):
    serve_afad_lite(tmp_path, monkeypatch)
    assert command("afad_lite", "--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert f"afad_lite ready in {tmp_path / 'out' / 'AFAD-Lite'}" in out and "load('afad_lite'" in out
    assert command("--list") == 0
    listing = capsys.readouterr().out
    assert "afad_lite       download" in listing and "adience         manual" in listing
    assert command() == 2 and "give a dataset name" in capsys.readouterr().err


def test_script_is_the_same_command(tmp_path, monkeypatch, capsys):
    serve_afad_lite(tmp_path, monkeypatch)
    assert script.main(["afad_lite", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "AFAD-Lite" / ".complete").is_file()
    assert script.main(["adience"]) == 1 and "must be downloaded by hand" in capsys.readouterr().err
