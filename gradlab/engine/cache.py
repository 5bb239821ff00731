"""Compiled programs: kept per process, keyed by what shapes them, and on disk across processes.

A second ``gl.run`` that changes only traced values (learning rates, seeds, ...) reuses the
compiled program of the first. Across processes (a new notebook kernel, the next script), JAX's
persistent compilation cache keeps the compiled executables on disk, so compiling the same
program again is a load: gradlab turns it on when its engine is first imported, which ``gl.run``
does before it compiles anything (:func:`default_persistent_cache`),
in ``<data dir>/jax-cache`` (``$GRADLAB_DATA`` or ``~/.cache/gradlab``), unless the user
configured one (``jax.config`` or ``JAX_COMPILATION_CACHE_DIR``: never overridden) or
``GRADLAB_COMPILE_CACHE`` says otherwise (a directory, or ``0``/``off`` to disable it). Like
JAX, it keeps programs that took at least ``jax_persistent_cache_min_compile_time_secs`` (1 s)
to compile. Code in a spec that its fingerprint knows only by ``repr`` (a
user's Flax module, a callable chain) is part of the key by identity or equality: a class
redefined in a notebook cell has the repr of the old one (``MyMLP()``), so keying on the repr
alone would reuse the old class's program.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradlab.data import data_dir
from gradlab.spec import ModelSpec, SweepSpec

__all__ = [
    "ByIdentity",
    "cache_key",
    "clear",
    "code_identity",
    "compiled",
    "default_persistent_cache",
    "program_key",
    "signature",
    "use_persistent_cache",
    "variable_shapes",
]

_OFF = ("", "0", "off", "false", "no", "none")

MAX_PROGRAMS = 32
_PROGRAMS: dict[tuple[Any, ...], Any] = {}


class ByIdentity:
    """Hashes and compares by identity, and keeps the object alive so its id is not reused."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByIdentity) and other.obj is self.obj


def cache_key(obj: Any) -> Any:
    """``obj`` as part of a cache key: itself when hashable (a Flax module compares by class and
    fields), else by identity."""
    try:
        hash(obj)
        return obj
    except TypeError:
        return ByIdentity(obj)


def code_identity(spec: SweepSpec) -> tuple[Any, ...]:
    """The code in a spec that its fingerprint knows only by ``repr``, as cache keys."""
    code = [] if isinstance(spec.model, ModelSpec) else [spec.model]
    code += [c for c in spec.optimizers if callable(c)]
    return tuple(cache_key(obj) for obj in code)


def signature(hp: Mapping[str, jax.Array], args: list[Any]) -> tuple[Any, ...]:
    """The names, shapes and dtypes of a compiled call's arguments."""
    leaves = jax.tree.leaves((hp, args))
    return tuple(sorted(hp)), tuple((x.shape, str(x.dtype)) for x in leaves)


def program_key(
    spec: SweepSpec,
    label: str,
    devices: Sequence[Any],
    hp: Mapping[str, jax.Array],
    args: list[Any],
    *flags: Any,
) -> tuple[Any, ...]:
    """The cache key of one group's compiled program: everything it was compiled from but the
    traced values (the spec without its grid, the group's chain and static values, the code,
    the devices, the arguments' shapes) and the program's own ``flags`` (a progress callback,
    returning θ_T, returning θ_t)."""
    return (
        spec.replace(grid={}, lr_units="absolute").fingerprint(),  # all but the traced values
        spec.lr_units,
        code_identity(spec),
        label,
        tuple((d.platform, d.id) for d in devices),  # a program is compiled for its devices
        *flags,
        *signature(hp, args),
    )


def compiled(key: tuple[Any, ...], compile: Callable[[], Any]) -> tuple[Any, bool]:
    """The program cached under ``key``, compiling it with ``compile()`` when it is new.

    Returns:
      The program and whether it was compiled now. At most ``MAX_PROGRAMS`` are kept (the
      oldest goes first).
    """
    program = _PROGRAMS.get(key)
    if program is not None:
        return program, False
    program = compile()
    if len(_PROGRAMS) >= MAX_PROGRAMS:
        del _PROGRAMS[next(iter(_PROGRAMS))]
    _PROGRAMS[key] = program
    return program, True


def clear() -> None:
    """Forget every compiled program (the next sweep of each group compiles again)."""
    _PROGRAMS.clear()


def variable_shapes(module: Any, batch_shape: tuple[int, int]) -> Any:
    """The shapes of ``module.init`` on a [batch, features] input, traced once per module and
    shape: every ``gl.run`` needs them, even one whose program is cached (benchmarks item 12)."""
    return _cached_variable_shapes(cache_key(module), batch_shape)


@functools.lru_cache(maxsize=32)
def _cached_variable_shapes(key: Any, batch_shape: tuple[int, int]) -> Any:
    module = key.obj if isinstance(key, ByIdentity) else key
    return jax.eval_shape(
        lambda k, x: module.init(k, x),
        jax.random.PRNGKey(0),
        jax.ShapeDtypeStruct(batch_shape, jnp.float32),
    )


def use_persistent_cache(directory: str | os.PathLike | None) -> None:
    """Keep compiled programs on disk in ``directory`` (``None``: do not).

    Call it before the process compiles anything: JAX decides whether it uses its persistent
    cache at the first compilation.
    """
    jax.config.update("jax_compilation_cache_dir", None if directory is None else str(directory))


def default_persistent_cache() -> str | None:
    """Turn on the persistent compilation cache as the module docstring says; returns the
    directory in use (``None``: none). Called once, when :mod:`gradlab.engine` is imported."""
    configured = jax.config.jax_compilation_cache_dir
    if configured:  # the user's own (jax.config or JAX_COMPILATION_CACHE_DIR)
        return configured
    setting = os.environ.get("GRADLAB_COMPILE_CACHE")
    if setting is not None and setting.strip().lower() in _OFF:
        return None
    directory = setting or str(data_dir() / "jax-cache")
    use_persistent_cache(directory)
    return directory
