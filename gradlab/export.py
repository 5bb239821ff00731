"""Export a sweep to where researchers already look: TensorBoard's Scalars and HParams.

    gl.export.tensorboard("runs/demo", "tb/demo")
    # or: gradlab export runs/demo --tensorboard tb/demo
    # then: tensorboard --logdir tb/demo

Layout: one TensorBoard run (a directory under ``logdir``) per run of the sweep, named by its grid
point, the optimizer chain then every grid axis in grid order (:func:`run_name`), e.g.
``optimizer=adam,seed=0,learning_rate=0.01``. Each directory holds one event file with

- **scalars**, one tag per per-step variable of :data:`gradlab.schema.VARIABLES` that the Dataset
  holds (``loss``, ``grad_norm``, ...), at its logged steps; a per-layer variable is one tag
  per layer, ``grad_norm_layer/0`` (layer 0 is the input side);
- the **HParams plugin's** session: the hyperparameters (``optimizer`` and every grid axis, with
  the sweep's values as each one's discrete domain) and, as its metrics, every per-run variable
  (``final_loss``, ``test_loss``, ``test_accuracy``, ``diverged`` as 0/1, ``diverged_at``),
  written as scalars of those names at the last logged step, each described by the schema's
  meaning. A run that diverged ends with the status ``STATUS_FAILURE``, the others with
  ``STATUS_SUCCESS``, so the HParams table can filter on it.

TensorBoard's HParams table then compares the runs, one row each, and its parallel-coordinates
view draws every grid axis against the final metrics.

Values. Only measurements are written: a run that diverged at step t has scalars up to and
including t (the step of divergence keeps what was measured there, ``inf`` included), and the
variables that describe the update of a step (:attr:`gradlab.schema.Variable.of_update`:
``update_norm``, ``clipped``, ...) up to t − 1, because that update was never applied; after it
nothing is written (the Dataset holds NaN there, and ``False`` for flags). Any other NaN (a
curvature metric between its ``sharpness_every`` steps, accuracy of a regression, a metric of a
diverged run such as its ``final_loss``) is skipped too: TensorBoard shows no point, never a
NaN or a zero. Flags are written as 0/1. TensorBoard stores scalars as float32: gradlab's metrics
are float32 and read back equal to the Dataset's (a ``dtype="float64"`` sweep's are rounded).
Variables the schema does not know are not exported.

The writer is tensorboardX, which writes TensorBoard's event files and the HParams plugin's
protocol buffers without TensorFlow: ``pip install "gradlab[tensorboard]"``.

References:
  TensorBoard HParams dashboard: https://www.tensorflow.org/tensorboard/hyperparameter_tuning_with_hparams
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from gradlab import schema
from gradlab.analysis import grid_axes

__all__ = ["run_name", "tensorboard"]

_EXTRA = "pip install 'gradlab[tensorboard]'"
_EVENTS = "events.out.tfevents.*"


def run_name(point: dict[str, Any]) -> str:
    """The TensorBoard run name of one grid point: ``axis=value`` joined by commas.

    Args:
      point: ``{"optimizer": chain, axis: value, ...}`` in grid order; numpy scalars print their
        shortest round-trip form (``0.01``, not ``0.01000000000000000021``).

    Returns:
      e.g. ``"optimizer=adam,seed=0,learning_rate=0.01"``. A path separator inside a value (a
      callable chain's name) becomes ``_``, so every run is one directory.

    Example:
      >>> run_name({"optimizer": "sgd", "seed": np.int64(1), "learning_rate": np.float64(0.1)})
      'optimizer=sgd,seed=1,learning_rate=0.1'
    """
    text = ",".join(f"{axis}={value}" for axis, value in point.items())
    return text.replace("/", "_").replace(os.sep, "_")


def tensorboard(
    ds_or_run_dir: xr.Dataset | str | os.PathLike[str],
    logdir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write a sweep's per-step metrics and hyperparameters as TensorBoard event files.

    See the module docstring for the layout and for which values are written.

    Args:
      ds_or_run_dir: a result Dataset (``gl.run``, ``gl.load``) or a run directory.
      logdir: the TensorBoard log directory (created if needed); ``tensorboard --logdir`` it.
      overwrite: replace the event files of runs already exported there. Without it, a run
        directory that already holds event files is refused (TensorBoard would show both).

    Returns:
      The run directories written, one per run of the sweep, in the Dataset's order.

    Raises:
      ImportError: tensorboardX is not installed (the optional extra ``tensorboard``).
      FileExistsError: a run directory already holds event files and ``overwrite`` is false.
      ValueError: the Dataset's variables do not have the schema's dims, or two grid points
        share a run name.

    Example:
      >>> runs = tensorboard("runs/demo", "tb/demo")  # doctest: +SKIP
      >>> runs[0].name  # doctest: +SKIP
      'optimizer=sgd,seed=0,learning_rate=0.001'
    """
    summary_writer = _summary_writer()
    ds = ds_or_run_dir if isinstance(ds_or_run_dir, xr.Dataset) else _load(ds_or_run_dir)
    dims = ("optimizer", *grid_axes(ds))
    points = [
        dict(zip(dims, index, strict=True))
        for index in itertools.product(*(range(ds.sizes[d]) for d in dims))
    ]
    labels = [{d: ds[d].values[i] for d, i in point.items()} for point in points]
    runs = [Path(logdir) / run_name(label) for label in labels]
    if len(set(runs)) != len(runs):
        raise ValueError(f"grid points share a run name: {sorted(map(str, runs))}")
    _clear(runs, overwrite)

    per_step = _per_step_arrays(ds, dims)
    metrics = {
        name: _schema_values(ds, name, dims)
        for name, v in schema.VARIABLES.items()
        if v.dims == schema.RUN and name in ds
    }
    experiment = _experiment(ds, dims, metrics)
    steps = ds["step"].values.astype(np.int64)
    for point, label, run in zip(points, labels, runs, strict=True):
        index = tuple(point.values())
        run_metrics = {name: values[index] for name, values in metrics.items()}
        with summary_writer(logdir=str(run)) as writer, _quiet_about_infinities():
            for summary in (experiment, *_session(label, run_metrics)):
                writer.file_writer.add_summary(summary)
            _write_scalars(writer, steps, per_step, index, run_metrics.get("diverged_at", -1))
            for name, value in run_metrics.items():
                if not np.isnan(value):
                    writer.add_scalar(name, float(value), int(steps[-1]))
    return runs


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        raise ImportError(
            f"gradlab.export.tensorboard needs tensorboardX, the optional extra 'tensorboard': "
            f"{_EXTRA}"
        ) from err
    return SummaryWriter


@contextlib.contextmanager
def _quiet_about_infinities():
    """Silence tensorboardX's warning about each non-finite value it is given: the only ones
    written are the infinities measured at a step of divergence, on purpose."""
    logger = logging.getLogger("tensorboardX.x2num")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load(run_dir: str | os.PathLike[str]) -> xr.Dataset:
    from gradlab.store import load

    return load(run_dir)


def _clear(runs: Sequence[Path], overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, delete) event files already in the run directories."""
    for run in runs:
        old = sorted(run.glob(_EVENTS)) if run.is_dir() else []
        if old and not overwrite:
            raise FileExistsError(
                f"{run} already holds TensorBoard event files; pass overwrite=True "
                "(--overwrite) to replace them"
            )
        for path in old:
            path.unlink()


def _schema_values(ds: xr.Dataset, name: str, dims: tuple[str, ...]) -> np.ndarray:
    """Variable ``name`` as an array over ``(*dims, *schema dims)``, its dims checked."""
    expected = (*dims, *schema.VARIABLES[name].dims)
    if set(ds[name].dims) != set(expected):
        raise ValueError(f"{name}: dims {ds[name].dims}, the schema says {expected}")
    return ds[name].transpose(*expected).values


def _per_step_arrays(ds: xr.Dataset, dims: tuple[str, ...]) -> dict[str, tuple[np.ndarray, bool]]:
    """``{tag: (values over (*dims, step), of_update)}``: per-layer variables one tag per layer."""
    arrays = {}
    for name, variable in schema.VARIABLES.items():
        if name not in ds or variable.dims == schema.RUN:
            continue
        values = _schema_values(ds, name, dims)
        if variable.dims == schema.STEP:
            arrays[name] = (values, variable.of_update)
        else:
            for i, layer in enumerate(ds["layer"].values):
                arrays[f"{name}/{layer}"] = (values[..., i], variable.of_update)
    return arrays


def _write_scalars(writer, steps, per_step, index, diverged_at) -> None:
    """Every measured value of one run, in step order (see the module docstring)."""
    diverged_at = int(diverged_at)
    last = steps[-1] if diverged_at < 0 else diverged_at
    series = [
        (tag, values[index], steps < last if of_update and diverged_at >= 0 else steps <= last)
        for tag, (values, of_update) in per_step.items()
    ]
    for k, step in enumerate(steps):
        for tag, values, measured in series:
            value = values[k]
            if measured[k] and not np.isnan(value):
                writer.add_scalar(tag, float(value), int(step))


def _hparam_value(value: Any) -> str | bool | float:
    """A grid value as the HParams plugin holds it: a string, a bool or a float64 (floats as
    their shortest decimal, the number written in the grid)."""
    if isinstance(value, str | np.str_):
        return str(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.floating):
        return float(str(value))
    return float(value)


def _experiment(ds: xr.Dataset, dims: tuple[str, ...], metrics: dict[str, np.ndarray]):
    """The HParams plugin's experiment summary: each hparam with its discrete domain, each
    per-run variable as a metric."""
    from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, MetricInfo, MetricName

    infos = []
    for d in dims:
        domain = [_hparam_value(v) for v in ds[d].values]
        kind = {str: "DATA_TYPE_STRING", bool: "DATA_TYPE_BOOL", float: "DATA_TYPE_FLOAT64"}
        info = HParamInfo(name=d, type=DataType.Value(kind[type(domain[0])]))
        info.domain_discrete.extend(domain)
        infos.append(info)
    metric_infos = [
        MetricInfo(name=MetricName(tag=name), description=schema.VARIABLES[name].meaning)
        for name in metrics
    ]
    return _plugin_summary(
        "_hparams_/experiment", experiment=Experiment(hparam_infos=infos, metric_infos=metric_infos)
    )


def _session(label: dict[str, Any], metrics: dict[str, Any]):
    """The HParams plugin's session start (this run's hparams) and end (its status) summaries."""
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import SessionEndInfo, SessionStartInfo

    start = SessionStartInfo()
    for d, value in label.items():
        value = _hparam_value(value)
        field = {str: "string_value", bool: "bool_value", float: "number_value"}[type(value)]
        setattr(start.hparams[d], field, value)
    status = "STATUS_FAILURE" if bool(metrics.get("diverged", False)) else "STATUS_SUCCESS"
    end = SessionEndInfo(status=Status.Value(status))
    return (
        _plugin_summary("_hparams_/session_start_info", session_start_info=start),
        _plugin_summary("_hparams_/session_end_info", session_end_info=end),
    )


def _plugin_summary(tag: str, **content):
    """A ``Summary`` holding one HParams plugin datum (version 0, the plugin's format)."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    data = HParamsPluginData(version=0, **content).SerializeToString(deterministic=True)
    metadata = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=data)
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])
