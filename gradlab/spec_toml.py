"""The sweep as TOML: read it, write it, and the embedded default experiment.

``from_toml(to_toml(s)) == s`` for every spec with string chains and a :class:`ModelSpec`; a
user's Flax module, callable chain or in-memory arrays are recorded in comments, so the text
still identifies the sweep (its hash is the spec's fingerprint). The keys are the fields of
:class:`~gradlab.spec.SweepSpec`, with ``[model]``, ``[data]`` and ``[grid]`` tables (see the
README, "The sweep as TOML").
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradlab.errors import ConfigError, fail
from gradlab.spec import DataSpec, ModelSpec, SweepSpec

__all__ = ["default_spec", "from_toml", "read_toml", "to_toml"]

_TOP_KEYS = {f.name for f in dataclasses.fields(SweepSpec)}
_MODEL_KEYS = {f.name for f in dataclasses.fields(ModelSpec)}
_DATA_KEYS = {f.name for f in dataclasses.fields(DataSpec)} - {"options"}


def from_toml(text: str) -> SweepSpec:
    """Parse a sweep from TOML text (keys as in the README); raises :class:`ConfigError`."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"toml: malformed TOML: {err}") from None
    except RecursionError:
        raise ConfigError("toml: nested too deeply to be a sweep") from None
    return _from_table(table)


def read_toml(path: str) -> SweepSpec:
    """Read a sweep from a TOML file; raises :class:`ConfigError` naming the field."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise ConfigError(f"config: cannot read {path}: {err.strerror}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"config: {path} is not UTF-8 text") from None
    return from_toml(text)


def _from_table(table: dict[str, Any]) -> SweepSpec:
    unknown = set(table) - _TOP_KEYS
    if unknown:
        raise fail(
            sorted(unknown)[0], f"unknown key; valid top-level keys: {', '.join(sorted(_TOP_KEYS))}"
        )
    kwargs = dict(table)
    # TOML has no null: a sweep without batch_size is full-batch gradient descent (the text
    # to_toml writes for batch_size=None, and what the README documents for a config).
    kwargs.setdefault("batch_size", None)
    model = kwargs.pop("model", {})
    if not isinstance(model, dict):
        raise fail("model", "must be a table")
    bad = set(model) - _MODEL_KEYS
    if bad:
        raise fail(f"model.{sorted(bad)[0]}", f"unknown key; valid: {', '.join(_MODEL_KEYS)}")
    data = kwargs.pop("data", {})
    if not isinstance(data, dict):
        raise fail("data", "must be a table")
    data = dict(data)
    options = data.pop("options", {})
    options = {**{k: data.pop(k) for k in list(data) if k not in _DATA_KEYS}, **options}
    for key, kind in (("optimizers", list), ("metrics", list), ("grid", dict)):
        if key in kwargs and not isinstance(kwargs[key], kind):
            raise fail(key, f"must be a {'list' if kind is list else 'table'}")
    for key in ("optimizers", "metrics"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    if "hidden" in model and isinstance(model["hidden"], list):
        model["hidden"] = tuple(model["hidden"])
    return SweepSpec(model=ModelSpec(**model), data=DataSpec(**data, options=options), **kwargs)


def _toml_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_toml_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _toml_value(v) for k, v in value.items()}
    return value


def to_toml(spec: SweepSpec) -> str:
    """The spec as TOML text (``from_toml(to_toml(s)) == s`` for string chains and a ModelSpec).

    A user's Flax module, callable chain or in-memory arrays cannot be written as TOML; they are
    recorded by their ``repr`` (or a content hash for arrays) in comments, so the text still
    identifies the sweep.
    """
    import tomli_w

    from gradlab import optim

    table: dict[str, Any] = {}
    notes: list[str] = []
    for f in dataclasses.fields(SweepSpec):
        value = getattr(spec, f.name)
        if f.name == "model":
            if isinstance(value, ModelSpec):
                model = dataclasses.asdict(value)
                if model["parametrization"] == "sp":
                    # The default, left out so a sweep written before parametrizations existed
                    # keeps its text and fingerprint (its run directories stay resumable).
                    del model["parametrization"]
                table["model"] = {k: v for k, v in model.items() if v is not None}
            else:
                notes.append(f"model = {value!r}")
        elif f.name == "data":
            if isinstance(value, DataSpec):
                data = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
                if not data["options"]:
                    del data["options"]
                table["data"] = data
            else:
                digest = hashlib.sha256()
                for arr in value[:4]:
                    digest.update(np.ascontiguousarray(arr).tobytes())
                notes.append(f"data = arrays, sha256 {digest.hexdigest()[:16]}")
        elif f.name == "lr_units" and value == "absolute":
            continue  # the default, left out: a sweep written before it existed keeps its text
        elif f.name == "optimizers":
            table["optimizers"] = [optim.chain_name(c) for c in value]
            notes += [f"optimizer {optim.chain_name(c)} = {c!r}" for c in value if callable(c)]
        elif value is not None:
            table[f.name] = _toml_value(value)
    text = tomli_w.dumps(table)
    if notes:
        text = "".join(f"# {n}\n" for n in notes) + text
    return text


def default_spec() -> SweepSpec:
    """The embedded default experiment of ``gradlab run`` (``gradlab/default.toml``).

    The article's MLP 784-10-10-10 (ReLU, softmax cross-entropy) on MNIST, batch 32, as Keras
    builds it (Glorot-uniform kernels, zero biases), with five optimizer chains over log-spaced
    learning rates x init scales x seeds.
    """
    from importlib.resources import files

    return from_toml(files("gradlab").joinpath("default.toml").read_text())
