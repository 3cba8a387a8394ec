"""schemathesis over the live API's OpenAPI schema (uvicorn on a free port): generated requests, valid and
invalid, with an owner's token, a viewer's, another owner's and an invalid one. No response may be a server
error, and no response to the viewer or the other owner may name a camera that is not theirs."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api_hub import record_api_hub, served_hub

MAX_EXAMPLES = 6  # per operation, mode and role: ~1,000 requests, ~50 s on two busy cores
# role -> camera names the role must never read (another owner's); the owner goes last: it may erase.
FOREIGN = {"viewer_a": {"porch"}, "owner_b": {"kitchen"}, "bad_token": {"kitchen", "porch"}, "owner_a": set()}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_api_hub(tmp_path_factory.mktemp("fuzz"))


def test_generated_requests_get_no_server_error_and_no_foreign_names(recorded, tmp_path):
    hub, media = recorded
    statuses: Counter[int] = Counter()
    leaks, errors = [], []
    started = time.monotonic()
    with served_hub(hub, tmp_path, media, api="auth_failures_per_minute = 10000") as api:
        schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        for role, foreign in FOREIGN.items():
            headers = api.headers(role)
            for op in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    _fuzz(op, mode, api.url, headers, role, foreign, statuses, leaks, errors)
    elapsed = time.monotonic() - started
    cases = sum(statuses.values())
    print(f"\nschemathesis: {len(operations)} operations x 2 modes x {len(FOREIGN)} roles, {cases} requests in "
          f"{elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}; server errors {len(errors)}; "
          f"leaks {len(leaks)}")
    assert len(operations) >= 20 and cases >= 500
    assert not errors, errors[:5]
    assert not leaks, leaks[:5]


def _fuzz(op, mode, url, headers, role, foreign, statuses, leaks, errors) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        response = case.call(base_url=url, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        sent = json.dumps([case.path_parameters, case.query, case.body], default=str)
        if response.status_code >= 500:
            errors.append(f"{role} {case.method} {case.formatted_path} {sent[:200]} -> {response.status_code}")
        named = [n for n in foreign if n.encode() in response.content and n not in sent]  # not an echo
        if named:
            leaks.append(f"{role} {case.method} {case.formatted_path} -> {named}")

    try:
        run()
    except Unsatisfiable:  # negative mode for an operation with nothing to get wrong (no parameters, no body)
        assert mode == GenerationMode.NEGATIVE, f"{op.method} {op.path}: no valid request could be generated"
