"""The benchmark's recipes and its committed results (publish, load_committed, the rendered README blocks)."""

import json
import pathlib

import pytest

from agekeras.experiments import benchmark as B
from agekeras.experiments.benchmark import running

from .test_benchmark import FakeTrain, _spec

ROOT = pathlib.Path(__file__).resolve().parents[2]


# ----- recipes ---------------------------------------------------------------------------------


def test_cpu_recipe_gives_every_model_the_parts_its_head_can_take(monkeypatch):
    spec = B.make_spec(models=("resnet18_dex", "resnet34_coral", "daa_resnet18"), epochs=1, seeds=(0,), recipe="cpu")
    monkeypatch.setattr(running, "has_softmax_age_head", lambda model, *a: model == "resnet18_dex")
    dex, coral, daa = (running.train_config(spec, m, 0) for m in spec.models)
    mirror_only = {"rotation": 0, "translation": 0, "zoom": 0}
    assert (dex.label_sigma, dex.age_l1, dex.augment) == (2.0, 1.0, mirror_only)
    assert (coral.label_sigma, coral.age_l1, coral.augment) == (None, 1.0, mirror_only)  # the ordinal analogue
    assert (daa.label_sigma, daa.age_l1, daa.augment) == (None, 0.0, mirror_only)  # keeps its own smooth L1
    default = B.make_spec(models=("resnet18_dex",), epochs=1, seeds=(0,))
    config = running.train_config(default, "resnet18_dex", 0)
    assert (config.label_sigma, config.age_l1, config.augment) == (None, 0.0, True)


def test_softmax_head_is_read_from_the_built_model():
    assert running.has_softmax_age_head("resnet18_dex", 32)
    assert not running.has_softmax_age_head("resnet18_coral", 32)


def test_recipe_is_part_of_the_protocol_and_checked():
    assert "cpu recipe" in B.make_spec(recipe="cpu", epochs=1).describe()
    with pytest.raises(ValueError, match="unknown recipe"):
        B.make_spec(recipe="best-ever")


def test_a_folder_trained_with_another_recipe_is_refused(tmp_path):
    B.run_benchmark(_spec(tmp_path, seeds=(0,)), train_fn=FakeTrain(), print_fn=lambda s: None)
    with pytest.raises(ValueError, match="recipe"):
        B.run_benchmark(_spec(tmp_path, seeds=(0,), recipe="cpu"), train_fn=FakeTrain(), print_fn=lambda s: None)


# ----- committed results ---------------------------------------------------------------------------


def test_publish_copies_small_files_without_machine_paths_and_loads_back(tmp_path):
    spec = _spec(tmp_path, seeds=(0,))
    spec.data_dir = str(tmp_path / "machine" / "faces.csv")
    out = pathlib.Path(spec.out)
    B.run_benchmark(spec, train_fn=FakeTrain(), print_fn=lambda s: None)
    run = out / "resnet18_dex" / "seed0"
    (run / "best.keras").write_bytes(b"weights")
    (run / "predictions.csv").write_text(f"path,age,pred_age\n{tmp_path}/machine/img/1_0_0.jpg,1,3.5\n")
    published = B.publish(out, "ref", root=tmp_path / "results")
    copied = sorted(p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file())
    assert "resnet18_dex/seed0/best.keras" not in copied
    assert {"results.json", "results.csv", "resnet18_dex/seed0/config.json", "resnet18_dex/seed0/history.csv",
            "resnet18_dex/seed0/metrics.json", "resnet18_dex/seed0/predictions.csv"} <= set(copied)
    for p in published.rglob("*"):
        if p.is_file():
            assert str(tmp_path) not in p.read_text(), p
    assert (published / "resnet18_dex/seed0/predictions.csv").read_text().splitlines()[1] == "img/1_0_0.jpg,1,3.5"
    assert json.loads((published / "resnet18_dex/seed0/config.json").read_text())["train"]["data_dir"] == \
        "<data root>/synthetic"
    results = B.load_committed("ref", root=tmp_path / "results")
    assert [r["model"] for r in results["runs"]] == ["resnet18_dex", "resnet34_coral"]
    assert "resnet34_coral" not in B.summary_table(results, models=["resnet18_dex"]).to_markdown()


def test_load_committed_says_where_the_results_live_when_absent(tmp_path, capsys):
    assert B.load_committed("nothing", root=tmp_path) is None
    assert "benchmarks/results/" in capsys.readouterr().out
    assert B.load_committed("nothing", root=tmp_path, quiet=True) is None and capsys.readouterr().out == ""


def test_the_repository_holds_the_reference_results():
    results = B.load_committed(root=ROOT / "benchmarks" / "results", quiet=True)
    assert results is not None, f"benchmarks/results/{B.REFERENCE} is missing"
    ran = {r["model"] for r in results["runs"]}
    assert ran and ran <= set(B.DEFAULT_MODELS)
    assert results["settings"]["recipe"] == "cpu" and not results["failed"] and not results["unfinished"]
    missing = set(results["settings"]["models"]) - ran
    assert all(m in B.readme_markdown(results) for m in missing)  # said, not hidden


def test_reproduce_command_names_every_setting():
    settings = {"dataset": "csv", "data_dir": "x", "epochs": 5, "time_budget": None, "seeds": [0, 1], "image_size": 64,
                "batch_size": 64, "recipe": "cpu", "flip": True, "model_args": {"al_ror34": {"small_input": True}}}
    command = B.reproduce_command({"settings": settings})
    for part in ("--epochs 5", "--seeds 0,1", "--recipe cpu", "--flip", "al_ror34:small_input=true",
                 "<UTKFace landmarks CSV>"):
        assert part in command


def test_readme_ablation_command_is_the_one_the_code_prints():
    """The README's `--ablation` example is `ablation_command` of its paper (one protocol, one home)."""
    import re

    text = (ROOT / "README.md").read_text().replace("\\\n    ", "")
    lines = re.findall(r"python -m agekeras benchmark --ablation \w+[^\n]*", text)
    assert lines, "the README shows no --ablation command"
    for line in lines:
        assert line.strip() == B.ablation_command(line.split()[5]), line


def test_lab_table_reads_a_committed_measurement_in_the_order_asked(tmp_path, capsys):
    from agekeras.experiments import benchmark

    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "m.csv").write_text("speed,name,extra\n10,a,x\n20,b,y\n")
    table = benchmark.lab_table("m", {"name": "model", "speed": "img/s", "absent": "never"}, root=tmp_path)
    assert table.columns == ["model", "img/s"]
    assert table.rows == [{"model": "a", "img/s": "10"}, {"model": "b", "img/s": "20"}]
    assert benchmark.lab_table("other", {"name": "model"}, root=tmp_path) is None
    assert "benchmarks/results/lab/other.csv is not here" in capsys.readouterr().out
