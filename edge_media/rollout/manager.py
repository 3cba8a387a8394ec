"""What a hub does with releases, for the CLI and the service alike: check, install, roll back, report.

``install`` is the gate between a release source and the hub's disk. In this order, and nothing is loaded
before the first three pass: the manifest's signature (a configured public key), the manifest describing
the release it was found under, the model file's size and sha256 from that manifest; then compatibility
with this hub (the labels its config names still exist; the same sample rate and window, so sources keep
their windowers across a hot swap); then the smoke test on the shipped sample clips. Only then does the
release become the candidate, which the service runs in shadow (:mod:`.controller`). Every refusal names
the release and the reason, is logged in ``model_log`` and leaves the running model alone.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audio.model import MANIFEST_NAME, AudioEventModel
from ..config import Config
from ..config.storage import S3Config
from ..errors import EdgeMediaError, UsageError
from ..model_files import ModelIntegrityError, file_sha256, models_dir, read_manifest
from .release import MANIFEST_FILE as RELEASE_MANIFEST
from .release import (
    MAX_MANIFEST_BYTES,
    SIGNATURE_FILE,
    ReleaseError,
    ReleaseManifest,
    cohort_position,
    in_cohort,
    key_id,
    load_public_key,
    parse_version,
    verify_manifest,
)
from .smoke import smoke_test
from .source import DirectorySource, ReleaseSource, S3Source, SourceUnavailable, TooLarge
from .store import RolloutState, RolloutStore

log = logging.getLogger(__name__)

NAME = MANIFEST_NAME  # the audio-event model; the motion graph is built, not trained, and ships with the code
REFUSED = ("refused", "rejected", "rolled_back")  # a check never offers these again; `install --version` may


class NoRelease(EdgeMediaError):
    """There is nothing to install (no newer release for this hub) or to roll back to."""


@dataclass(frozen=True)
class Offer:
    version: str
    verdict: str  # "available", "not in cohort", "refused: …", "unreadable: …"
    manifest: ReleaseManifest | None = None

    @property
    def available(self) -> bool:
        return self.verdict == "available"


def shipped_version() -> str:
    """The audio model shipped with this edge-media (``models/manifest.json``). The control loop asks every tick:
    read once per models directory (its sha256 is checked where the model is loaded, not here)."""
    return _manifest_version(str(models_dir()))


@functools.cache
def _manifest_version(directory: str) -> str:
    try:
        return str(read_manifest(Path(directory))["models"][NAME]["version"])
    except (ModelIntegrityError, KeyError, TypeError):
        return "0.0.0"


def build_source(config: Config) -> ReleaseSource | None:
    src = config.models.source
    if src.backend == "local":
        return DirectorySource(config.service.data_dir / src.local_dir, src.prefix)
    if src.backend == "s3":
        assert src.s3 is not None
        return S3Source(_minio(src.s3), src.s3.bucket, src.prefix)
    return None


def _minio(s3: S3Config):
    from minio import Minio

    from ..service.storage import resolve_credentials

    access, secret = resolve_credentials(s3)
    return Minio(s3.endpoint, access, secret, secure=s3.use_tls, region=s3.region)


def referenced_labels(config: Config) -> dict[str, list[str]]:
    """Audio labels this hub's config names, each with where: a new model must still have every one."""
    audio, notify = config.audio, config.notify
    where: dict[str, list[str]] = {}

    def add(label: str, place: str) -> None:
        if label != "motion":
            where.setdefault(label, []).append(place)

    for label in audio.thresholds:
        add(label, "audio.thresholds")
    for label in audio.min_duration_s if isinstance(audio.min_duration_s, dict) else {}:
        add(label, "audio.min_duration_s")
    for label in audio.candidate_thresholds:
        add(label, "audio.candidate_thresholds")
    for label in notify.labels:
        add(label, "notify.labels")
    if "always_notify" in notify.model_fields_set:  # the default list names labels nobody chose
        for label in notify.always_notify:
            add(label, "notify.always_notify")
    for cam, rule in notify.cameras.items():
        for label in rule.labels:
            add(label, f"notify.cameras.{cam}.labels")
    return where


class ModelReleases:
    """One hub's view of the audio model's releases: the source, the trusted keys, its disk and tables."""

    def __init__(self, config: Config, store: RolloutStore, secret: bytes, source: ReleaseSource | None) -> None:
        self.config, self.store, self.secret, self.source = config, store, secret, source
        self.keys = [load_public_key(k) for k in config.models.public_keys]

    # -- what runs --------------------------------------------------------------------------------------

    def state(self) -> RolloutState:
        return self.store.state(NAME)

    def active_version(self) -> str:
        return self.state().active or shipped_version()

    def load(self, version: str | None, *, threads: int = 1) -> AudioEventModel:
        """An installed version (sha256 checked again), or the shipped model for None."""
        if version is None:
            return AudioEventModel.from_manifest(threads=threads)
        directory = self.store.version_dir(NAME, version)
        if not directory.is_dir():
            raise ModelIntegrityError(f"audio model {version} is not installed in {directory}")
        return AudioEventModel.from_manifest(NAME, directory, threads=threads)

    def load_active(self, *, threads: int = 1) -> AudioEventModel:
        """What the service starts with: the active version; if it cannot be loaded, the previous one, then the
        shipped model (each fall-back is logged and recorded, so ``models status`` says why)."""
        state = self.state()
        for version in dict.fromkeys((state.active, state.previous)):
            if version is None:
                break
            try:
                model = self.load(version, threads=threads)
            except ModelIntegrityError as exc:
                log.error("audio model %s cannot be loaded (%s); falling back", version, exc)
                self.store.update(NAME, "load_failed", f"cannot load {version}: {exc}", version=version,
                                  status="refused", active=state.previous if version == state.active else None,
                                  previous=None, phase="idle", phase_since=None)
                continue
            return model
        return self.load(None, threads=threads)

    def load_fallback(self, *, threads: int = 1) -> AudioEventModel | None:
        """While a promoted model is watched: the model it replaced, kept loaded to switch back to at once."""
        state = self.state()
        if state.phase != "watch" or state.active is None:
            return None
        try:
            return self.load(state.previous, threads=threads)
        except ModelIntegrityError as exc:
            log.error("the model before %s cannot be loaded (%s): no instant fallback", state.active, exc)
            return None

    # -- check and install ------------------------------------------------------------------------------

    def _require_source(self) -> ReleaseSource:
        if self.source is None:
            raise UsageError("no release source is configured ([models.source] backend = 'local' or 's3')")
        return self.source

    def check(self) -> list[Offer]:
        """Every published version newer than the active one, newest first, with what this hub would do."""
        source = self._require_source()
        current = parse_version(self.active_version())
        statuses = self.store.statuses(NAME)
        offers = []
        for version in sorted(source.versions(NAME), key=parse_version, reverse=True):
            if parse_version(version) <= current:
                continue
            status = statuses.get(version)
            try:
                manifest = self._verified_manifest(source, version)[0]
            except (ReleaseError, TooLarge) as exc:
                offers.append(Offer(version, f"unusable: {exc}"))
                continue
            if status is not None and status[0] in REFUSED:
                offers.append(Offer(version, f"{status[0]}: {status[1]}", manifest))
            elif not in_cohort(self.secret, manifest):
                pos = cohort_position(self.secret, NAME, version)
                offers.append(Offer(version, f"not in cohort (rollout {manifest.rollout_percent:g} %, this hub is "
                                             f"at {pos:.1f})", manifest))
            else:
                offers.append(Offer(version, "available", manifest))
        return offers

    def _verified_manifest(self, source: ReleaseSource, version: str) -> tuple[ReleaseManifest, bytes, bytes]:
        """The release's manifest once its signature verified, with the signed bytes and the signature."""
        signed = source.read(NAME, version, RELEASE_MANIFEST, MAX_MANIFEST_BYTES)
        if signed is None:
            raise ReleaseError(f"release {NAME} {version} has no {RELEASE_MANIFEST}")
        signature = source.read(NAME, version, SIGNATURE_FILE, 4096)
        manifest = verify_manifest(signed, signature, self.keys, name=NAME, version=version)
        assert signature is not None  # verify_manifest refuses a missing one
        return manifest, signed, signature

    def install(self, version: str | None = None, *, shadow: bool = True) -> ReleaseManifest:
        """Download, verify, check and smoke-test a release, then make it the candidate (or, with
        ``shadow=False``, the active model at once). ``version`` None: the newest available to this hub."""
        source = self._require_source()
        state = self.state()
        if state.candidate is not None:
            raise UsageError(f"candidate {state.candidate} is still in shadow; roll it back first "
                             f"(edge-media models rollback)")
        if state.phase == "watch":
            raise UsageError(f"{state.active} was promoted and is still watched (until the watch ends, errors or "
                             "flags roll it back); roll it back first, or install after the watch")
        if version is None:
            offers = [o for o in self.check() if o.available]
            if not offers:
                raise NoRelease(f"no newer release of {NAME} for this hub (active {self.active_version()})")
            version = offers[0].version
        parse_version(version)
        try:
            manifest, signed, signature, staging = self._download(source, version)
        except (ReleaseError, TooLarge) as exc:
            # Logged, not remembered: what the source serves may be fixed (re-signed, re-uploaded), and a check
            # verifies it again every time, so a bad release is never offered meanwhile.
            log.error("%s", exc)
            self.store.update(NAME, "verify", f"refused: {exc}", version=version)
            raise ReleaseError(str(exc)) from None
        try:
            self._check_compatible(manifest)
            directory = self.store.commit_dir(staging, manifest, signed, signature)
        except ReleaseError as exc:
            self.store.discard(staging)
            self._refuse(version, "compatibility", str(exc))
            raise
        try:
            self._smoke(manifest, directory)
        except ReleaseError as exc:
            self.store.discard(directory)
            self._refuse(version, "smoke_test", str(exc))
            raise
        return self._stage(manifest, shadow)

    def _download(self, source: ReleaseSource, version: str) -> tuple[ReleaseManifest, bytes, bytes, Path]:
        manifest, signed, signature = self._verified_manifest(source, version)
        self.store.clean_staging(NAME)
        staging = self.store.staging_dir(NAME)
        model = staging / manifest.file
        try:
            source.download(NAME, version, manifest.file, model, manifest.size)
            size, sha = model.stat().st_size, file_sha256(model)
            if size != manifest.size or sha != manifest.sha256:
                raise ReleaseError(f"release {NAME} {version}: {manifest.file} does not match its signed manifest "
                                   f"(sha256 {sha[:16]}…, {size} bytes; signed {manifest.sha256[:16]}…, "
                                   f"{manifest.size} bytes); refused")
        except (ReleaseError, TooLarge, SourceUnavailable):
            self.store.discard(staging)
            raise
        return manifest, signed, signature, staging

    def _check_compatible(self, manifest: ReleaseManifest) -> None:
        what = f"release {NAME} {manifest.version}"
        missing = {label: places for label, places in referenced_labels(self.config).items()
                   if label not in manifest.product_labels}
        if missing:
            named = "; ".join(f"{label} (in {', '.join(places)})" for label, places in sorted(missing.items()))
            raise ReleaseError(f"{what} lacks labels this hub's config uses: {named}; refused")
        active = self.state().active  # its runtime entry says enough: no onnxruntime session for two numbers
        entry = read_manifest(self.store.version_dir(NAME, active) if active else None)["models"][NAME]
        rate, window = int(entry["sample_rate"]), int(entry["window_samples"])
        if (manifest.sample_rate, manifest.window_samples) != (rate, window):
            raise ReleaseError(f"{what} takes {manifest.window_samples} samples at {manifest.sample_rate} Hz, the "
                               f"running model {window} at {rate} Hz: it cannot be swapped in; refused")

    def _smoke(self, manifest: ReleaseManifest, directory: Path) -> None:
        try:
            model = AudioEventModel.from_manifest(NAME, directory)
        except ModelIntegrityError as exc:
            raise ReleaseError(f"release {NAME} {manifest.version} does not load: {exc}; refused") from None
        result = smoke_test(model, self.config.audio)
        self.store.update(NAME, "smoke_test", result.summary(), version=manifest.version)
        if not result.passed:
            raise ReleaseError(f"release {NAME} {manifest.version} failed the smoke test ({result.summary()}); "
                               "refused")

    def _refuse(self, version: str, step: str, reason: str) -> None:
        log.error("%s", reason)
        self.store.update(NAME, step, reason, version=version, status="refused")

    def _stage(self, manifest: ReleaseManifest, shadow: bool) -> ReleaseManifest:
        version, now = manifest.version, time.time()
        if shadow:
            self.store.update(NAME, "candidate", f"installed {version} (signed by key {manifest.key_id}, sha256 "
                              f"{manifest.sha256[:16]}…, smoke test passed); it runs in shadow next",
                              version=version, status="candidate", candidate=version, phase="shadow",
                              phase_since=now, stats={})
        else:
            state = self.state()
            self.store.update(NAME, "promoted", f"installed {version} and made it active without a shadow run "
                              "(by hand)", version=version, status="active", active=version,
                              previous=state.active, candidate=None, phase="watch", phase_since=now, stats={})
        return manifest

    # -- rollback -------------------------------------------------------------------------------------------

    def rollback(self, reason: str = "by hand") -> RolloutState:
        """Abandon a candidate in shadow, or return to the previous model. A running service follows within a
        few seconds (it reads the state on every tick)."""
        state = self.state()
        if state.candidate is not None:
            return self.store.update(NAME, "rejected", f"candidate {state.candidate} dropped ({reason})",
                                     version=state.candidate, status="rejected", candidate=None, phase="idle",
                                     phase_since=None, stats={})
        if state.active is None:
            raise NoRelease(f"the shipped model {shipped_version()} is active: there is nothing to roll back to")
        target = state.previous
        if target is not None and not self.store.version_dir(NAME, target).is_dir():
            target = None  # pruned by hand: the shipped model is always there
        return self.store.update(NAME, "rolled_back", f"{state.active} rolled back to "
                                 f"{target or 'the shipped model ' + shipped_version()} ({reason})",
                                 version=state.active, status="rolled_back", active=target, previous=None,
                                 phase="idle", phase_since=None, stats={})

    # -- report ---------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        state = self.state()
        statuses = self.store.statuses(NAME)
        return {
            "model": NAME, "active": state.active or f"{shipped_version()} (shipped)",
            "shipped": shipped_version(), "previous": state.previous, "candidate": state.candidate,
            "phase": state.phase, "phase_since": state.phase_since, "stats": state.stats,
            "installed": {v: statuses.get(v, ("installed", None))[0] for v in self.store.installed(NAME)},
            "versions": {v: {"status": s, "reason": r} for v, (s, r) in sorted(statuses.items())},
            "source": self.source.describe() if self.source is not None else None,
            "trusted_keys": [key_id(k) for k in self.keys],
            "log": [{"time": line.time, "version": line.version, "step": line.step, "message": line.message}
                    for line in self.store.log_lines(NAME, 30)],
        }
