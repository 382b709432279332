"""schemathesis against Tidings' own OpenAPI document: every operation, with a valid key,
a bounded and seeded set of generated requests each (positive and negative); no answer may
be a 5xx or differ from what the document declares."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Keys, bearer

EXAMPLES_PER_OPERATION = 8
PARTS = 4
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def call(client: TestClient, case: Any, key: str) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=bearer(key))
    data = kwargs.get("data")
    return client.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        content=data if isinstance(data, bytes | str) else None,
        data=data if isinstance(data, dict) else None,
        json=kwargs.get("json"),
    )


@pytest.mark.parametrize("part", range(PARTS))
def test_no_generated_request_gives_a_server_error(
    client: TestClient, keys: Keys, part: int
) -> None:
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    operations = [result.ok() for result in schema.get_all_operations()]
    # The document's operations in PARTS consecutive slices, one test each, so that xdist
    # workers share them; together the parts cover every operation, as one test did.
    start, end = (len(operations) * n // PARTS for n in (part, part + 1))
    assert start < end
    failures: list[str] = []
    for operation, mode in (
        (operation, mode)
        for operation in operations[start:end]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = call(client, case, keys.test)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:600]}")

        try:
            run()
        except Unsatisfiable:  # nothing of this operation can be made invalid
            assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n\n".join(failures)
