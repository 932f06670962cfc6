"""benchmarks/lab_tables.py: every measured number of the two READMEs is rendered from benchmarks/results/."""

import csv
import shutil

import pytest

from . import ROOT, load_script


def _script():
    return load_script("lab_tables")


L = _script()


def test_the_readmes_are_what_their_result_files_render():
    for path, blocks in L.FILES.items():
        text = path.read_text()
        assert L.render(text, blocks) == text, f"{path.name} differs from benchmarks/results/: " \
                                               "run python benchmarks/lab_tables.py"
        for name, (start, end) in L.markers(text).items():  # each block holds exactly what its function renders
            if name in blocks:
                assert text[start.end():end.start()] == "\n" + blocks[name]().strip("\n") + "\n", name
    assert L.main(["--check"]) == 0


def test_every_block_has_its_markers_and_every_lab_file_is_read():
    for path, blocks in L.FILES.items():
        assert set(blocks) <= set(L.markers(path.read_text())), path
    source = (ROOT / "benchmarks" / "lab_tables.py").read_text()
    for file in (ROOT / "benchmarks" / "results" / "lab").iterdir():
        assert f'"{file.stem}"' in source, f"{file.name} is rendered by no block"


def test_the_readme_keeps_the_benchmark_block_for_its_own_renderer():
    pairs = L.markers((ROOT / "README.md").read_text())
    assert "benchmark" in pairs and "benchmark" not in L.README_BLOCKS
    text = "a\n<!-- results:benchmark:start -->\nkept\n<!-- results:benchmark:end -->\n" \
           "<!-- results:x:start -->\nold\n<!-- results:x:end -->\n"
    assert L.render(text, {"x": "new"}) == text.replace("old", "new")  # only the named block changes


def _copy(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    return results


def _edit_csv(path, match, column, value):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    hits = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(hits) == 1
    hits[0][column] = value
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def test_a_changed_value_changes_the_rendered_text(tmp_path):
    results = _copy(tmp_path)
    before = {name: f(results) for name, f in {**L.BLOCKS, **L.README_BLOCKS}.items()}
    recipe = {"recipe": "64 px, sigma 2 + L1, mirror only (the recipe)", "seed": "2"}
    _edit_csv(results / "lab" / "recipe_search.csv", recipe, "test_mae_flip", "5.19")
    _edit_csv(results / "lab" / "train_throughput.csv", {"model": "vovnet39"}, "ratio", "0.44")
    after = {name: f(results) for name, f in {**L.BLOCKS, **L.README_BLOCKS}.items()}
    changed = {name for name in before if before[name] != after[name]}
    # the recipe's mean with flip moves from (5.24 + 5.13 + 4.89) / 3 to (5.24 + 5.13 + 5.19) / 3
    assert "**5.09 ± 0.18** with flip" in before["recipe"] and "**5.19 ± 0.06** with flip" in after["recipe"]
    assert "| 4.89 |" not in after["recipe_search"].replace("**", "") and "5.19" in after["recipe_search"]
    assert "**Three models reach 0.5**" in before["train_throughput_notes"]
    assert "**Two models reach 0.5** (`daa_resnet18_plain`, `al_resnet152`)" in after["train_throughput_notes"]
    assert {"recipe", "recipe_search", "recipe_summary", "recipe_augmentation", "recipe_views",
            "train_throughput", "train_throughput_notes"} <= changed
    assert "input_pipeline" not in changed and "quickstart" not in changed

    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text()
    readme.write_text(original)
    assert L.main(["--check"], files={readme: L.README_BLOCKS}, results=results) == 1  # drift
    assert readme.read_text() == original  # --check changes nothing
    assert L.main([], files={readme: L.README_BLOCKS}, results=results) == 0
    assert "**5.19 ± 0.06** with flip" in readme.read_text()
    assert L.main(["--check"], files={readme: L.README_BLOCKS}, results=results) == 0


def test_a_speed_table_names_its_date_machine_and_the_2x_spread():
    for name, meta in (("input_pipeline", "input_pipeline"), ("daa_decoder", "daa_decoder"),
                       ("dhaa_training", "dhaa_training"), ("train_throughput", "train_throughput"),
                       ("train_throughput_resnet18", "train_throughput_resnet18"), ("xla", "train_throughput_xla"),
                       ("recipe_search", "recipe_search"), ("end_to_end", "end_to_end"), ("autotune", "autotune"),
                       ("synthetic", "synthetic_generation")):
        text = L.BLOCKS[name]()
        assert L.read_json(meta)["date"] in text and "2x" in text and "matmul peak" in text, name
    assert "**373.5 GFLOP/s**" in L.BLOCKS["train_throughput"]()
    assert "float32 matmul peak 314-316 GFLOP/s" in L.BLOCKS["train_throughput_resnet18"]()


@pytest.mark.parametrize("text, message", [
    ("no markers at all\n", "no markers for the block"),
    ("<!-- results:x:start -->\n<!-- results:x:start -->\n<!-- results:x:end -->\n", "exactly once"),
    ("<!-- results:x:start -->\na\n", "exactly once"),
    ("<!-- results:x:end -->\n<!-- results:x:start -->\n", "comes before"),
    ("<!-- results:x:start -->\n<!-- results:y:start -->\n<!-- results:x:end -->\n<!-- results:y:end -->\n", "overlap"),
    ("<!-- results:x:start -->\n<!-- results:x:end -->\n<!-- results:y:end -->\n", "exactly once"),
])
def test_broken_markers_are_errors(text, message):
    with pytest.raises(ValueError, match=message):
        L.render(text, {"x": "block"})


def test_main_refuses_broken_markers_and_leaves_the_file(tmp_path):
    broken = tmp_path / "README.md"
    broken.write_text("<!-- results:recipe:end -->\n<!-- results:recipe:start -->\n")
    assert L.main([], files={broken: {"recipe": L.recipe_score}}) == 2
    assert broken.read_text() == "<!-- results:recipe:end -->\n<!-- results:recipe:start -->\n"
