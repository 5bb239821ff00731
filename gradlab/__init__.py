"""gradlab: measure gradient explosion with vmapped JAX sweeps.

import gradlab as gl
spec = gl.SweepSpec(model=gl.ModelSpec(hidden=(10, 10)), data=gl.DataSpec(name="mnist"),
                    optimizers=("sgd", "adam"), grid={"seed": [0, 1],
                    "learning_rate": [1e-3, 1e-1]}, epochs=1)
ds = gl.run(spec, out="runs/demo")   # an xarray.Dataset, also saved under runs/demo
"""

from importlib import metadata as _metadata

from gradlab import curvature, data, metrics, models, optim, theory
from gradlab.engine import load_data, make_plan, run
from gradlab.spec import (
    ConfigError,
    DataSpec,
    ModelSpec,
    SweepSpec,
    default_spec,
    from_toml,
    load_toml,
    to_toml,
)
from gradlab.store import load

_LAZY = ("analysis", "plots", "report")  # matplotlib/pandas: imported on first use


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"gradlab.{name}")
    raise AttributeError(f"module 'gradlab' has no attribute {name!r}")


try:
    __version__ = _metadata.version("gradlab")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConfigError",
    "DataSpec",
    "ModelSpec",
    "SweepSpec",
    "__version__",
    "analysis",
    "curvature",
    "data",
    "default_spec",
    "from_toml",
    "load",
    "load_data",
    "load_toml",
    "make_plan",
    "metrics",
    "models",
    "optim",
    "plots",
    "report",
    "run",
    "theory",
    "to_toml",
]
