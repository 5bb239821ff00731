"""Execute research notebooks in full mode and store their outputs (and claims) in place.

    python notebooks/execute.py 03_signal_propagation [04_edge_of_stability ...]
    python notebooks/execute.py --all

Each notebook runs from a clean kernel with ``notebooks/`` as its working directory, so its
claims land in ``notebooks/claims/<name>.json``; the wall time of each run is printed. CI runs
the same notebooks shrunk (``GRADLAB_FAST=1``, tests/test_notebooks.py).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def execute(name: str) -> float:
    """Run ``notebooks/<name>.ipynb`` in full mode, write it back; returns the seconds taken."""
    path = HERE / f"{Path(name).stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    env_fast = os.environ.pop("GRADLAB_FAST", None)
    start = time.perf_counter()
    try:
        nbclient.NotebookClient(
            nb, kernel_name="python3", timeout=None, resources={"metadata": {"path": str(HERE)}}
        ).execute()
    finally:
        if env_fast is not None:
            os.environ["GRADLAB_FAST"] = env_fast
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names (with or without .ipynb)")
    parser.add_argument("--all", action="store_true", help="every numbered notebook")
    args = parser.parse_args()
    names = sorted(p.stem for p in HERE.glob("[0-9]*.ipynb")) if args.all else args.names
    for name in names:
        print(f"{name}: {execute(name):.0f} s", flush=True)


if __name__ == "__main__":
    main()
