"""A self-contained HTML report of a sweep: comparison tables, figures, spec.

``gradlab report RUN_DIR --out DIR`` calls :func:`write_report`. The page embeds every figure as a
base64 PNG, so ``index.html`` alone can be opened, mailed or attached to a paper draft; the same
figures are written alongside as ``figures/*.png``, with the table as ``summary.csv`` and
``summary.md``. Which figures appear depends on what the Dataset holds (per-layer signals,
sharpness, how many grid axes were swept); nothing is drawn from numbers that were not measured.
Every count and table is over the runs that count (:func:`gradlab.analysis.counted_runs`): a
chain's copies along an axis it does not read are one run, and a partial Dataset (a sweep still
running or interrupted) is reported from its finished runs, with a line at the top that says so.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from gradlab import analysis, plots

__all__ = ["as_dataset", "partial_note", "write_report"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; font-size: 1.25rem; }
.meta { color: #555; font-size: 0.9rem; } .partial { color: #8a4b00; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 0.6rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #e8eef5; } td:first-child, th:first-child { text-align: left; }
table.grid td:last-child, table.grid th:last-child { text-align: left; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9rem; max-width: 60rem; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
"""


def as_dataset(source: xr.Dataset | str | os.PathLike[str]) -> xr.Dataset:
    """The result Dataset of ``source``: a Dataset, a run directory, or a netCDF file.

    Args:
      source: an ``xarray.Dataset`` (returned as is); a ``.nc`` file written by
        ``ds.to_netcdf(path, engine="h5netcdf")``; or a run directory of ``gl.run(spec, out=...)``,
        read with ``gradlab.store.load(path, partial=True)``: a sweep still running or
        interrupted gives its finished runs, with the ``finished`` mask (the report says so,
        :func:`partial_note`); a complete one, its Dataset.

    Returns:
      The Dataset, in memory.

    Raises:
      ValueError: a ``.nc`` file that cannot be read (truncated, or not netCDF-4), or an
        unfinished run directory.
      FileNotFoundError: ``source`` is not a run directory.

    Example:
      >>> ds = as_dataset("runs/demo")  # doctest: +SKIP
    """
    if isinstance(source, xr.Dataset):
        return source
    path = Path(source)
    if path.is_file():
        try:
            return xr.load_dataset(path, engine="h5netcdf")
        except (OSError, ValueError) as err:  # truncated, or not netCDF-4
            why = type(err).__name__
            raise ValueError(f"{path} is not a readable netCDF file ({why})") from None
    from gradlab.store import load  # the engine's persistence; only needed for run directories

    return load(path, partial=True)


def _swept(ds: xr.Dataset) -> list[str]:
    """Grid axes with more than one value: learning rate, init scale, other numbers, strings."""
    axes = [d for d in analysis.grid_axes(ds) if d != analysis.SEED and ds.sizes[d] > 1]
    first = [d for d in (analysis.LR, "init_scale") if d in axes]
    numeric = [d for d in axes if d not in first and ds[d].dtype.kind in "iuf"]
    return first + numeric + [d for d in axes if d not in first + numeric]


def _has_finite(da: xr.DataArray) -> bool:
    return bool(np.isfinite(da.values.astype(float)).any())


# (file stem, caption, builder) of one figure of the page
_Planned = tuple[str, str, Callable[[], Figure]]


def _figure_plan(ds: xr.Dataset) -> Iterator[_Planned]:
    """Every figure this Dataset supports, in page order."""
    swept = _swept(ds)
    yield (
        "comparison",
        "Optimizer chains side by side, one row per chain configuration: divergence rate, "
        "largest learning rate at which no run diverged and at which every run trains, median "
        "final loss and test accuracy at the best learning rate (bars: order-statistic 95% "
        "interval over the pooled runs, where there are enough), fraction of steps clipped, "
        "largest gradient norm.",
        lambda: plots.comparison_bars(ds),
    )
    yield from _grid_figures(ds, swept)
    yield from _training_figures(ds)
    yield from _depth_figures(ds, swept)
    if "sharpness" in ds and _has_finite(ds["sharpness"]):
        yield (
            "sharpness",
            "Sharpness (top Hessian eigenvalue) during training against its stability bound.",
            lambda: plots.sharpness_vs_bound(ds),
        )
    yield from _profile_figures(ds, swept)


def _grid_figures(ds: xr.Dataset, swept: list[str]) -> Iterator[_Planned]:
    """Where in the grid runs diverge: phase diagrams over the first two swept axes, and the
    divergence rate against the learning rate."""
    if swept:
        x, y = swept[0], (swept[1] if len(swept) > 1 else None)
        yield (
            "phase_divergence",
            f"Phase diagram: fraction of runs that diverged at each {x}"
            + (f" × {y}" if y else "")
            + " grid point (other axes pooled).",
            lambda: plots.phase_diagram(ds, x, y, "divergence_rate"),
        )
        if "final_loss" in ds and _has_finite(ds["final_loss"]):
            yield (
                "phase_final_loss",
                "Median final training loss of the runs that did not diverge; hatched cells: "
                "every run diverged.",
                lambda: plots.phase_diagram(ds, x, y, "final_loss"),
            )
    if analysis.LR in swept:
        yield (
            "divergence_curve",
            "Divergence rate against learning rate per chain, with 95% Wilson intervals over "
            "the pooled runs.",
            lambda: plots.divergence_curve(ds),
        )


def _training_figures(ds: xr.Dataset) -> Iterator[_Planned]:
    """During training: loss and gradient norm trajectories, and survival if a run diverged."""
    for var, what in (("loss", "Training loss"), ("grad_norm", "Raw gradient norm")):
        if var in ds and _has_finite(ds[var]):
            yield (
                f"trajectory_{var}",
                f"{what} during training: median and inter-quartile range over runs; "
                "× marks each step at which runs diverged, with their number where several did.",
                lambda var=var: plots.trajectories(ds, var),
            )
    if bool(ds["diverged"].any()):
        yield (
            "survival",
            "Fraction of runs not yet diverged at each step.",
            lambda: plots.survival_curves(ds),
        )


def _depth_figures(ds: xr.Dataset, swept: list[str]) -> Iterator[_Planned]:
    """Across depth at the first logged step: per-layer profiles, and χ1 against the init
    scale when there are enough layers and init scales. At the first step the chains have not
    trained yet: a profile whose chains agree is drawn once
    (:func:`gradlab.plots.layer_profile`)."""
    per_parameter = "layer_size" in ds.coords
    grad = (
        "Per-layer gradient RMS per parameter (‖g_l‖/√n_l: comparable across layer sizes)"
        if per_parameter
        else "Per-layer gradient norm (raw: this run records no layer sizes, so larger layers "
        "show larger norms)"
    )
    for var, what in (
        ("grad_norm_layer", grad),
        ("delta_rms_layer", "Backward signal (RMS of ∂loss/∂pre-activation)"),
    ):
        if var in ds and _has_finite(ds[var].isel(step=0)):
            yield (
                f"layer_{var}",
                f"{what} against depth at the first logged step (layer 0 = input side).",
                lambda var=var: plots.layer_profile(ds, var),
            )
    if (
        "delta_rms_layer" in ds
        and "layer_width" in ds.coords  # χ1 needs the widths (older run directories lack them)
        and ds.sizes["layer"] >= 3
        and "init_scale" in swept
        and _has_finite(ds["delta_rms_layer"].isel(step=0))
    ):
        yield (
            "chi1",
            "Empirical χ1 (backward-signal growth per hidden layer at initialisation) against "
            "init scale; χ1 > 1 means gradients explode towards the input.",
            lambda: plots.chi1_vs_theory(ds, step=int(ds["step"].values[0])),
        )


def _profile_figures(ds: xr.Dataset, swept: list[str]) -> Iterator[_Planned]:
    """Performance profiles, when there are chains to compare and a metric to compare them by."""
    if ds.sizes["optimizer"] <= 1:
        return
    metrics = [m for m in ("final_loss",) if m in ds and _has_finite(ds[m])]
    metrics += ["stability"] if analysis.LR in swept else []
    if metrics:
        yield (
            "performance_profiles",
            "Dolan-Moré performance profiles: fraction of configurations on which each chain "
            "is within a factor τ of the best (higher is better); score = normalised area.",
            lambda: plots.performance_profiles(ds, metrics),
        )


def _png(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _html_table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _grid_rows(ds: xr.Dataset) -> list[list[str]]:
    rows = [["optimizer", str(ds.sizes["optimizer"]), ", ".join(map(str, ds["optimizer"].values))]]
    for d in analysis.grid_axes(ds):
        vals = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in ds[d].values.tolist()]
        shown = vals if len(vals) <= 10 else [*vals[:4], "…", *vals[-2:]]
        rows.append([d, str(len(vals)), ", ".join(shown)])
    steps = ds["step"].values
    rows.append(["step", str(len(steps)), f"{steps[0]} … {steps[-1]}" if len(steps) else ""])
    return rows


def write_report(
    source: xr.Dataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Write an HTML report of a sweep, with its tables and figures, to ``out_dir``.

    Files written:

    - ``index.html``: self-contained page (figures embedded as base64 PNG): a line saying so
      when the Dataset is partial (:func:`partial_note`), what was swept, the optimizer
      comparison table and the best-learning-rate table (the columns of
      :func:`gradlab.analysis.compare_optimizers`, ``best_*`` in the second), every figure the
      Dataset supports (:mod:`gradlab.plots`), the sweep spec (TOML) and the environment;
    - ``figures/<name>.png``: the same figures as files;
    - ``summary.csv`` (full precision) and ``summary.md`` (formatted) comparison tables.

    Args:
      source: a result Dataset, a run directory, or a ``.nc`` file (see :func:`as_dataset`).
      out_dir: output directory (created if needed; files of the same names are replaced).
      title: page title; default names the run directory or "gradlab sweep".
      dpi: resolution of the PNG figures.

    Returns:
      The path of ``index.html``.

    Example:
      >>> write_report("runs/demo", "reports/demo")  # doctest: +SKIP
      PosixPath('reports/demo/index.html')
    """
    ds = as_dataset(source)
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    if title is None:
        named = not isinstance(source, xr.Dataset)
        title = f"gradlab sweep: {Path(source).name}" if named else "gradlab sweep"
    df = _write_tables(ds, out)
    figures = _write_figures(ds, out, dpi)
    index = out / "index.html"
    index.write_text(_page(ds, df, figures, title), encoding="utf-8")
    return index


def _write_tables(ds: xr.Dataset, out: Path) -> pd.DataFrame:
    """The comparison table, as ``summary.csv`` (full precision) and ``summary.md``."""
    df = analysis.compare_optimizers(ds)
    df.to_csv(out / "summary.csv")
    (out / "summary.md").write_text(analysis.markdown_table(df), encoding="utf-8")
    return df


def _write_figures(ds: xr.Dataset, out: Path, dpi: int) -> list[tuple[str, str, str]]:
    """Draw every planned figure to ``figures/<name>.png``; (name, caption, base64 PNG) each."""
    figures = []
    for name, caption, make in _figure_plan(ds):
        png = _png(make(), dpi)
        (out / "figures" / f"{name}.png").write_bytes(png)
        figures.append((name, caption, base64.b64encode(png).decode("ascii")))
    return figures


def _environment_rows(ds: xr.Dataset) -> list[list[str]]:
    """Versions, devices and timings recorded in the Dataset's attributes."""
    env_keys = ("gradlab_version", "jax_version", "flax_version", "optax_version", "devices")
    env = [[k, str(ds.attrs[k])] for k in env_keys if k in ds.attrs]
    env += [
        [k, f"{float(ds.attrs[k]):.1f} s"]
        for k in ("wall_time_s", "compile_time_s")
        if k in ds.attrs
    ]
    return env


def _figures_html(figures: list[tuple[str, str, str]]) -> str:
    return "\n".join(
        f'<figure id="fig-{name}"><img src="data:image/png;base64,{b64}" alt="{html.escape(cap)}">'
        f'<figcaption>{html.escape(cap)} <a href="figures/{name}.png">PNG</a></figcaption></figure>'
        for name, cap, b64 in figures
    )


def partial_note(ds: xr.Dataset) -> str | None:
    """The line a report of a partial Dataset starts with, or ``None`` for a complete one.

    A Dataset from ``gl.load(dir, partial=True)`` has a boolean ``finished`` variable; its
    runs are counted as :func:`gradlab.analysis.counted_runs` counts them (a chain's copies
    along an axis it does not read are one run).

    Args:
      ds: a result Dataset.

    Returns:
      ``"partial: N of M runs finished; figures and tables use the finished runs"``, or
      ``None`` when ``ds`` has no ``finished`` variable.

    Example:
      >>> partial_note(gl.load("runs/demo", partial=True))  # doctest: +SKIP
      'partial: 120 of 320 runs finished; figures and tables use the finished runs'
    """
    if "finished" not in ds:
        return None
    done = int(analysis.counted_runs(ds).sum())
    total = int(analysis.counted_runs(ds.drop_vars("finished")).sum())
    return f"partial: {done} of {total} runs finished; figures and tables use the finished runs"


def _comparison_html(df: pd.DataFrame) -> str:
    """The comparison table and the best-learning-rate table, under the DataFrame's names."""
    best = [c for c in df.columns if c.startswith("best_")]
    rest = [c for c in df.columns if c not in best]
    headers, rows = analysis.table_cells(df[rest])
    best_headers, best_rows = analysis.table_cells(df[best])
    return f"""<h2>Optimizer comparison</h2>
{_html_table(headers, rows)}
<p class="meta">One row per chain configuration (a chain and each value of the optimizer
hyperparameters it reads), seeds and model axes pooled. Counts are over distinct finished runs;
trained: did not diverge, final loss at most 0.9 times the step-0 loss and (classifiers) test
accuracy at least chance + 0.1 (gradlab.analysis.trains). max_stable_lr is the largest learning
rate at which no run diverged, max_trained_lr the largest at which every run trains. Medians
are over runs that did not diverge.</p>
<h2>Best learning rate</h2>
{_html_table(best_headers, best_rows)}
<p class="meta">best_lr: the learning rate with the best median final loss, diverged runs
counted as the worst (gradlab.analysis.best_over); there, the median final loss and test
accuracy of the pooled runs with an order-statistic 95% interval (_lower, _upper; "-" below
six runs, ±inf where it reaches a run that diverged). All columns are also in
<a href="summary.csv">summary.csv</a> and <a href="summary.md">summary.md</a>, under the same
names.</p>"""


def _page(ds: xr.Dataset, df: pd.DataFrame, figures: list[tuple[str, str, str]], title: str) -> str:
    """The self-contained HTML page."""
    env = _environment_rows(ds)
    counted = analysis.counted_runs(ds)
    n_runs = int(counted.sum())
    n_div = int((ds["diverged"].astype(bool) & counted).sum())
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note = partial_note(ds)
    partial = f'<p class="partial"><strong>{html.escape(note)}</strong></p>\n' if note else ""
    spec = ds.attrs.get("spec")
    spec_html = f"<pre>{html.escape(str(spec))}</pre>" if spec else "<p>No spec recorded.</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{partial}<p class="meta">{n_runs} runs, {n_div} diverged ({n_div / max(n_runs, 1):.0%}).
Generated {now} by gradlab.report.</p>
<h2>What was swept</h2>
{_html_table(["axis", "size", "values"], _grid_rows(ds), "grid")}
{_comparison_html(df)}
<h2>Figures</h2>
{_figures_html(figures)}
<h2>Sweep spec</h2>
{spec_html}
<h2>Environment</h2>
{_html_table(["attribute", "value"], env) if env else "<p>Not recorded.</p>"}
</body>
</html>
"""
