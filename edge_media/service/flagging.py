"""Flagging a misdetection: the one implementation behind ``edge-media feedback flag`` and the API's flag route.

Checks that the clip's owner is one this config knows, stores the flag through :class:`FlagService` and, for an
audio flag the owner consented to, queues its anonymised sample in the same transaction (:class:`FlagFeedback`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..errors import UsageError
from ..privacy.flags import Flag, FlagRequest, FlagService
from .catalog import ClipRecord
from .context import HubContext
from .feedback import AUDIO_MODEL, FlagFeedback


@dataclass(frozen=True)
class FlagOutcome:
    flag: Flag
    partner_queued: bool  # an anonymised sample of it waits for the model partner


def audio_event_labels(config: Config) -> tuple[str, ...]:
    """The event labels of the configured audio model, read without loading it: the manifest's product labels
    for ours, the product labels a YAMNet-style model is mapped onto otherwise."""
    # Imported here: the audio package loads onnxruntime, which flagging does not need.
    from ..audio.labels import AUDIOSET_TO_EVENTS, NON_EVENT_LABELS
    from ..model_files import read_manifest

    if config.audio.model is not None:
        return tuple(AUDIOSET_TO_EVENTS)
    entry = read_manifest()["models"].get(AUDIO_MODEL) or {}
    labels = entry.get("product_labels") or [x for x in entry.get("labels", []) if x not in NON_EVENT_LABELS]
    return tuple(str(x) for x in labels)


def known_owners(config: Config) -> set[str]:
    return set(config.owners) | {c.owner for c in config.cameras} | {m.owner for m in config.microphones}


def flag_clip(ctx: HubContext, clip: ClipRecord, request: FlagRequest) -> FlagOutcome:
    """Check and store ``request`` about ``clip``; :class:`UsageError` (nothing stored) when it makes no sense."""
    if clip.owner not in known_owners(ctx.config):
        raise UsageError(f"--clip: clip {clip.clip_id} belongs to owner {clip.owner!r}, who is not in this config")
    hook = FlagFeedback(ctx, clip)
    flag = FlagService(ctx.db, audio_event_labels(ctx.config)).flag(clip, request, hook)
    return FlagOutcome(flag, hook.queued is not None)
