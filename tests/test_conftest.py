"""The suite's own plumbing: tests that share a machine-wide resource run on one xdist worker; a repeated series'
children run without coverage."""

from __future__ import annotations

import os
import subprocess
import sys

import coverage
import pytest

from tests.conftest import COVERAGE_CHILD_VARIABLES
from tests.fixtures.databases import require_postgres

CHILD_MEASURED = ("import sys; print('coverage' in sys.modules "
                  "and sys.modules['coverage'].Coverage.current() is not None)")


@pytest.mark.postgres
def test_a_postgres_test_carries_its_xdist_group_in_the_node_id(request: pytest.FixtureRequest) -> None:
    """xdist's loadgroup scheduler reads the group from the node id; without it two workers could
    each use the PostgreSQL cluster while a fault test on the other has stopped it."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only meaningful under `--dist loadgroup` (make test)")
    assert request.node.nodeid.endswith("@postgres")


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_an_unreachable_postgres_fails_under_ci_and_skips_elsewhere(
        monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="not reachable"):
        require_postgres("postgresql://postgres@127.0.0.1:1/test", wait_s=0.5)


def child_is_measured() -> bool:
    """Whether a Python child started as the tests start theirs (environment inherited) runs under coverage."""
    out = subprocess.run([sys.executable, "-c", CHILD_MEASURED], env=dict(os.environ), capture_output=True,
                         text=True, check=True, timeout=30)
    return out.stdout.strip() == "True"


def test_an_unmarked_tests_children_are_measured_when_the_suite_is() -> None:
    assert child_is_measured() == (coverage.Coverage.current() is not None)


@pytest.mark.children_unmeasured
def test_a_children_unmeasured_tests_children_run_without_coverage() -> None:
    assert not any(name in os.environ for name in COVERAGE_CHILD_VARIABLES)
    assert not child_is_measured()
