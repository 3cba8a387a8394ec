"""Who am I, the cameras (live status, restriction), model versions, and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from ...rollout.manager import ModelReleases
from ...service.flagging import audio_event_labels
from ...service.metrics import CONTENT_TYPE
from ..auth import Auth, Owner, State, own_source, sources
from ..schemas import Camera, Me, Model, Models, Restriction, Rollout, RolloutStep, iso

router = APIRouter()


@router.get("/api/v1/me", response_model=Me, tags=["access"])
def me(state: State, who: Auth) -> Me:
    return Me(name=who.name, role="owner" if who.is_owner else "viewer", owner=who.owner,
              cameras=sorted(sources(state, who)))


@router.get("/api/v1/cameras", response_model=list[Camera], tags=["cameras"])
def cameras(state: State, who: Auth) -> list[Camera]:
    mine = sources(state, who)
    owner_of = state.hub.ctx.owner_of
    return [Camera.of(s, owner_of(s.name)) for s in sorted(state.hub.live.snapshot(), key=lambda s: s.name)
            if s.name in mine]


@router.get("/api/v1/cameras/{name}", response_model=Camera, tags=["cameras"])
def camera(name: str, state: State, who: Auth) -> Camera:
    live = state.hub.live.get(own_source(state, who, name))
    if live is None:  # configured but disabled: not running, nothing live to show
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {name!r}")
    return Camera.of(live, state.hub.ctx.owner_of(name))


def _restrict(name: str, state: State, who: Owner, restricted: bool) -> Restriction:
    own_source(state, who, name)
    assert who.owner is not None
    scope = state.hub.ctx.scope(who.owner)
    if restricted:
        state.hub.rights.restrict(scope, name)
    else:
        state.hub.rights.unrestrict(scope, name)
    # The pipeline picks the standing order up from the database within its control interval; the live view
    # says so at once, as the owner just asked.
    state.hub.live.set_restricted(name, restricted)
    return Restriction(camera=name, restricted=restricted)


@router.post("/api/v1/cameras/{name}/restrict", response_model=Restriction, tags=["owner rights"])
def restrict(name: str, state: State, who: Owner) -> Restriction:
    """Stop recording and uploading new clips of this camera (nothing is deleted)."""
    return _restrict(name, state, who, True)


@router.delete("/api/v1/cameras/{name}/restrict", response_model=Restriction, tags=["owner rights"])
def unrestrict(name: str, state: State, who: Owner) -> Restriction:
    return _restrict(name, state, who, False)


@router.get("/api/v1/models", response_model=Models, tags=["hub"])
def models(state: State, who: Auth) -> Models:
    labels = {"motion": ["motion"], "audio_events": list(audio_event_labels(state.hub.config))}
    releases = state.hub.releases
    rollout = {"audio_events": _rollout(releases)} if releases is not None else {}
    return Models(models=[Model(name=n, version=v, labels=labels.get(n, []), rollout=rollout.get(n))
                          for n, v in sorted(state.hub.model_versions().items())])


def _rollout(releases: ModelReleases) -> Rollout:
    st = releases.state()
    steps = [RolloutStep(at=iso(line.time), version=line.version, step=line.step, message=line.message)
             for line in releases.store.log_lines(st.name, 10)]
    return Rollout(phase=st.phase, since=iso(st.phase_since), candidate=st.candidate, previous=st.previous,
                   steps=steps)


@router.get("/metrics", tags=["hub"], response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition"}})
def metrics(state: State, who: Auth) -> Response:
    """Hub-wide figures and those of the caller's cameras only."""
    return Response(state.hub.metrics.render(cameras=sources(state, who)), media_type=CONTENT_TYPE)
