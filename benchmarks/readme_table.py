"""Write the README's results table from a benchmark's results.json.

    python benchmarks/readme_table.py runs/bench/results.json [--readme README.md]

Replaces everything between the two marker comments

    <!-- results:start -->
    <!-- results:end -->

of the README with `agekeras.experiments.benchmark.readme_markdown` of the
results (the protocol in one sentence, then mean ± std per model beside the
papers' headline numbers). The table is never copied by hand: re-run the
script after a benchmark. Refuses (exit code 2, file untouched) when the
markers are missing, repeated or out of order.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def replace_between_markers(text, block):
    """`text` with everything between `START` and `END` replaced by `block`.

    Raises:
        ValueError: a marker is missing or repeated, or END comes before START.
    """
    for marker in (START, END):
        count = text.count(marker)
        if count != 1:
            raise ValueError(f"expected the marker {marker} exactly once in the README, found it {count} times; "
                             f"add the two lines {START} and {END} where the table goes")
    i, j = text.index(START), text.index(END)
    if j < i:
        raise ValueError(f"{END} comes before {START} in the README")
    return text[: i + len(START)] + "\n" + block.strip("\n") + "\n" + text[j:]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", help="a benchmark's results.json (or its folder)")
    p.add_argument("--readme", default=str(pathlib.Path(__file__).resolve().parents[1] / "README.md"))
    a = p.parse_args(argv)
    from agekeras.experiments import benchmark

    source = pathlib.Path(a.results)
    results = benchmark.load_results(source if source.is_dir() else source.parent)
    readme = pathlib.Path(a.readme)
    try:
        text = replace_between_markers(readme.read_text(), benchmark.readme_markdown(results))
    except ValueError as e:
        print(f"readme_table: {readme}: {e}", file=sys.stderr)
        return 2
    readme.write_text(text)
    print(f"readme_table: wrote the results of {len(results['runs'])} runs into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
