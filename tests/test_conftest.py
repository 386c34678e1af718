"""The suite's own plumbing: tests that share a machine-wide resource run on one xdist worker."""

from __future__ import annotations

import pytest

from tests.fixtures.databases import require_postgres


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
