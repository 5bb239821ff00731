"""Which runs, which axes: the grid of a result Dataset and the conventions every analysis shares.

A result Dataset has the dims ``optimizer``, the grid axes (in the sweep's order), ``step`` and
``layer`` (see :mod:`gradlab.schema`). The functions here name the grid axes, say which runs are
alive at each step, validate the ``over=`` argument of the reducing functions, select grid values
with errors that name the axis and its values (:func:`select_values`), mask diverged runs, put
per-layer norms on a per-parameter footing (:func:`per_parameter_rms`), say which runs count
(:func:`counted_runs`: each chain's distinct configurations once, finished runs only), and
silence numpy's warnings about all-NaN slices (NaN is the honest answer there).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from gradlab import schema

__all__ = [
    "LR",
    "SEED",
    "Axes",
    "alive",
    "chain_reads",
    "counted_runs",
    "grid_axes",
    "hyperparameter_axes",
    "in_dataset_order",
    "is_parameter_norm",
    "per_parameter_rms",
    "pool_axes",
    "quiet_nan_warnings",
    "run_cost",
    "select_values",
    "surviving",
    "where_counted",
]

LR = "learning_rate"
SEED = "seed"

Axes = str | Sequence[str] | None


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """Silence numpy's warnings for reductions over all-NaN or empty slices.

    A median over seeds that all diverged is NaN, and NaN is the honest answer: the warnings
    numpy raises on the way ("All-NaN slice", "Mean of empty slice", invalid value, divide by
    zero) say nothing the NaN does not. Other warnings pass through.

    Returns:
      A context manager.

    Example:
      >>> with quiet_nan_warnings():
      ...     float(np.nanmean(np.array([np.nan])))
      nan
    """
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero", RuntimeWarning)
        yield


def grid_axes(ds: xr.Dataset) -> tuple[str, ...]:
    """The grid axes of a result Dataset, in the sweep's order.

    The grid axes are the dims of the per-run variable ``diverged`` other than ``optimizer``
    (``step`` and ``layer`` are never grid axes).

    Args:
      ds: a result Dataset.

    Returns:
      The axis names, e.g. ``("seed", "learning_rate", "init_scale")``.

    Example:
      >>> grid_axes(ds)  # doctest: +SKIP
      ('seed', 'learning_rate', 'init_scale', 'clip_norm')
    """
    return tuple(str(d) for d in ds["diverged"].dims if d != "optimizer")


def in_dataset_order(da: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    """``da`` transposed to the Dataset's order of dims: optimizer, grid axes, step, layer.

    Dims of ``da`` that are none of these (e.g. ``tau``) keep their order and come last.

    Args:
      da: a DataArray computed from ``ds``.
      ds: the result Dataset whose order to follow.

    Returns:
      The same DataArray, transposed.
    """
    order = ["optimizer", *grid_axes(ds), "step", "layer"]
    return da.transpose(*[d for d in order if d in da.dims], ...)


def pool_axes(ds: xr.Dataset, over: Axes) -> list[str]:
    """The grid axes named by ``over``, validated: the dims a function reduces over.

    ``over`` is one axis name, a sequence of them, or ``None`` (pool nothing). ``"seed"`` may
    be named even when the sweep has no seed axis: a sweep without seeds has one run per
    configuration, and there is nothing to pool.

    Args:
      ds: a result Dataset.
      over: the axes to pool.

    Returns:
      The names of ``over`` that are grid axes of ``ds``, in the order given.

    Raises:
      ValueError: a name (other than ``"seed"``) is not a grid axis; the message lists them.

    Example:
      >>> pool_axes(ds, ["seed", "init_scale"])  # doctest: +SKIP
      ['seed', 'init_scale']
    """
    names = [] if over is None else [over] if isinstance(over, str) else list(over)
    grid = grid_axes(ds)
    unknown = [n for n in names if n not in grid and n != SEED]
    if unknown:
        raise ValueError(f"{unknown} not grid axes of this sweep; grid axes: {list(grid)}")
    return [n for n in names if n in grid]


def _missing_value_message(ds: xr.Dataset, name: str, missing: list[Any]) -> str:
    """The error for values of axis ``name`` that ``ds`` lacks, with its values and the nearest."""
    values = ds[name].values
    shown = values.tolist() if len(values) <= 12 else [*values[:5].tolist(), "…"]
    what = ", ".join(f"{name} = {m!r}" for m in missing)
    verb = "is" if len(missing) == 1 else "are"
    msg = f"{what} {verb} not in the Dataset; its values: {shown}"
    first = missing[0]
    if values.dtype.kind in "iuf" and isinstance(first, int | float | np.number) and len(values):
        nearest = values[np.argmin(np.abs(values.astype(float) - float(first)))]
        msg += f" (nearest: {nearest.item()!r})"
    return msg


def select_values(ds: xr.Dataset, values: Mapping[str, Any]) -> xr.Dataset:
    """``ds.sel(values)``, with an error that names the axis and its values.

    xarray answers a value that is not on an axis with a bare ``KeyError``; this says which axis,
    which values it has and, on a numeric axis, the nearest one. Values are matched exactly (the
    grid's own numbers: ``1.0`` for an init scale of 1, not ``0.99999``). A value may be a scalar
    (the axis is dropped), a list of values (the axis is kept), or a ``slice`` (passed through).

    Args:
      ds: a result Dataset.
      values: ``{dim: value or list of values}``, e.g. ``{"learning_rate": 0.1}``; any dim of
        ``ds`` (a grid axis, ``optimizer``, ``step``, ``layer``).

    Returns:
      The selected Dataset.

    Raises:
      ValueError: a key is not a dim of ``ds``, or a value is not on its axis; the message names
        the axis and lists its values.

    Example:
      >>> select_values(ds, {"init_scale": 3.0})  # doctest: +SKIP
      Traceback (most recent call last):
      ValueError: init_scale = 3.0 is not in the Dataset; its values: [0.5, 1.0, 2.0, 4.0] ...
    """
    unknown = [k for k in values if k not in ds.dims]
    if unknown:
        raise ValueError(f"{unknown} are not dims of the Dataset; its dims: {list(ds.dims)}")
    for name, value in values.items():
        if isinstance(value, slice):
            continue
        wanted = value.tolist() if isinstance(value, np.ndarray) else value
        wanted = list(wanted) if isinstance(wanted, list | tuple) else [wanted]
        present = set(ds[name].values.tolist())
        missing = [w.item() if isinstance(w, np.generic) else w for w in wanted if w not in present]
        if missing:
            raise ValueError(_missing_value_message(ds, name, missing))
    return ds.sel(dict(values))


def is_parameter_norm(var: str) -> bool:
    """Whether ``var`` is a per-layer L2 norm over the layer's parameters (by
    :mod:`gradlab.schema`: a ``layer`` dim and the unit ``"L2 norm"``), which
    :func:`per_parameter_rms` puts on a per-parameter footing."""
    info = schema.VARIABLES.get(var)
    return info is not None and "layer" in info.dims and info.unit == "L2 norm"


def per_parameter_rms(ds: xr.Dataset, var: str = "grad_norm_layer") -> xr.DataArray:
    r"""A per-layer norm over parameters, as the root mean square per parameter of the layer.

    .. math:: \mathrm{rms}_l = \sqrt{\frac{1}{n_l} \sum_{i \in l} x_i^2}
       = \frac{\|x_l\|_2}{\sqrt{n_l}}

    where :math:`\|x_l\|_2` is ``var`` (a norm over layer l's kernel and bias, such as
    ``grad_norm_layer`` or ``param_norm_layer``) and :math:`n_l` the layer's number of
    parameters, the ``layer_size`` coordinate. Raw norms grow with the parameter count: the
    784-input layer of an MNIST MLP has ~80× the parameters of a 10-unit layer, so its gradient
    norm looks several times larger even when each weight sees the same gradient. The RMS
    compares layers of unequal size. A layer without parameters (``layer_size`` 0) is NaN.

    Args:
      ds: a result Dataset with a ``layer_size`` coordinate (run directories written before it
        existed lack it).
      var: a per-layer variable whose unit in :mod:`gradlab.schema` is an L2 norm over the
        layer's parameters (``grad_norm_layer``, ``param_norm_layer``).

    Returns:
      A DataArray with the dims of ``ds[var]``, named ``var`` with ``_norm_`` replaced by
      ``_rms_`` (``grad_rms_layer``, ``param_rms_layer``).

    Raises:
      ValueError: ``var`` is not such a norm, or ``ds`` has no ``layer_size`` coordinate.

    Example:
      >>> per_parameter_rms(ds, "grad_norm_layer").isel(step=0).median("seed")  # doctest: +SKIP
    """
    if not is_parameter_norm(var):
        norms = [name for name in schema.VARIABLES if is_parameter_norm(name)]
        raise ValueError(f"{var!r} is not a per-layer norm over parameters; those are {norms}")
    if var not in ds:
        raise ValueError(f"no variable {var!r} in the Dataset")
    if "layer_size" not in ds.coords:
        raise ValueError(
            "the Dataset has no layer_size coordinate (parameters per layer; run directories "
            "written by an older gradlab lack it), so the norm cannot be taken per parameter"
        )
    size = ds["layer_size"].astype(float)
    rms = ds[var] / np.sqrt(size.where(size > 0))
    return rms.rename(var.replace("_norm_", "_rms_"))


def alive(ds: xr.Dataset) -> xr.DataArray:
    r"""Which runs are still alive (not yet diverged) at each logged step.

    .. math:: \mathrm{alive}(r, s) = [\,d_r = -1\,] \lor [\,s \le d_r\,],
       \quad d_r = \texttt{diverged\_at}

    The step at which a run diverges counts as alive: its values are the measured ones (the loss
    may be huge or infinite); later steps are NaN.

    Args:
      ds: a result Dataset with ``diverged_at`` and a ``step`` coordinate.

    Returns:
      A boolean DataArray with dims ``(optimizer, *grid, step)``.

    Example:
      >>> ds["grad_norm"].where(alive(ds)).max()  # the largest measured ‖g‖  # doctest: +SKIP
    """
    at = ds["diverged_at"]
    return (at < 0) | (ds["step"] <= at)


def applied(ds: xr.Dataset) -> xr.DataArray:
    r"""Which logged steps applied their update: alive, and not the step of divergence.

    .. math:: \mathrm{applied}(r, s) = [\,d_r = -1\,] \lor [\,s < d_r\,]

    The variables that describe the update (``update_norm``, ``update_ratio_layer``,
    ``clipped``, ``skipped``; ``of_update`` in :mod:`gradlab.schema`) exist only at these
    steps: at the step of divergence the update is not applied, and they are NaN (False for the
    flags). A rate of such a variable counts these steps, not the alive ones.

    Args:
      ds: a result Dataset with ``diverged_at`` and a ``step`` coordinate.

    Returns:
      A boolean DataArray with dims ``(optimizer, *grid, step)``.

    Example:
      >>> ds["clipped"].where(applied(ds)).mean()  # clip-fire rate  # doctest: +SKIP
    """
    at = ds["diverged_at"]
    return (at < 0) | (ds["step"] < at)


def surviving(ds: xr.Dataset, name: str) -> xr.DataArray:
    """A per-run variable with the runs that diverged set to NaN.

    Args:
      ds: a result Dataset.
      name: a variable of ``ds``.

    Returns:
      ``ds[name]`` where ``diverged`` is false, NaN elsewhere.
    """
    return ds[name].where(~ds["diverged"].astype(bool))


def run_cost(ds: xr.Dataset, metric: str) -> xr.DataArray:
    r"""A per-run cost, lower is better, with diverged runs at +∞.

    .. math:: c_r = \begin{cases} +\infty & \text{run } r \text{ diverged} \\
       -m_r & m \text{ higher-is-better (accuracies)} \\ m_r & \text{otherwise} \end{cases}

    Whether higher is better comes from :func:`gradlab.schema.higher_is_better`.

    Args:
      ds: a result Dataset.
      metric: a per-run variable.

    Returns:
      A float DataArray over ``(optimizer, *grid)``.

    Raises:
      ValueError: ``metric`` is not in ``ds``, or is a per-step variable.
    """
    if metric not in ds:
        raise ValueError(f"no variable {metric!r} in the Dataset")
    if "step" in ds[metric].dims:
        raise ValueError(f"{metric!r} is a per-step variable; this needs one value per run")
    value = ds[metric].astype(float)
    if schema.higher_is_better(metric):
        value = -value
    return value.where(~ds["diverged"].astype(bool), np.inf)


def hyperparameter_axes(ds: xr.Dataset) -> tuple[str, ...]:
    """The grid axes that are optimizer hyperparameters with a record of which chains read them.

    ``gl.run`` writes a boolean coordinate ``reads_<axis>`` on ``optimizer`` for every optimizer
    hyperparameter axis of the grid (a traced axis other than the model axes ``seed``,
    ``init_scale``, ``bias_std``, ``z_loss``: ``learning_rate``, ``clip_norm``, ``momentum``,
    ...). Model and static axes are read by every chain and have none; nor does a Dataset
    written before gradlab recorded it, or one built by hand.

    Args:
      ds: a result Dataset.

    Returns:
      The grid axes with a ``reads_<axis>`` coordinate, in the grid's order.

    Example:
      >>> hyperparameter_axes(ds)  # doctest: +SKIP
      ('learning_rate', 'clip_norm')
    """
    return tuple(a for a in grid_axes(ds) if f"reads_{a}" in ds.coords)


def chain_reads(ds: xr.Dataset, axis: str) -> xr.DataArray:
    """Whether each chain reads grid axis ``axis``: its ``reads_<axis>`` coordinate, else True.

    ``sgd`` does not read ``clip_norm``; a chain with a clip stage does. Without a
    ``reads_<axis>`` coordinate (model and static axes, older or hand-made Datasets) every
    chain reads the axis.

    Args:
      ds: a result Dataset.
      axis: a grid axis.

    Returns:
      A boolean DataArray over ``optimizer``.

    Example:
      >>> chain_reads(ds, "clip_norm").to_pandas()  # doctest: +SKIP
      optimizer
      sgd                        False
      clip_by_global_norm|sgd     True
    """
    name = f"reads_{axis}"
    if name in ds.coords:
        return ds[name].astype(bool).reset_coords(drop=True)
    return xr.ones_like(ds["optimizer"], dtype=bool).reset_coords(drop=True)


def counted_runs(ds: xr.Dataset, pooled: Axes | Literal["all"] = "all") -> xr.DataArray:
    r"""The runs that count: each chain's distinct configurations once, and only finished runs.

    A chain is trained once per distinct configuration: along a grid axis it does not read
    (``sgd`` along ``clip_norm``; :func:`chain_reads`) the Dataset holds exact copies of the run
    at the axis's first value. Pooling those copies would count one run several times (as if
    they were seeds: intervals too narrow, counts too large) and worst cases over them would
    take a chain's worst case more than once. A run of a partial Dataset
    (``gl.load(dir, partial=True)``) that has not finished (``finished`` false) holds NaN and
    ``diverged`` false: it is not a result and counts nowhere. The rule, for chain c and grid
    point x:

    .. math:: \mathrm{counted}(c, x) = \texttt{finished}(c, x) \land
       \bigwedge_{a \in P,\ c \text{ does not read } a} [\, \mathrm{index}_a(x) = 0 \,]

    where P is ``pooled``: the axes a reduction pools over. Along an unread axis that is *not*
    pooled each value keeps its copy, which is the chain's true result at that value (a phase
    diagram of ``sgd`` over ``clip_norm`` shows the same row at every clip norm); only pooling
    needs the copies dropped.

    Args:
      ds: a result Dataset.
      pooled: the grid axes the caller pools over (``"all"``, the default: every grid axis;
        ``None``: none, so only unfinished runs are dropped).

    Returns:
      A boolean DataArray over ``(optimizer, *grid)``, in the Dataset's order.

    Example:
      >>> n = counted_runs(ds).sum()  # distinct finished runs  # doctest: +SKIP
      >>> k = (ds["diverged"] & counted_runs(ds)).sum()  # of which diverged  # doctest: +SKIP
    """
    axes = grid_axes(ds) if isinstance(pooled, str) and pooled == "all" else pool_axes(ds, pooled)
    mask = xr.ones_like(ds["diverged"], dtype=bool).reset_coords(drop=True)
    if "finished" in ds:
        mask = mask & ds["finished"].astype(bool).reset_coords(drop=True)
    for axis in axes:
        first = xr.DataArray(np.arange(ds.sizes[axis]) == 0, dims=axis, coords={axis: ds[axis]})
        mask = mask & (chain_reads(ds, axis) | first)
    return in_dataset_order(mask, ds).rename("counted")


def where_counted(da: xr.DataArray, counted: xr.DataArray) -> xr.DataArray:
    """``da`` as floats with the runs that do not count set to NaN (booleans become 0/1 first).

    ``x.where(mask)`` on a boolean array gives floats whose NaN is truthy in ``.any()``; this
    converts first, so ``.sum()``, ``.mean()`` and ``.median()`` skip the runs that do not count
    and a boolean's NaN never reads as True.

    Args:
      da: a per-run (or per-step) DataArray.
      counted: a mask from :func:`counted_runs`.

    Returns:
      A float DataArray.

    Example:
      >>> where_counted(ds["diverged"], counted_runs(ds)).mean("seed")  # doctest: +SKIP
    """
    return da.astype(float).where(counted)
