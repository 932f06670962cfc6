"""benchmarks/render.py: README.md and benchmarks/README.md hold exactly what benchmarks/results/ renders."""


import pytest

from . import ROOT, load_script


def _render():
    return load_script("render")


def test_readmes_have_no_drift_from_the_committed_results():
    assert _render().main(["--check"]) == 0


def test_check_fails_when_the_readme_benchmark_block_is_edited_by_hand(tmp_path):
    from agekeras.experiments import benchmark

    render = _render()
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- results:benchmark:start -->")
    readme = tmp_path / "README.md"
    readme.write_text(text[:start] + text[start:].replace("| resnet18_dex", "| resnet18_dex_typed", 1))
    blocks = render.readme_blocks(benchmark.load_committed(root=ROOT / "benchmarks" / "results"))
    assert render.lab_tables.main(["--check"], files={readme: blocks}) == 1
    assert render.lab_tables.main([], files={readme: blocks}) == 0
    assert readme.read_text() == text


def test_every_block_of_the_readmes_is_rendered():
    from agekeras.experiments import benchmark

    render = _render()
    results = benchmark.load_committed(root=ROOT / "benchmarks" / "results")
    for path, blocks in render.files_and_blocks(results).items():
        names = set(render.lab_tables.markers(path.read_text())) - {"NAME"}  # "NAME": the syntax, written out
        assert names == set(blocks), f"{path.name}: markers without a renderer or renderers without markers"


@pytest.mark.parametrize("name", ["benchmark", "benchmark_command"])
def test_readme_benchmark_blocks_come_from_the_reference(name):
    from agekeras.experiments import benchmark

    results = benchmark.load_committed(root=ROOT / "benchmarks" / "results")
    text = (ROOT / "README.md").read_text()
    block = text[text.index(f"<!-- results:{name}:start -->"):text.index(f"<!-- results:{name}:end -->")]
    assert _render().readme_blocks(results)[name](None).strip() in block


def test_ablations_block_shows_each_committed_comparison_and_names_the_others(tmp_path):
    import shutil

    from agekeras.experiments import benchmark

    render = _render()
    committed = ROOT / "benchmarks" / "results"
    papers = [p for p in benchmark.ABLATIONS if (committed / benchmark.ablation_name(p)).is_dir()]
    assert papers, "no committed ablation to render"
    text = render.ablations_markdown(committed)
    for paper in benchmark.ABLATIONS:
        model = benchmark.ABLATIONS[paper]["model"]
        assert (f"| {model} " in text) == (paper in papers)
        assert (f"`--ablation {paper}`" in text) == (paper not in papers)
    # one comparison alone: only its table, every other paper named once
    shutil.copytree(committed / benchmark.ablation_name(papers[0]), tmp_path / benchmark.ablation_name(papers[0]))
    one = render.ablations_markdown(tmp_path)
    assert one.count("the paper's model") == 1
    assert all(one.count(f"`--ablation {p}`") == 1 for p in benchmark.ABLATIONS if p != papers[0])
