"""The sweep engine: spec -> plan -> one compiled program per group -> chunks -> Dataset.

=================  ==========================================================================
``plan``           groups x the flat table of traced runs, chunking, batch orders, the memory
                   estimate, each group's static program config and the run-directory layout
``config``         the static facts of one group's program (module, chain, steps, precision)
``program``        the training step, the scan over steps and the final evaluation, as
                   top-level functions of a frozen config (what gets compiled)
``measure``        the opt-in curvature metric sets, one function each, on their own cadence
``platform``       everything that depends on CPU vs GPU/TPU: XLA:CPU workarounds, compiler
                   options, chunk caps, the kernel storage layout, compiling with shard_map
``cache``          compiled programs and traced shapes, kept per process
``progress``       the progress bar: compilation as its own phase, chunks, and (opt-in) the
                   steps within a chunk reported from the compiled program
``run``            :func:`run`: orchestration, persistence through :mod:`gradlab.store`
``replay``         :func:`~gradlab.engine.replay.replay`: one run again, with its parameters
=================  ==========================================================================
"""

from gradlab.engine import cache
from gradlab.engine.plan import Group, Plan, make_plan, shared_batch_order
from gradlab.engine.platform import default_memory_budget
from gradlab.engine.run import run

cache.default_persistent_cache()

__all__ = [
    "Group",
    "Plan",
    "default_memory_budget",
    "make_plan",
    "run",
    "shared_batch_order",
]
