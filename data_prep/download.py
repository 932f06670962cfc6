"""Download a face-age dataset, or explain how to get it by hand: `python -m agekeras download`.

This script is the same command for a repository checkout; the code is
`agekeras.datasets.download` (`add_arguments`, `run`).
"""

from __future__ import annotations

import argparse
import sys

from agekeras.datasets import download


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`) and run; returns the exit code."""
    parser = argparse.ArgumentParser(description=download.__doc__.split("\n\n")[0])
    return download.run(download.add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
