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

import importlib as _importlib
from importlib import metadata as _metadata

# Everything is imported on first use (PEP 562): ``import gradlab`` is instant, so the command
# line can install its Ctrl-C handler before JAX loads, and ``gl.analysis``/``gl.plots`` (pandas,
# matplotlib) cost nothing until used. The engine turns the persistent compilation cache on
# when it is first imported (``gradlab.engine.cache``).
_MODULES = (
    "analysis", "curvature", "data", "engine", "export", "layer_rates", "metrics", "models",
    "optim", "parametrizations", "plots", "report", "schema", "store", "theory",
)  # fmt: skip
_NAMES = {
    "ConfigError": "gradlab.errors",
    "DataSpec": "gradlab.spec",
    "ModelSpec": "gradlab.spec",
    "SweepSpec": "gradlab.spec",
    "default_spec": "gradlab.spec_toml",
    "from_toml": "gradlab.spec_toml",
    "read_toml": "gradlab.spec_toml",
    "to_toml": "gradlab.spec_toml",
    "load": "gradlab.store",
    "make_plan": "gradlab.engine",
    "run": "gradlab.engine",
    "replay": "gradlab.engine.replay",
    "load_params": "gradlab.saved_params",
}


def __getattr__(name: str):
    if name in _MODULES:
        return _importlib.import_module(f"gradlab.{name}")
    if name in _NAMES:
        return getattr(_importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'gradlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "layer_rates",
    "load",
    "load_params",
    "make_plan",
    "metrics",
    "models",
    "optim",
    "parametrizations",
    "plots",
    "read_toml",
    "replay",
    "report",
    "run",
    "schema",
    "store",
    "theory",
    "to_toml",
]
