"""Modes, data lookup and the paper-mode download offer (no network: the fetch is replaced)."""

import pathlib

import pytest

from agekeras.datasets import download
from agekeras.experiments import course


def _course(tmp_path, mode):
    return course.Course(notebook="nb", mode=mode, data_root=tmp_path / "data", runs_root=tmp_path / "runs",
                         time_budget=15.0, gpu=False)


def test_default_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv("AGEKERAS_MODE", "Paper")
    assert course.default_mode() == "paper"
    monkeypatch.setenv("AGEKERAS_MODE", "fast")
    with pytest.raises(ValueError, match="AGEKERAS_MODE"):
        course.default_mode()
    monkeypatch.delenv("AGEKERAS_MODE")
    monkeypatch.setenv("CI", "true")
    assert course.default_mode() == "quick"


def test_pick_and_folders(tmp_path):
    C = _course(tmp_path, "cpu")
    assert C.pick(quick=1, cpu=2, paper=3) == 2
    assert C.run_dir("r") == tmp_path / "runs" / "nb" / "cpu" / "r"
    assert C.figure_path("f.png") == tmp_path / "runs" / "nb" / "cpu" / "figures" / "f.png"


def test_missing_data_falls_back_to_synthetic_with_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AGEKERAS_DATA_DIR", raising=False)
    name, path, kwargs = _course(tmp_path, "cpu").dataset("utkface", fallback_n=123)
    assert (name, path, kwargs) == ("synthetic", None, {"n": 123})
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "No utkface data found" in out[0]


def test_landmarks_csv_in_the_data_root_then_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEKERAS_CACHE", str(tmp_path / "cache"))
    C = _course(tmp_path, "cpu")
    assert C.landmarks_csv() is None
    cached = tmp_path / "cache" / "landmarks" / "utkface-utkface-dev.csv"
    cached.parent.mkdir(parents=True)
    cached.with_suffix(".not_found.csv").write_text("path,age,reason,handled\n")  # the list of misses is not one
    assert C.landmarks_csv() is None
    cached.write_text("path,age\n")
    assert C.landmarks_csv() == cached
    C.data_root.mkdir()
    (C.data_root / course.LANDMARKS_CSV).write_text("path,age\n")
    assert C.landmarks_csv() == C.data_root / course.LANDMARKS_CSV


def test_data_dir_override_and_root(tmp_path, monkeypatch):
    C = _course(tmp_path, "cpu")
    (C.data_root / "utkface").mkdir(parents=True)
    assert C.data_dir("utkface") is None  # empty folders do not count
    (C.data_root / "utkface" / "1_0_0_x.jpg").touch()
    assert C.data_dir("utkface") == C.data_root / "utkface"
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "a.jpg").touch()
    monkeypatch.setenv("AGEKERAS_DATA_DIR", str(other))
    assert C.data_dir("utkface") == other
    assert C.data_dir("utkface", main=False) == C.data_root / "utkface"


@pytest.fixture
def fake_fetch(monkeypatch):
    """Replace the network: `reachable` says yes, `fetch` unpacks an empty dataset folder."""
    calls = []

    def fetch(name, out_dir, **_):
        calls.append(name)
        target = pathlib.Path(out_dir) / download.SOURCES[name].folder
        target.mkdir(parents=True)
        (target / ".complete").touch()
        return target

    monkeypatch.setattr(download, "reachable", lambda name, timeout=3.0: True)
    monkeypatch.setattr(download, "fetch", fetch)
    monkeypatch.delenv("AGEKERAS_DOWNLOAD", raising=False)
    monkeypatch.delenv("AGEKERAS_DATA_DIR", raising=False)
    return calls


def test_paper_mode_downloads_after_a_yes_and_finds_it_again(tmp_path, fake_fetch):
    C = _course(tmp_path, "paper")
    questions = []
    got = C.offer_download("afad", ask=lambda q: questions.append(q) or "y")
    assert got == C.data_root / "afad" / "AFAD-Full"
    assert fake_fetch == ["afad"] and "[y/N]" in questions[0]
    assert C.data_dir("afad") == got  # the next session finds it without asking
    assert C.offer_download("afad", ask=lambda q: pytest.fail("asked twice")) == got


@pytest.mark.parametrize("mode,answer", [("paper", "n"), ("paper", ""), ("cpu", "y"), ("quick", "y")])
def test_no_download_unless_paper_mode_and_a_yes(tmp_path, fake_fetch, mode, answer):
    assert _course(tmp_path, mode).offer_download("afad", ask=lambda q: answer) is None
    assert fake_fetch == []


def test_a_kernel_that_cannot_ask_counts_as_no(tmp_path, fake_fetch):
    def cannot(_):
        raise NotImplementedError("raw_input was called, but this frontend does not support input requests")

    assert _course(tmp_path, "paper").offer_download("appa_real", ask=cannot) is None
    assert fake_fetch == []


def test_environment_answers_and_datasets_without_a_source_are_not_offered(tmp_path, fake_fetch, monkeypatch):
    C = _course(tmp_path, "paper")
    monkeypatch.setenv("AGEKERAS_DOWNLOAD", "yes")
    assert C.offer_download("utkface", ask=lambda q: pytest.fail("asked")) is None  # needs a sign-up
    name, path, _ = C.dataset("afad_lite")
    assert name == "afad_lite" and path.endswith("AFAD-Lite") and fake_fetch == ["afad_lite"]


def test_offline_paper_mode_says_so_and_falls_back(tmp_path, fake_fetch, monkeypatch, capsys):
    monkeypatch.setattr(course, "can_ask", lambda: True)
    monkeypatch.setattr(download, "reachable", lambda name, timeout=3.0: False)
    name, _, _ = _course(tmp_path, "paper").dataset("appa_real", fallback_n=10)
    assert name == "synthetic" and fake_fetch == []
    assert "cannot be reached" in capsys.readouterr().out


def test_reachable_is_false_without_a_source_or_a_server(monkeypatch):
    assert download.reachable("utkface") is False
    monkeypatch.setitem(download.SOURCES, "afad", download.Source("http://127.0.0.1:9/x.tar", folder="x"))
    assert download.reachable("afad", timeout=0.5) is False  # nothing listens on the discard port


class _Stdin:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("ci,tty,expected", [("true", True, False), ("", False, False), ("", True, True)])
def test_can_ask_only_with_a_terminal_and_outside_ci(monkeypatch, ci, tty, expected):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(course.sys, "stdin", _Stdin(tty))
    assert course.can_ask() is expected


def test_nobody_to_ask_means_no_question_and_no_network(tmp_path, fake_fetch, monkeypatch, capsys):
    """A headless paper-mode run (CI, a scheduler, nbconvert) falls back at once: it neither
    waits on input() nor probes the server."""
    monkeypatch.setattr(course, "can_ask", lambda: False)
    monkeypatch.setattr(download, "reachable", lambda name, timeout=3.0: pytest.fail("probed the network"))
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("asked"))
    name, _, _ = _course(tmp_path, "paper").dataset("afad", fallback_n=10)
    assert name == "synthetic" and fake_fetch == []
    assert "not asking" in capsys.readouterr().out
    monkeypatch.setenv("AGEKERAS_DOWNLOAD", "yes")  # the environment still answers
    monkeypatch.setattr(download, "reachable", lambda name, timeout=3.0: True)
    name, path, _ = _course(tmp_path, "paper").dataset("afad")
    assert name == "afad" and fake_fetch == ["afad"]


def test_a_gpu_without_the_papers_data_runs_the_time_budgeted_mode(tmp_path, monkeypatch):
    for var in ("AGEKERAS_MODE", "CI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(course, "gpu_available", lambda: True)
    mode, reason = course.choose_mode("01_vovnetv4", None, tmp_path, gpu=True)
    assert mode == "cpu" and "afad" in reason
    (tmp_path / "afad").mkdir()
    (tmp_path / "afad" / "x.jpg").write_bytes(b"x")
    assert course.choose_mode("01_vovnetv4", None, tmp_path, gpu=True) == ("paper", None)
    assert course.choose_mode("02_attention_lstm", None, tmp_path, gpu=True)[0] == "cpu"
    assert course.choose_mode("02_attention_lstm", "paper", tmp_path, gpu=True) == ("paper", None)  # asked for
    monkeypatch.setenv("AGEKERAS_MODE", "paper")
    assert course.choose_mode("03_daa", None, tmp_path, gpu=True) == ("paper", None)
    monkeypatch.setattr(course, "gpu_available", lambda: False)
    monkeypatch.delenv("AGEKERAS_MODE")
    assert course.choose_mode("03_daa", None, tmp_path, gpu=False) == ("cpu", None)


def test_every_paper_notebook_names_its_paper_datasets():
    notebooks = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[2] / "notebooks").glob("0[1-5]_*.ipynb"))
    assert len(notebooks) == 5
    for name in notebooks:
        assert any(name.startswith(key) for key in course.PAPER_DATASETS), name


def test_colab_offers_to_keep_the_runs_on_drive(tmp_path, monkeypatch):
    import sys
    import types

    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(course, "DRIVE_RUNS_ROOT", str(tmp_path / "drive" / "agekeras_runs"))
    monkeypatch.delenv("AGEKERAS_RUNS_ROOT", raising=False)
    assert course.mount_drive_runs_root(None, ask=lambda q: "n") is None and not mounted
    assert course.mount_drive_runs_root(False) is None
    root = course.mount_drive_runs_root(None, ask=lambda q: "y")
    assert root == tmp_path / "drive" / "agekeras_runs" and root.is_dir() and mounted == ["/content/drive"]
    monkeypatch.setenv("AGEKERAS_RUNS_ROOT", str(tmp_path / "mine"))
    assert course.mount_drive_runs_root(True) is None  # the user's own runs root wins
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.delenv("AGEKERAS_RUNS_ROOT")
    assert course.mount_drive_runs_root(True) is None  # not on Colab


def test_the_smoke_test_note_is_printed_in_quick_mode_only(tmp_path, capsys):
    _course(tmp_path, "quick").smoke_test_note()
    assert "smoke test" in capsys.readouterr().out
    _course(tmp_path, "cpu").smoke_test_note()
    assert capsys.readouterr().out == ""
