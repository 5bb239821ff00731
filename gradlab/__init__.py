"""gradlab: measure gradient explosion with vmapped JAX sweeps.

    import gradlab as gl
    spec = gl.SweepSpec(model=gl.ModelSpec(hidden=(10, 10)), data=gl.DataSpec(name="mnist"),
                        optimizers=("sgd", "adam"), grid={"seed": [0, 1],
                        "learning_rate": [1e-3, 1e-1]}, epochs=1)
    ds = gl.run(spec, out="runs/demo")   # an xarray.Dataset, also saved under runs/demo
    ds = gl.load("runs/demo")            # the same Dataset, read back

The functions and classes below are the whole top-level surface; the modules are namespaces
(``gl.data.load(name)``, ``gl.analysis``, ``gl.plots``, ``gl.theory``, ``gl.schema``, ...).
``docs/architecture.md`` maps the code.
"""

from importlib import metadata as _metadata

from gradlab import curvature, data, engine, metrics, models, optim, schema, store, theory
from gradlab.engine import make_plan, run
from gradlab.errors import ConfigError
from gradlab.spec import DataSpec, ModelSpec, SweepSpec
from gradlab.spec_toml import default_spec, from_toml, read_toml, to_toml
from gradlab.store import load

_LAZY = ("analysis", "export", "plots", "report")  # pandas, matplotlib: imported on first use


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
    "engine",
    "export",
    "from_toml",
    "load",
    "make_plan",
    "metrics",
    "models",
    "optim",
    "plots",
    "read_toml",
    "report",
    "run",
    "schema",
    "store",
    "theory",
    "to_toml",
]
