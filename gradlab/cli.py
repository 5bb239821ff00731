"""The ``gradlab`` command line: a thin layer over the library.

    gradlab run [CONFIG.toml] [--out DIR] [--chunk-size N] [--overwrite]
    gradlab report RUN_DIR --out DIR
    gradlab export RUN_DIR --tensorboard DIR [--overwrite]
    gradlab data download mnist [--data-dir DIR]

Exit status and one line on stderr, never a traceback:

- 0: done;
- 2: bad input (a config field, an output path that cannot be a directory, a run directory of
  another sweep, or one ``report``/``export`` cannot read), naming the field;
- 1: the environment failed (a full or read-only disk, a run directory held by a live writer of
  another sweep or taken over by one, a peer process of a multi-host job that is gone); the
  finished chunks are kept, and the same command resumes once the cause is gone;
- 130: interrupted (Ctrl-C).

Warnings (a chunk that did not verify and is recomputed, a dead writer's lease taken over) are
one line each, ``gradlab: warning: ...``.
``GRADLAB_FAST=1`` shrinks any sweep (fewer steps, seeds and examples) for smoke tests.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradlab.errors import ConfigError
from gradlab.lease import RunDirError, release_all

if TYPE_CHECKING:
    from gradlab.spec import SweepSpec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradlab", description="Measure gradient explosion with vmapped JAX sweeps."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_run_command(commands)

    report = commands.add_parser(
        "report",
        help="write the HTML report of a run directory",
        description="Write an HTML report (figures, comparison table, spec) and CSV/markdown "
        "tables for a finished run directory.",
    )
    report.add_argument("run_dir", help="a run directory written by `gradlab run`")
    report.add_argument("--out", required=True, help="directory for the report")

    export = commands.add_parser(
        "export",
        help="export a run directory to TensorBoard",
        description="Write every run's per-step metrics as TensorBoard scalars and its "
        "hyperparameters and final metrics for TensorBoard's HParams table, one TensorBoard run "
        "per grid point (see gradlab.export). Needs pip install 'gradlab[tensorboard]'.",
    )
    export.add_argument("run_dir", help="a run directory written by `gradlab run`")
    export.add_argument(
        "--tensorboard", required=True, metavar="DIR", help="TensorBoard log directory"
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace event files of an earlier export"
    )

    _add_data_command(commands)
    return parser


def _add_run_command(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a sweep (no CONFIG: the embedded default experiment)",
        description="Run a sweep from a TOML config and print the optimizer comparison table. "
        "Without CONFIG, runs the default experiment: the article's MLP 784-10-10-10 on MNIST "
        "with five optimizer chains over learning rate x init scale x seeds.",
    )
    run.add_argument("config", nargs="?", help="sweep TOML file (see README)")
    run.add_argument("--out", help="run directory (default: runs/<config name>)")
    run.add_argument("--chunk-size", type=int, help="runs per compiled call")
    run.add_argument(
        "--overwrite", action="store_true", help="replace a run directory of another sweep"
    )
    run.add_argument(
        "--memory-budget",
        type=_bytes,
        help="bytes one chunk may use, e.g. 4GiB (picks the chunk size; default 2GiB on CPU, "
        "half of the device memory on GPU/TPU)",
    )
    run.add_argument(
        "--devices",
        type=int,
        help="on CPU: expose this many XLA devices (cores) and shard each chunk over them",
    )
    distributed = run.add_argument_group(
        "multi-host (jax.distributed)",
        "Run one process per host; each trains its share of the chunks into the shared --out "
        "directory. --distributed alone auto-detects SLURM, Open MPI and TPU pod slices.",
    )
    distributed.add_argument(
        "--distributed", action="store_true", help="join a jax.distributed job"
    )
    distributed.add_argument("--coordinator", help="address:port of process 0")
    distributed.add_argument("--num-processes", type=int, help="number of processes")
    distributed.add_argument("--process-id", type=int, help="this process's index")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--save-params",
        action="store_true",
        help="also keep every run's final parameters in the run directory (params/*.nc; read "
        "one back with gradlab.load_params(DIR, optimizer=..., seed=..., ...))",
    )
    run.add_argument(
        "--progress-steps",
        action="store_true",
        help="move the progress bar within each chunk, not only when a chunk finishes (the "
        "compiled program then reports to the host, and JAX's persistent compilation cache "
        "does not keep such programs)",
    )
    run.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def _add_data_command(commands: Any) -> None:
    data = commands.add_parser("data", help="manage data sets", description="Manage data sets.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    download = data_commands.add_parser(
        "download",
        help="download a data set",
        description="Download full MNIST (IDX files, checksummed) into the data directory.",
    )
    download.add_argument("name", choices=["mnist"], help="data set")
    download.add_argument(
        "--data-dir", help="data directory (default: $GRADLAB_DATA or ~/.cache/gradlab)"
    )
    download.add_argument("--base-url", help="mirror to download from")


def _bytes(text: str) -> int:
    units = {
        "": 1,
        "b": 1,
        "kib": 2**10,
        "mib": 2**20,
        "gib": 2**30,
        "kb": 10**3,
        "mb": 10**6,
        "gb": 10**9,
    }
    number = text.strip().lower().rstrip("ibgmk")
    unit = text.strip().lower()[len(number) :]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512MiB, 4GiB)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return int(value)


def _setup_jax(args: argparse.Namespace) -> None:
    """Device count and multi-process runtime, before JAX starts (the persistent compilation
    cache is gradlab's default, see :mod:`gradlab.engine.cache`)."""
    import jax

    if args.devices is not None:
        if args.devices <= 0:
            raise ConfigError(f"--devices: must be a positive integer, got {args.devices}")
        jax.config.update("jax_num_cpu_devices", args.devices)
    if args.distributed or args.coordinator or args.num_processes or args.process_id is not None:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )


def _fast(spec: SweepSpec) -> SweepSpec:
    return spec.shrunk() if os.environ.get("GRADLAB_FAST") == "1" else spec


def _run(args: argparse.Namespace) -> int:
    import gradlab as gl
    from gradlab import analysis

    _setup_jax(args)
    if args.config:
        spec = gl.read_toml(args.config)
        out = args.out or str(Path("runs") / Path(args.config).stem)
    else:
        spec = gl.default_spec()
        out = args.out or str(Path("runs") / "default")
    spec = _fast(spec)
    if args.chunk_size is not None and args.chunk_size <= 0:
        raise ConfigError(f"--chunk-size: must be a positive integer, got {args.chunk_size}")
    kwargs = {"memory_budget": args.memory_budget} if args.memory_budget else {}
    ds = gl.run(
        spec,
        out=out,
        chunk_size=args.chunk_size,
        progress=False if args.no_progress else "steps" if args.progress_steps else True,
        save_params=args.save_params,
        overwrite=args.overwrite,
        **kwargs,
    )
    import jax

    if jax.process_index() > 0:  # process 0 prints and writes the report
        return 0
    table = analysis.compare_optimizers(ds)  # every column: the report's summary.csv
    print(analysis.format_table(table[list(analysis.SUMMARY_COLUMNS)]))
    print(
        f"\n{ds.attrs['wall_time_s']:.1f} s wall ({ds.attrs['compile_time_s']:.1f} s compiling, "
        f"{ds.attrs['run_time_s']:.1f} s training{_sessions(ds)}); "
        f"results in {out}/ (gradlab.load({out!r}))"
    )
    if not args.no_report:
        from gradlab.report import write_report

        page = write_report(ds, Path(out) / "report")
        print(f"report: {page}")
    return 0


def _sessions(ds) -> str:
    n = ds.attrs.get("sessions", 1)
    return f", over {n} sessions" if n > 1 else ""


def _load_run_dir(run_dir: str) -> Any:
    """The result Dataset of ``run_dir``, or a ConfigError saying why there is none: not a
    directory, not a run directory, no finished chunk yet, unfinished, a foreign manifest."""
    from gradlab.store import load

    if not Path(run_dir).is_dir():
        raise ConfigError(f"run_dir: {run_dir} is not a directory")
    try:
        return load(run_dir)
    except ConfigError:
        raise
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"run_dir: {err}") from None


def _report(args: argparse.Namespace) -> int:
    from gradlab.report import write_report

    ds = _load_run_dir(args.run_dir)
    print(write_report(ds, args.out, title=f"gradlab sweep: {Path(args.run_dir).name}"))
    return 0


def _export(args: argparse.Namespace) -> int:
    from gradlab import export

    ds = _load_run_dir(args.run_dir)
    try:
        runs = export.tensorboard(ds, args.tensorboard, overwrite=args.overwrite)
    except (ImportError, FileExistsError) as err:
        raise ConfigError(f"--tensorboard: {err}") from None
    print(f"{len(runs)} runs in {args.tensorboard}/ (tensorboard --logdir {args.tensorboard})")
    return 0


def _data(args: argparse.Namespace) -> int:
    from gradlab import data

    kwargs = {"base_url": args.base_url} if args.base_url else {}
    path = data.download_mnist(args.data_dir, **kwargs)
    print(f"MNIST is in {path}")
    return 0


def _environment_error(err: OSError | RunDirError) -> str:
    """One line naming the cause of an environment failure (and what is kept)."""
    if isinstance(err, RunDirError):
        return str(err)
    where = f": {err.filename}" if err.filename else ""
    line = f"{err.strerror or err}{where}"
    if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        line += " (the finished chunks are kept; free some space and run the same command again)"
    return line


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"gradlab: warning: {message}", file=sys.stderr if file is None else file)


INTERRUPTED = "gradlab: interrupted; run the same command again to resume"


def _interrupted(signum: int, frame: Any) -> None:
    """Ctrl-C: release this process's leases, say so in one line, exit 130 at once.

    The default handler raises KeyboardInterrupt wherever Python happens to be, and where that
    is a garbage-collector callback (JAX installs one) the exception is printed as "ignored" and
    the sweep runs on. Exiting here is safe: every file is written atomically, and a temporary
    file this leaves behind is removed by the next writer.
    """
    release_all()
    sys.stdout.flush()
    print(f"\n{INTERRUPTED}", file=sys.stderr, flush=True)
    os._exit(130)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gradlab`` console script; returns the exit status (see the module
    docstring). Ctrl-C is handled by :func:`_interrupted`: until the process exits when this is
    the ``gradlab`` command (``argv`` None), only during the call when called with ``argv``."""
    previous = signal.signal(signal.SIGINT, _interrupted)
    try:
        args = _parser().parse_args(argv)
        handlers = {"run": _run, "report": _report, "export": _export, "data": _data}
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return handlers[args.command](args)
    except ConfigError as err:
        print(f"gradlab: error: {err}", file=sys.stderr)
        return 2
    except (RunDirError, OSError) as err:
        print(f"gradlab: error: {_environment_error(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    finally:
        if argv is not None:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
