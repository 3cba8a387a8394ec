"""schemathesis over the live API's OpenAPI schema (uvicorn on a free port): generated requests, valid and
invalid, with an owner's token, a viewer's, another owner's and an invalid one (long variant: also a revoked one
and none). No response may be a server error, no response to the viewer or the other owner may name a camera,
owner or clip that is not theirs, and no token may show in a response or in anything the hub logged meanwhile.

Fault suite (issue 14, item 5): short in a plain run, ``pytest -m faults`` runs more examples per operation."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from edge_media.service.catalog import ClipCatalog

from api_hub import BAD_TOKEN, record_api_hub, served_hub

MAX_EXAMPLES = {False: 6, True: 25}  # per operation, mode and role: short ~1,000 requests, ~25 s on two busy cores
# role -> what the role must never read: the other owner's cameras, owner id and clips ("kitchen"/"porch" get
# their clip ids added). The owner goes last: it may erase.
FOREIGN = {"viewer_a": {"porch", "bob"}, "owner_b": {"kitchen", "alice"}, "bad_token": {"kitchen", "porch"},
           "owner_a": set()}
LONG_ROLES = {"revoked": {"kitchen", "porch"}, "anonymous": {"kitchen", "porch"}}
HUB_LOGGERS = ("edge_media", "uvicorn", "fastapi", "starlette")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("httpx", "httpcore", "schemathesis", "hypothesis")):  # the test's side
            self.lines.append(f"{record.getMessage()} {record.__dict__!r}")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_api_hub(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.faults
def test_generated_requests_get_no_server_error_and_no_foreign_names(recorded, tmp_path, figures):
    hub, media = recorded
    statuses: Counter[int] = Counter()
    leaks, errors, echoed = [], [], []
    roles = {**(LONG_ROLES if figures.long else {}), **FOREIGN}  # the owner last
    tap = Lines()
    logging.getLogger().addHandler(tap)
    levels = {name: logging.getLogger(name).level for name in HUB_LOGGERS}
    for name in HUB_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    started = time.monotonic()
    try:
        with served_hub(hub, tmp_path, media, api="auth_failures_per_minute = 10000") as api:
            clips = {c.clip_id: str(c.camera) for c in ClipCatalog(api.service.ctx).list_clips()}
            tokens = [*api.tokens.values(), BAD_TOKEN]
            schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json")
            operations = [result.ok() for result in schema.get_all_operations()]
            for role, names in roles.items():
                foreign = names | {clip for clip, camera in clips.items() if camera in names}
                headers = api.headers(role)
                for op in operations:
                    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                        _fuzz(op, mode, api.url, headers, role, foreign, tokens, statuses, leaks, errors, echoed,
                              MAX_EXAMPLES[figures.long])
    finally:
        logging.getLogger().removeHandler(tap)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    elapsed = time.monotonic() - started
    cases = sum(statuses.values())
    logged = [t for t in tokens if any(t in line for line in tap.lines)]
    print(f"\nschemathesis: {len(operations)} operations x 2 modes x {len(roles)} roles, {cases} requests in "
          f"{elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}; server errors {len(errors)}; "
          f"leaks {len(leaks)}")
    figures.add(f"generated requests ({len(operations)} operations x valid/invalid x {len(roles)} roles)", "-",
                cases, True)
    figures.add("responses >= 500", "0", len(errors), not errors)
    figures.add("responses naming another owner's camera, owner id or clip", "0", len(leaks), not leaks)
    figures.add("tokens in a response / in the hub's log records", "0 / 0", f"{len(echoed)} / {len(logged)}",
                not echoed and not logged)
    assert len(operations) >= 20 and cases >= 500
    assert not errors, errors[:5]
    assert not leaks, leaks[:5]
    assert not echoed and not logged, (echoed[:5], len(logged))
    assert tap.lines, "the hub's log records were captured"


def _fuzz(op, mode, url, headers, role, foreign, tokens, statuses, leaks, errors, echoed, examples) -> None:
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
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
        if any(t.encode() in response.content or t in str(response.headers) for t in tokens):
            echoed.append(f"{role} {case.method} {case.formatted_path}")

    try:
        run()
    except Unsatisfiable:  # negative mode for an operation with nothing to get wrong (no parameters, no body)
        assert mode == GenerationMode.NEGATIVE, f"{op.method} {op.path}: no valid request could be generated"
