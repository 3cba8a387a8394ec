"""The feedback sender: one pass moves consented samples from the feedback outbox to the partner store.

Per item: claim it and re-check consent in ONE transaction (:meth:`FeedbackQueue.claim`); upload the FLAC and
its JSON under their sample-id keys (stat before put, so a retry after a crash uploads nothing twice); then,
once the pass's items are up, write the pass's manifest (``manifests/<batch uuid>.jsonl``, one line per sample
in the audiofolder convention) and mark each sent with its disclosure row in one transaction. Retractions owed
by withdrawals are written first, so that a store that was down gets them as soon as it is back.

A crash after an upload and before its commit leaves the item inflight; start-up makes it pending again and
the next pass finds its objects already there and lists it in that pass's manifest. A sample can then appear in
two manifests (the loader keys on sample_id), never twice in the bucket.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from uploader import ObjectStore, StoreError
from uploader.store import NO_SUCH_KEY

from .feedback import FeedbackQueue, Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassResult:
    sent: int = 0
    dropped: int = 0  # consent no longer held when claimed: deleted, never sent
    failed: int = 0  # the partner store refused: retried next pass
    retractions: int = 0  # retraction objects written
    sent_bytes: int = 0

    def describe(self) -> str:
        return (f"sent {self.sent} sample(s) ({self.sent_bytes} bytes), dropped {self.dropped} (consent no longer "
                f"given), failed {self.failed} (retried later), wrote {self.retractions} retraction(s)")


class FeedbackSender:
    def __init__(self, queue: FeedbackQueue, store: ObjectStore) -> None:
        self.queue, self.store = queue, store

    def send_pass(self, *, limit: int = 100) -> PassResult:
        retractions = self.write_retractions()
        self._purge()
        uploaded: list[tuple[Item, str]] = []
        dropped = failed = 0
        tried: set[str] = set()  # failed in this pass: released as the oldest pending, so not claimed again here
        for _ in range(limit):
            claimed = self.queue.claim(skip=tried)
            if claimed is None:
                break
            item, consent_id = claimed
            if consent_id is None:
                if item.attempts:
                    self._purge()
                else:
                    self.queue.discard(item.sample_id)
                dropped += 1
                continue
            try:
                self._upload(item)
            except (StoreError, OSError) as exc:
                log.warning("feedback sample %s not sent: %s", item.sample_id, exc)
                self.queue.release(item.sample_id, str(exc))
                failed += 1
                if isinstance(exc, StoreError):
                    break  # the partner store fails: the next pass tries again (not `limit` times in this one)
                tried.add(item.sample_id)
                continue
            uploaded.append((item, consent_id))
        if uploaded and not self._manifest(uploaded):
            for item, _ in uploaded:
                self.queue.release(item.sample_id, "manifest not written")
            return PassResult(0, dropped, failed + len(uploaded), retractions)
        late = 0
        for item, consent_id in uploaded:
            late += self.queue.mark_sent(item, consent_id)
            self.queue.discard(item.sample_id)
        if late:  # withdrawn while uploading: retract at once
            retractions += self.write_retractions()
        return PassResult(len(uploaded), dropped, failed, retractions, sum(i.bytes for i, _ in uploaded))

    def write_retractions(self) -> int:
        written = 0
        for r in self.queue.owed_retractions():
            try:
                self.store.put_bytes(r.key, r.body(), content_type="application/json")
            except StoreError as exc:
                log.warning("retraction %s not written yet (%s); retried next pass", r.retraction_id, exc)
                break
            self.queue.retraction_written(r.retraction_id)
            written += 1
        return written

    def _purge(self) -> None:
        for item in self.queue.purges():
            try:
                self._remove(item)
            except StoreError as exc:
                log.warning("withdrawn sample %s not removed yet (%s); retried next pass", item.sample_id, exc)
                return
            self.queue.forget(item.sample_id)

    def _remove(self, item: Item) -> None:
        failures = self.store.remove_objects([item.flac_key, item.json_key])
        if failures:
            raise failures[0]

    def _upload(self, item: Item) -> None:
        flac, meta = self.queue.files(item.sample_id)
        for key, path, kind in ((item.flac_key, flac, "audio/flac"), (item.json_key, meta, "application/json")):
            if self._present(key, path.stat().st_size):
                continue  # put by a pass that crashed before its commit
            self.store.put_object(key, path, content_type=kind)

    def _present(self, key: str, size: int) -> bool:
        try:
            return self.store.stat_object(key).size == size
        except StoreError as exc:
            if exc.code == NO_SUCH_KEY:
                return False
            raise

    def _manifest(self, uploaded: list[tuple[Item, str]]) -> bool:
        lines = []
        for item, _ in uploaded:
            meta = json.loads(self.queue.files(item.sample_id)[1].read_bytes())
            lines.append(json.dumps({"file_name": item.flac_key, **meta}, sort_keys=True))
        try:
            self.store.put_bytes(f"manifests/{uuid.uuid4()}.jsonl", ("\n".join(lines) + "\n").encode(),
                                 content_type="application/x-ndjson")  # fmt: skip
        except StoreError as exc:
            log.warning("feedback manifest not written (%s); the pass's samples are retried", exc)
            return False
        return True
