"""Keep stored clips in step with the owners' plans in the config.

The config says which plan each owner has and how many days each plan keeps. When either changes
(an upgrade, a downgrade, a plan's days edited), every clip already stored must carry the new
deadline — tags in S3 and rows in the index. Detected at start-up and by `storage sync-plans`.
"""

from __future__ import annotations

import logging

from uploader.index import ClipIndex
from uploader.retention import parse_utc, retain_until
from uploader.sweeper import retag_plan

from .context import HubContext

log = logging.getLogger(__name__)


def stale_owners(ctx: HubContext) -> dict[str, str]:
    """Owners whose indexed objects do not match their configured plan (name or days): owner -> plan."""
    cfg, out = ctx.config, {}
    for row in ClipIndex(ctx.db).list_owner_plans():
        plan = cfg.plan_for(row.owner)
        expected = retain_until(parse_utc(row.earliest_wall_end), cfg.plans[plan]).timestamp()
        if row.plans > 1 or row.plan != plan or abs(expected - row.earliest_retain_until) > 1.0:
            out[row.owner] = plan
    return out


def sync_plans(ctx: HubContext) -> dict[str, int]:
    """Re-tag and re-date every owner whose plan changed; returns owner -> objects re-tagged."""
    done = {}
    for owner, plan in stale_owners(ctx).items():
        days = ctx.config.plans[plan]
        done[owner] = retag_plan(ctx.store, ctx.db, owner=owner, plan=plan, days=days)
        log.info("owner %s is on plan %s (%d days): re-tagged %d stored objects", owner, plan, days, done[owner])
    return done
