"""schemathesis against the live ``/openapi.json``: a few generated requests per route, no 5xx, no response that
breaks the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_fixtures import make_gallery, make_key, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(module_store):
    """One server for the module, on each backend in turn (SQLite file, PostgreSQL database)."""
    make_gallery(module_store, n_synthetic=3)
    key = make_key(module_store, "fuzz", "enroller,searcher,reviewer,auditor,dpo", rate_limit="100000/min")
    srv = start_server(module_store, "--workers", "2", "--queue", "32")
    srv.keys = {"fuzz": key}
    yield srv
    srv.stop()


def _operations(url: str) -> list:
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in api.get_all_operations()]


def test_api_conforms_to_its_schema(live):
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    headers = {"Authorization": f"Bearer {live.keys['fuzz']}"}
    operations = _operations(live.url)
    assert len(operations) >= 17
    failures = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case):
            case.call_and_validate(base_url=live.url, headers=headers, checks=checks, timeout=60)

        try:
            exercise()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
