"""The result schema against what the engine records and what the README documents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradlab as gl
from gradlab import schema

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_variable_table_is_the_schema():
    assert schema.markdown_table() in README.read_text(), (
        "README's result-variable table differs from gl.schema.markdown_table(); paste it again"
    )


# "none" is checked inside ("none", "per_example"): exactly the run-level variables and that set's.
@pytest.mark.parametrize(
    "metrics",
    [("default",), ("default", "sharpness", "hessian_trace"), ("none", "per_example")],
)
def test_a_sweep_records_exactly_the_schema_variables_of_its_metric_sets(metrics):
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=gl.DataSpec(name="digits", n_train=64, n_test=16),
        optimizers=("sgd",),
        grid={"seed": [0]},
        steps=2,
        batch_size=16,
        metrics=metrics,
        sharpness_iters=3,
    )
    ds = gl.run(spec, progress=False)
    assert set(ds.data_vars) == set(schema.variables_of(metrics))
    for name in ds.data_vars:
        variable = schema.VARIABLES[name]
        assert ds[name].dims == ("optimizer", "seed", *variable.dims), name
        assert np.dtype(ds[name].dtype) == np.dtype(variable.dtype), name


def test_directions():
    assert schema.higher_is_better("test_accuracy") and schema.higher_is_better("accuracy")
    assert not schema.higher_is_better("final_loss")
    assert not schema.higher_is_better("grad_norm")  # a measurement, not a figure of merit
    assert not schema.higher_is_better("no_such_variable")
    every_set = {v.metric_set for v in schema.VARIABLES.values()}
    assert every_set <= {"run", *schema.METRIC_SETS}
    for names in schema.CURVATURE_SETS.values():  # opt-in sets record per step (and layer)
        assert all(schema.VARIABLES[n].dims in (schema.STEP, schema.STEP_LAYER) for n in names)
