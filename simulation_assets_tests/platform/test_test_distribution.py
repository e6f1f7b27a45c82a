"""How ``-n 2 --dist loadgroup`` hands out this suite's tests (conftest.pytest_collection_modifyitems).

A module whose tests ask for a module-scoped fixture runs on one worker, so the fixture is built once;
every other test without an ``xdist_group`` is still handed out on its own.
"""

from __future__ import annotations

import pytest

MODULE = "simulation_assets_tests/platform/test_test_distribution.py"


def _loadgroup(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):  # set on the workers of --dist loadgroup
        pytest.skip("only meaningful under pytest-xdist's --dist loadgroup")


@pytest.fixture(scope="module")
def module_wide() -> str:
    return MODULE


def test_a_module_with_a_module_fixture_is_one_group(
    request: pytest.FixtureRequest, module_wide: str
) -> None:
    _loadgroup(request)
    assert request.node.nodeid.endswith(f"::test_a_module_with_a_module_fixture_is_one_group@{module_wide}")


def test_its_other_tests_join_the_group(request: pytest.FixtureRequest) -> None:
    _loadgroup(request)
    assert request.node.nodeid.endswith(f"@{MODULE}")


def test_tests_without_module_fixtures_or_groups_are_handed_out_one_by_one(
    request: pytest.FixtureRequest,
) -> None:
    _loadgroup(request)
    alone = [i for i in request.session.items if "@" not in i.nodeid]
    assert any(i.nodeid.startswith("simulation_assets_tests/test_architecture.py::") for i in alone)
    churn = [i.nodeid for i in request.session.items if "hogflix/test_churn_by_plan.py" in i.nodeid]
    assert churn and all(n.endswith("@simulation_assets_tests/hogflix/test_churn_by_plan.py") for n in churn)
