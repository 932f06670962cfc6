"""Download a face-age dataset, or explain how to get it by hand.

    python -m data_prep.download afad_lite --out ~/agekeras_data/afad_lite
    python -m data_prep.download appa_real
    python -m data_prep.download adience        # prints the official page and layout
    python -m data_prep.download --list

AFAD (Full, Lite) and APPA-REAL are fetched anonymously (resumable, checksum
verified where known) and extracted; every other dataset needs a licence or
sign-up, so the script exits with the official page and the folder layout
`agekeras.datasets.load` expects. Without network it exits with a message
saying to download on a machine with internet access and copy the folder.
The download code lives in `agekeras.datasets.download` (the TFDS builders
use it too); this file is its command line.
"""

from __future__ import annotations

import argparse
import logging
import pathlib

from agekeras.datasets import default_data_dir
from agekeras.datasets.download import SOURCES, DownloadError, fetch
from agekeras.datasets.readers import READERS


def main(argv: list[str] | None = None) -> pathlib.Path | None:
    """Run the command line.

    Args:
        argv: arguments (default: `sys.argv[1:]`).

    Returns:
        The extracted dataset folder, or None for `--list`.

    Raises:
        SystemExit: with the reason, when the dataset needs a manual download
            or the download fails (e.g. no network).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", choices=sorted(READERS), help="dataset to fetch")
    parser.add_argument("--out", type=pathlib.Path, help="target folder (default: $AGEKERAS_DATA_ROOT/<name>)")
    parser.add_argument("--no-verify", action="store_true", help="skip the checksum check")
    parser.add_argument("--keep-archive", action="store_true", help="keep the archive after extraction")
    parser.add_argument("--list", action="store_true", help="list the datasets and how each is obtained")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in sorted(READERS.items()):
            how = "download" if name in SOURCES else "manual"
            print(f"{name:15s} {how:8s} {spec.homepage}")
        return None
    if args.name is None:
        parser.error("give a dataset name (or --list)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or default_data_dir(args.name)
    try:
        folder = fetch(args.name, out, verify=not args.no_verify, keep_archive=args.keep_archive)
    except DownloadError as e:
        raise SystemExit(str(e)) from e
    print(f"{args.name} ready in {folder}\n  agekeras.datasets.load({args.name!r}, {str(folder)!r})")
    return folder


if __name__ == "__main__":
    main()
