"""Where data files live: the data directory that datasets are read from and cached in."""

from __future__ import annotations

import os
import pathlib

__all__ = ["PathLike", "data_dir"]

PathLike = str | os.PathLike[str]


def data_dir(path: PathLike | None = None) -> pathlib.Path:
    """Returns the directory that datasets are read from and cached in.

    Args:
      path: an explicit directory; it wins over the environment.

    Returns:
      ``path`` if given, else ``$GRADLAB_DATA`` if set and non-empty, else ``~/.cache/gradlab``
      (user-expanded; not created).
    """
    if path is None:
        path = os.environ.get("GRADLAB_DATA") or pathlib.Path.home() / ".cache" / "gradlab"
    return pathlib.Path(path).expanduser()
