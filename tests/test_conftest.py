"""The suite's own plumbing: tests that share a machine-wide resource run on one xdist worker."""

from __future__ import annotations

import pytest


@pytest.mark.postgres
def test_a_postgres_test_carries_its_xdist_group_in_the_node_id(request: pytest.FixtureRequest) -> None:
    """xdist's loadgroup scheduler reads the group from the node id; without it two workers could
    each use the PostgreSQL cluster while a fault test on the other has stopped it."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only meaningful under `--dist loadgroup` (make test)")
    assert request.node.nodeid.endswith("@postgres")
