"""Shared pytest setup: hypothesis profiles and the path to the test helpers.

Profiles: ``dev`` (default; random, modest example counts) and ``ci``
(derandomized, so CI runs are reproducible; the default when ``CI`` is set). Choose with
``HYPOTHESIS_PROFILE=ci pytest``. Individual properties set their own
``max_examples`` to keep the suite fast.
"""

import os
import sys

from hypothesis import HealthCheck, Phase, settings

sys.path.insert(0, os.path.dirname(__file__))  # so tests can `import strategies`

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=30, **_common)
settings.register_profile("ci", max_examples=30, derandomize=True, print_blob=True, **_common)
# Mutation testing (docs/testing.md): reproducible, and no shrinking -- a mutant is killed by
# the first failing example, so time spent minimising it is wasted.
settings.register_profile("mutation", max_examples=30, derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate], **_common)
# CI (CI=true) gets the derandomized profile unless one is named explicitly.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_configure(config):
    """Under mutmut, each mutant's tests run in a process forked from one that has already
    imported catgrad and the test modules, so work done at import time (the rule tables,
    the samples, cached ops) is the unmutated code's. Forgetting those modules makes this
    session import them again with the mutant active; numpy and torch stay loaded.

    ``CATGRAD_MUTATION=calls``: the mutated code runs only when called (the compiler, the
    optimizers), so only what the parent cached is forgotten (the torch modules built
    per program, the ops made per type): much faster than importing again."""
    if not os.environ.get("MUTANT_UNDER_TEST") or "catgrad" not in sys.modules:
        return
    if os.environ.get("CATGRAD_MUTATION") == "calls":
        torch_backend = sys.modules.get("catgrad.compiler.torch_backend")
        if torch_backend is not None:
            torch_backend._CACHE.clear()
        primitive = sys.modules["catgrad.core.primitive"]
        primitive._OPS.clear()
        primitive._rule_params.cache_clear()
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None) or ""
        ours = name == "catgrad" or name.startswith("catgrad.")
        if ours or (path.startswith(here + os.sep) and os.path.basename(path) != "conftest.py"):
            del sys.modules[name]
