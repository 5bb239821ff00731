"""gradlab.analysis as a package: its public names, its imports, its docstrings and examples."""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
from pathlib import Path

import pytest

from gradlab import analysis

PACKAGE = Path(analysis.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")

# Every public name of the single-module gradlab.analysis before it became a package
# (less fixed_point_chi1, which was empirical_chi1 with skip=4: one implementation now).
FORMER_NAMES = """
TABLE_COLUMNS alive best_learning_rate chi1_profile claims_table compare_optimizers
concat_sweeps critical_init_scale crossing divergence_rate edge_of_stability empirical_chi1
fire_rate format_table grid_axes markdown_table max_stable_lr
performance_profile power_law_exponent predicted_lr_boundary profile_score relative_cost
stable_lr_range survival time_to_explode trainable_depth typical_grad_norm wilson_interval
LR SEED
""".split()


def test_every_former_public_name_still_resolves():
    missing = [n for n in FORMER_NAMES if not hasattr(analysis, n)]
    assert not missing
    assert set(FORMER_NAMES) - {"LR", "SEED"} <= set(analysis.__all__)


def test_all_is_explicit_sorted_and_resolves():
    names = analysis.__all__
    assert len(set(names)) == len(names)
    # sorted as ruff (RUF022) keeps it: constants, then classes, then functions
    kind = lambda n: 0 if n.isupper() else 1 if n[0].isupper() else 2
    assert list(names) == sorted(names, key=lambda n: (kind(n), n))
    for name in names:
        assert getattr(analysis, name) is not None, name


@pytest.mark.parametrize("name", [n for n in analysis.__all__ if n.islower()])
def test_public_functions_document_args_returns_and_an_example(name):
    obj = getattr(analysis, name)
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{name} has no docstring"
    assert "Returns:" in doc and "Example:" in doc, name
    if inspect.signature(obj).parameters:
        assert "Args:" in doc, name


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


@pytest.mark.parametrize("module", MODULES)
def test_modules_read_datasets_only_and_share_no_private_names(module):
    """analysis never imports the engine, the optimizers (chain strings are not parsed here),
    plots or report, and imports no private name from another module."""
    path = PACKAGE / f"{module}.py"
    for name, names in _imports(path):
        assert name.split(".")[:2] not in (
            ["gradlab", m] for m in ("engine", "optim", "plots", "report", "cli", "store")
        ), f"{module} imports {name}"
        assert not [n for n in names if n.startswith("_")], f"{module}: {names} from {name}"
    assert len(path.read_text().splitlines()) < 500


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_run(module):
    mod = importlib.import_module(f"gradlab.analysis.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
