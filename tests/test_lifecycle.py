"""uploader.lifecycle: backstop lifecycle rules per plan, generated and accepted by a real S3 server (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest
from minio.commonconfig import Filter, Tag
from minio.lifecycleconfig import LifecycleConfig

from uploader import LocalStore, StoreError
from uploader.lifecycle import MULTIPART_RULE_ID, apply_lifecycle, lifecycle_config, plan_rule_id
from uploader.s3_store import S3Store

PLANS = {"premium": 30, "basic": 7, "pro-365": 365}


def _summary(config: LifecycleConfig) -> list[tuple]:
    out = []
    for rule in config.rules:
        f = rule.rule_filter
        assert f is not None
        tag = (f.tag.key, f.tag.value) if f.tag is not None else None
        out.append((rule.rule_id, rule.status, f.prefix, tag,
                    rule.expiration.days if rule.expiration else None,
                    rule.abort_incomplete_multipart_upload.days_after_initiation
                    if rule.abort_incomplete_multipart_upload else None))  # fmt: skip
    return sorted(out, key=lambda r: r[0])


def test_one_rule_per_plan_filtered_by_plan_tag_with_grace() -> None:
    config = lifecycle_config(PLANS, grace_days=2)
    assert [r.rule_id for r in config.rules] == [plan_rule_id(p) for p in sorted(PLANS)] + [MULTIPART_RULE_ID]
    by_id = {r.rule_id: r for r in config.rules}
    for plan, days in PLANS.items():
        rule = by_id[plan_rule_id(plan)]
        assert rule.status == "Enabled" and rule.rule_filter == Filter(tag=Tag("plan", plan))
        assert rule.expiration is not None and rule.expiration.days == days + 2
        assert rule.abort_incomplete_multipart_upload is None
    multipart = by_id[MULTIPART_RULE_ID]
    # S3 forbids tag filters with AbortIncompleteMultipartUpload: a prefix it is.
    assert multipart.rule_filter == Filter(prefix="clips/") and multipart.expiration is None
    assert multipart.abort_incomplete_multipart_upload.days_after_initiation == 1


def test_default_grace_is_one_day_and_no_plans_leaves_the_multipart_rule() -> None:
    assert lifecycle_config({"basic": 7}).rules[0].expiration.days == 8
    assert [r.rule_id for r in lifecycle_config({}).rules] == [MULTIPART_RULE_ID]


@pytest.mark.parametrize(("plans", "grace"), [
    ({"basic": 0}, 1), ({"basic": -3}, 1), ({"basic": 1.5}, 1), ({"basic": 7}, -1),
    ({"bad&plan": 7}, 1), ({"": 7}, 1), ({"x" * 300: 7}, 1),
])  # fmt: skip
def test_invalid_plans_are_rejected(plans: dict, grace: int) -> None:
    with pytest.raises(ValueError):
        lifecycle_config(plans, grace_days=grace)


def test_rules_are_accepted_and_read_back_equal(s3_store: S3Store) -> None:
    assert s3_store.get_bucket_lifecycle() is None
    config = apply_lifecycle(s3_store, PLANS)
    back = s3_store.get_bucket_lifecycle()
    assert back is not None
    assert _summary(back) == _summary(config)
    assert {(r[0], r[3], r[4]) for r in _summary(back) if r[3]} == {
        ("retention-plan-premium", ("plan", "premium"), 31),
        ("retention-plan-basic", ("plan", "basic"), 8),
        ("retention-plan-pro-365", ("plan", "pro-365"), 366),
    }


def test_reapplying_replaces_the_configuration(s3_store: S3Store) -> None:
    apply_lifecycle(s3_store, PLANS)
    apply_lifecycle(s3_store, {"basic": 14})  # a plan withdrawn from sale loses its rule
    back = s3_store.get_bucket_lifecycle()
    assert back is not None and [r.rule_id for r in back.rules] == ["retention-plan-basic", MULTIPART_RULE_ID]
    assert back.rules[0].expiration.days == 15
    s3_store.delete_bucket_lifecycle()
    assert s3_store.get_bucket_lifecycle() is None


def test_local_store_has_no_lifecycle(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for call in (lambda: apply_lifecycle(store, PLANS), store.get_bucket_lifecycle, store.delete_bucket_lifecycle):
        with pytest.raises(StoreError) as err:
            call()
        assert err.value.code == "NotImplemented"
