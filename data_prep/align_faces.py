"""Detect faces and five landmarks with MTCNN; write a landmarks CSV per dataset: `python -m agekeras align`.

This script is the same command for a repository checkout; the code is
`agekeras.datasets.align.batch` (`add_arguments`, `run`).
"""

from __future__ import annotations

import argparse
import sys

from agekeras.datasets.align import batch


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`) and run; returns the exit code."""
    parser = argparse.ArgumentParser(description=batch.__doc__.split("\n\n")[0])
    return batch.run(batch.add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
