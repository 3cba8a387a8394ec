"""Backstop S3 lifecycle rules: one expiration rule per service plan, selected by the objects' ``plan`` tag.

The sweeper is the prompt path (it deletes at the deadline to the second). These rules only catch what it
misses: a hub that is offline for good, a lost index. S3 counts lifecycle days from the object's *creation*
(always after the clip's end, so never earlier than the promise) and rounds to the next midnight UTC, so each
rule waits ``days + grace_days``: the backstop must never race the sweeper, only follow it. A plan change
re-tags ``plan``, so objects move to the new plan's rule without touching the lifecycle configuration.
"""

from __future__ import annotations

from collections.abc import Mapping

from minio.commonconfig import ENABLED, Filter, Tag
from minio.lifecycleconfig import (
    AbortIncompleteMultipartUpload,
    Expiration,
    LifecycleConfig,
    Rule,
)

from .retention import PLAN_TAG
from .store import ObjectStore, StoreError, validate_tags

RULE_ID_PREFIX = "retention-plan-"
MULTIPART_RULE_ID = "abort-incomplete-multipart"
CLIPS_PREFIX = "clips/"
MAX_RULES = 1000  # S3's limit per bucket configuration
MAX_RULE_ID = 255


def plan_rule_id(plan: str) -> str:
    return f"{RULE_ID_PREFIX}{plan}"


def lifecycle_config(plans: Mapping[str, int], *, grace_days: int = 1) -> LifecycleConfig:
    """Rules for ``plans`` (name -> retention days), sorted by plan name so that the same plans always give
    the same configuration (re-applying is a no-op a diff can show)."""
    if isinstance(grace_days, bool) or not isinstance(grace_days, int) or grace_days < 0:
        raise ValueError(f"grace_days must be an integer >= 0, got {grace_days!r}")
    if len(plans) + 1 > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES - 1} plans fit in one lifecycle configuration, got {len(plans)}")
    rules = [_plan_rule(name, days, grace_days) for name, days in sorted(plans.items())]
    # Parts of an upload that never completed are invisible to listings (and so to reconcile) but still hold
    # recording bytes. S3 forbids tag filters on this action, hence the prefix.
    rules.append(Rule(ENABLED, rule_filter=Filter(prefix=CLIPS_PREFIX), rule_id=MULTIPART_RULE_ID,
                      abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(days_after_initiation=1)))
    return LifecycleConfig(rules)


def apply_lifecycle(store: ObjectStore, plans: Mapping[str, int], *, grace_days: int = 1) -> LifecycleConfig:
    """Replace the bucket's lifecycle configuration with the rules for ``plans``; returns what was set.
    StoreError(NotImplemented) on a store without lifecycle rules (LocalStore)."""
    config = lifecycle_config(plans, grace_days=grace_days)
    store.set_bucket_lifecycle(config)
    return config


def _plan_rule(name: str, days: int, grace_days: int) -> Rule:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"plan {name!r}: days must be an integer >= 1, got {days!r}")
    try:
        validate_tags({PLAN_TAG: name})  # the filter must match the tag the uploader can actually write
    except StoreError as exc:
        raise ValueError(f"plan name {name!r} is not a valid tag value: {exc.message}") from None
    if not name or len(plan_rule_id(name)) > MAX_RULE_ID:
        raise ValueError(f"plan name must be 1..{MAX_RULE_ID - len(RULE_ID_PREFIX)} characters: {name!r}")
    return Rule(ENABLED, rule_filter=Filter(tag=Tag(PLAN_TAG, name)), rule_id=plan_rule_id(name),
                expiration=Expiration(days=days + grace_days))
