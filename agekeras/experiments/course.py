"""One set of modes, data and run folders for every notebook.

Each notebook starts with

```python
from agekeras.experiments import course
C = course.setup("01_vovnetv4")       # prints the mode, the data it found, where runs go
```

| mode | when it is the default | what it runs |
|---|---|---|
| `quick` | the `CI` variable is set (the test suite) | synthetic faces, small images, 1-2 epochs, run eagerly: a smoke test |
| `cpu` | no GPU is visible | real faces when present, a time budget per model (`AGEKERAS_TIME_BUDGET`, 15 min) at 64 px |
| `paper` | a GPU is visible and the paper's dataset is under the data root | the paper's settings (sizes, epochs, optimiser), mixed precision on |

`course.setup("01_vovnetv4", mode="cpu")` (or `AGEKERAS_MODE=quick|cpu|paper`)
chooses the mode by hand. A GPU without the paper's dataset runs the cpu
mode's time budget on the GPU, not the paper's hours of training on
synthetic faces (`PAPER_DATASETS` names each notebook's dataset).

Data: one root, `AGEKERAS_DATA_ROOT` (default `~/agekeras_data`), holding
`<root>/utkface`, `<root>/afad`, `<root>/fgnet`, ...; `AGEKERAS_DATA_DIR`
overrides the folder of the notebook's main dataset. A notebook whose data
is missing falls back to synthetic faces and says, in one sentence, what it
would use and how to get it. In paper mode, a missing dataset that can be
fetched anonymously (AFAD, AFAD-Lite, APPA-REAL) is offered for download
first (`Course.offer_download`; `AGEKERAS_DOWNLOAD=yes|no` answers for you).

Runs and figures: under one root, `AGEKERAS_RUNS_ROOT` (default `runs/` in
the working directory). On Colab, `setup` offers to keep it on Google Drive
(`drive=True` mounts it without asking), so that a run resumes after a
disconnect (`agekeras.training.train` continues a run folder it finds).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import sys

from agekeras.runtime import EAGER_ENV, gpu_available

MODES = ("quick", "cpu", "paper")

REPO_URL = "https://github.com/agekeras/agekeras"
"""The repository: the notebooks' install cells and Colab badges and the README point here."""

PAPER_DATASETS = {
    "01_vovnetv4": ("afad",),
    "02_attention_lstm": ("morph2", "lap2016"),
    "03_daa": ("morph2",),
    "04_dhaa": ("morph2",),
    "05_gra_net": ("utkface", "afad"),
}
"""The dataset(s) each paper notebook's paper mode trains on (any one found is enough)."""

DRIVE_RUNS_ROOT = "/content/drive/MyDrive/agekeras_runs"
"""Where Colab runs are kept when Google Drive is mounted (`setup(drive=True)`)."""

SMOKE_TEST_NOTE = ("Quick mode: a smoke test on a few synthetic faces for one or two epochs; "
                   "the numbers above only show that the code runs.")


def default_mode() -> str:
    """`AGEKERAS_MODE`, else quick under `CI`, paper with a GPU, cpu otherwise."""
    mode = os.environ.get("AGEKERAS_MODE", "").strip().lower()
    if mode:
        if mode not in MODES:
            raise ValueError(f"AGEKERAS_MODE must be one of {MODES}; got {mode!r}")
        return mode
    if os.environ.get("CI"):
        return "quick"
    return "paper" if gpu_available() else "cpu"


def can_ask() -> bool:
    """Whether a question (`input()`) can be answered here.

    False when the `CI` variable is set; inside a Jupyter kernel, whether
    its frontend takes input (not a headless `jupyter nbconvert --execute`);
    otherwise whether standard input is a terminal (False for a script run
    by a scheduler or with piped input).
    """
    if os.environ.get("CI"):
        return False
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    if ip is not None and getattr(ip, "kernel", None) is not None:
        return bool(getattr(ip.kernel, "_allow_stdin", True))  # ipykernel sets it per executed cell
    try:
        return bool(sys.stdin is not None and sys.stdin.isatty())
    except (AttributeError, ValueError, OSError):  # closed or replaced stdin
        return False


LANDMARKS_CSV = "utkface_landmarks.csv"
"""The UTKFace landmarks CSV the notebooks look for in the data root (`Course.landmarks_csv`)."""


@dataclasses.dataclass
class Course:
    """What a notebook needs to know about where it runs.

    Attributes:
        notebook: short name, used for run and figure folders.
        mode: "quick", "cpu" or "paper".
        data_root: the folder holding every dataset.
        runs_root: the folder holding every run (`<runs_root>/<notebook>/...`).
        time_budget: training minutes per model in cpu mode.
        gpu: whether a GPU is visible.
    """

    notebook: str
    mode: str
    data_root: pathlib.Path
    runs_root: pathlib.Path
    time_budget: float
    gpu: bool

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    @property
    def paper(self) -> bool:
        return self.mode == "paper"

    @property
    def mixed_precision(self) -> bool:
        """Paper mode on a GPU trains in mixed precision."""
        return self.paper and self.gpu

    def pick(self, quick, cpu, paper):
        """The value for the current mode: `C.pick(quick=2, cpu=None, paper=200)`."""
        return {"quick": quick, "cpu": cpu, "paper": paper}[self.mode]

    def data_dir(self, name, main=True):
        """The folder of dataset `name`, or None when it is not there.

        `AGEKERAS_DATA_DIR` wins for the notebook's main dataset (`main=True`).
        """
        from agekeras.datasets.download import SOURCES

        override = os.environ.get("AGEKERAS_DATA_DIR") if main else None
        for candidate in (override, self.data_root / name):
            if candidate and pathlib.Path(candidate).expanduser().is_dir():
                path = pathlib.Path(candidate).expanduser()
                if name in SOURCES and (path / SOURCES[name].folder / ".complete").is_file():
                    return path / SOURCES[name].folder  # as `offer_download` left it
                if any(path.iterdir()):
                    return path
        return None

    def offer_download(self, name, *, ask=None):
        """In paper mode, offer to fetch a missing dataset that has an anonymous source.

        Only AFAD, AFAD-Lite and APPA-REAL can be fetched without an account
        (`agekeras.datasets.download.SOURCES`). The offer is made when the
        mode is paper, the dataset is not under the data root and its server
        answers; the answer comes from `AGEKERAS_DOWNLOAD` (`yes` / `no`)
        when set, else from a y/N question. Where nobody can answer
        (`can_ask()` is False: the `CI` variable is set, or a script whose
        standard input is not a terminal) no question is asked and the answer
        is no; so is a kernel whose frontend cannot answer (a headless run).

        Args:
            name: dataset name ("afad", "afad_lite", "appa_real").
            ask: the function that asks the question (default `input`, when
                `can_ask()`).

        Returns:
            The extracted dataset folder, or None when nothing was fetched.
        """
        from agekeras.datasets import download

        found = self.data_dir(name, main=False)
        if found is not None or not self.paper or name not in download.SOURCES:
            return found
        answer = os.environ.get("AGEKERAS_DOWNLOAD", "").strip().lower()
        if not answer and ask is None and not can_ask():
            print(f"{name} is not in {self.data_root / name}; not asking to download it here "
                  f"(set AGEKERAS_DOWNLOAD=yes, or run python -m agekeras download {name}).")
            return None
        if not download.reachable(name):
            print(f"{name} is not in {self.data_root / name} and its server cannot be reached (offline?).")
            return None
        if not answer:
            ask = input if ask is None else ask
            try:
                answer = ask(f"{name} is not in {self.data_root / name}. Download it from "
                             f"{download.SOURCES[name].url} (several GB)? [y/N] ").strip().lower()
            except (EOFError, OSError, NotImplementedError, RuntimeError):  # no stdin to ask on
                answer = "no"
        if answer not in ("y", "yes", "1", "true"):
            print(f"Not downloading {name} (python -m agekeras download {name} fetches it later).")
            return None
        try:
            return download.fetch(name, self.data_root / name)
        except download.DownloadError as e:
            print(f"Download of {name} failed: {e}")
            return None

    def dataset(self, name, *, fallback_n=4000, quick_n=400, how=None):
        """`(dataset name, data_dir, reader kwargs)` for this mode.

        Quick mode always uses `quick_n` synthetic faces. Otherwise the real
        dataset when found, else `fallback_n` synthetic faces with one printed
        sentence saying what is missing and how to get it.
        """
        if self.quick or name == "synthetic":
            return "synthetic", None, {"n": quick_n if self.quick else fallback_n}
        path = self.data_dir(name)
        if path is None and self.paper:
            path = self.offer_download(name)
        if path is not None:
            return name, str(path), {}
        hint = how or f"put it in {self.data_root / name} or set AGEKERAS_DATA_DIR"
        print(f"No {name} data found: using {fallback_n} synthetic faces instead ({hint}).")
        return "synthetic", None, {"n": fallback_n}

    def landmarks_csv(self):
        """A UTKFace landmarks CSV (`--dataset csv`: the faces of the UTKFace
        folder with five landmarks each), or None.

        Looks for `<data root>/utkface_landmarks.csv`, then for one that
        `python -m agekeras align utkface ...` left in its cache.
        """
        candidates = [self.data_root / LANDMARKS_CSV]
        from agekeras.datasets.validate import cache_dir

        candidates += sorted(pathlib.Path(p) for p in glob.glob(str(cache_dir() / "landmarks" / "utkface-*.csv"))
                             if not p.endswith(".not_found.csv"))  # fmt: skip
        return next((c for c in candidates if c.is_file()), None)

    def run_dir(self, name) -> pathlib.Path:
        """`<runs_root>/<notebook>/<mode>/<name>`: re-use it to resume."""
        return self.runs_root / self.notebook / self.mode / name

    def figure_path(self, name) -> pathlib.Path:
        """`<runs_root>/<notebook>/<mode>/figures/<name>`."""
        return self.runs_root / self.notebook / self.mode / "figures" / name

    def smoke_test_note(self):
        """Print, in quick mode only, that the results above are a smoke test."""
        if self.quick:
            print(SMOKE_TEST_NOTE)

    def describe(self) -> str:
        accel = "a GPU" if self.gpu else "no GPU"
        budget = f", {self.time_budget:g} min per model" if self.mode == "cpu" else ""
        return (
            f"mode={self.mode} ({accel}{budget}); data root {self.data_root}; runs under {self.runs_root / self.notebook}"
        )


def on_colab() -> bool:
    """Whether this kernel runs on Google Colab."""
    return "google.colab" in sys.modules


def paper_data_found(notebook, data_root) -> bool:
    """Whether a dataset of the notebook's paper mode (`PAPER_DATASETS`) is under `data_root`."""
    root = pathlib.Path(data_root)
    for name in PAPER_DATASETS.get(notebook, ()):
        path = root / name
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            return True
    return False


def choose_mode(notebook, mode, data_root, gpu) -> tuple[str, str | None]:
    """`(mode, reason)`: the mode asked for, else `default_mode()`, except that
    a default of paper mode (a GPU) without the paper's dataset becomes cpu
    mode, the time-budgeted one, run on the GPU; `reason` says so, else None."""
    if mode:
        return mode.lower(), None
    chosen = default_mode()
    if (chosen == "paper" and not os.environ.get("AGEKERAS_MODE") and notebook in PAPER_DATASETS
            and not paper_data_found(notebook, data_root)):
        names = " or ".join(PAPER_DATASETS[notebook])
        return "cpu", (f"a GPU is visible but no {names} under the data root: the time-budgeted mode runs on the GPU "
                       f"(mode='paper' trains with the paper's settings)")
    return chosen, None


def mount_drive_runs_root(drive, *, ask=None) -> pathlib.Path | None:
    """On Colab, offer to keep the runs on Google Drive; returns the runs root, or None.

    Args:
        drive: True mounts Drive without asking, False never does, None asks
            (when `can_ask()`).
        ask: the function that asks (default `input`).
    """
    if drive is False or not on_colab() or os.environ.get("AGEKERAS_RUNS_ROOT"):
        return None
    if drive is None:
        if ask is None and not can_ask():
            return None
        ask = input if ask is None else ask
        try:
            answer = ask("Keep the runs on Google Drive, so that they survive a disconnect and resume? [y/N] ")
        except (EOFError, OSError, NotImplementedError, RuntimeError):
            answer = "no"
        if answer.strip().lower() not in ("y", "yes"):
            return None
    from google.colab import drive as colab_drive  # only importable on Colab

    colab_drive.mount("/content/drive")
    root = pathlib.Path(DRIVE_RUNS_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def setup(notebook, mode=None, *, drive=None, verbose=True) -> Course:
    """The `Course` of a notebook; prints one line describing it.

    Also makes figures returned by `agekeras.plots` display as images in the
    kernel, and, in paper mode on a GPU, turns on mixed precision.

    Args:
        notebook: short name ("00_getting_started", "01_vovnetv4", ...).
        mode: "quick", "cpu" or "paper"; default `choose_mode()`:
            `AGEKERAS_MODE`, else quick under `CI`, else paper on a GPU that
            has the paper's dataset, else cpu.
        drive: on Colab, keep the runs on Google Drive (`mount_drive_runs_root`):
            True mounts it, False never, None asks.
        verbose: print the description.

    Returns:
        A `Course`.
    """
    from agekeras import plots
    from agekeras.datasets import data_root

    root = data_root()
    gpu = gpu_available()
    mode, reason = choose_mode(notebook, mode, root, gpu)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    runs_root = mount_drive_runs_root(drive) or pathlib.Path(os.environ.get("AGEKERAS_RUNS_ROOT", "runs")).expanduser()
    course = Course(
        notebook=notebook,
        mode=mode,
        data_root=root,
        runs_root=runs_root,
        time_budget=float(os.environ.get("AGEKERAS_TIME_BUDGET", 15)),
        gpu=gpu,
    )
    plots.register_notebook_display()
    if course.quick:  # a few batches per run: eager execution skips the graph tracing (`runtime.run_eagerly`)
        os.environ.setdefault(EAGER_ENV, "1")
    if course.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    if verbose:
        if reason:
            print(reason)
        print(course.describe())
    return course
