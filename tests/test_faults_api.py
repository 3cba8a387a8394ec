"""Fault suite, hostile API input (issue 14, item 5). One hub served over real HTTP, its clips in S3 (moto) under
credentials made up for this module, every log record of the module captured (recording included):

* traversal, NUL bytes, absolute paths and very long ids in every path parameter of the OpenAPI schema and in the
  two file-serving mounts: all refused (4xx), no file's content and nothing of another owner in any reply;
* multi-MB bodies, declared or chunked, to every POST/PUT/PATCH/DELETE: 413 at once, the heap not growing with them;
* token and link-signature brute force: 429 once past the limit, also with a forged X-Forwarded-For; a good token
  still works from another address, and from the same address once the window has passed;
* no token (real or tried), link signature, install secret or S3 secret key in any log record or reply.

Generated requests (schemathesis, every role) are tests/test_api_fuzz.py's. Requests here go out byte for byte as
written (``http.client``, or a bare socket for what it refuses): httpx folds ``..`` and refuses a NUL.
"""

from __future__ import annotations

import base64
import http.client
import io
import itertools
import json
import logging
import os
import secrets
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx
import numpy as np
import pytest

from edge_media.api.docs import SWAGGER_UI
from edge_media.api.ui import STATIC_DIR
from edge_media.cli.logs import JsonFormatter
from edge_media.service.catalog import ClipCatalog

from api_hub import BAD_TOKEN, ServedHub, record_api_hub, served_hub
from s3_fixtures import empty_bucket

LIMIT = 10  # auth_failures_per_minute: the shipped default
WRITES = ("POST", "PUT", "PATCH", "DELETE")
CLIENT_LOGGERS = ("httpx", "httpcore")  # this test's own client, not the hub
HUB_LOGGERS = ("edge_media", "recorder", "uploader", "uvicorn", "fastapi", "starlette", "minio", "urllib3")
ROLES = ("owner_a", "viewer_a", "owner_b", "anonymous")
LINK_USER = {"owner_a": "alice", "viewer_a": "vic", "owner_b": "bob", "anonymous": "vic"}
OWN_CAMERA = {"owner_a": "kitchen", "viewer_a": "kitchen", "owner_b": "porch", "anonymous": "kitchen"}
OTHER = {"kitchen": "porch", "porch": "kitchen"}
CHUNK = 64 * 1024
HOUSEHOLD = "127.0.0.2"  # where the household's requests come from: 127.0.0.1 is the brute force's


@dataclass(frozen=True)
class Reply:
    status: int  # 0: the connection ended without a status line
    head: bytes
    body: bytes
    seconds: float


class LogTap(logging.Handler):
    """Every record, as the hub's JSON formatter writes it plus its raw fields (arguments, extras)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.names: set[str] = set()
        self.json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_LOGGERS):
            return
        self.names.add(record.name)
        self.lines.append(self.json.format(record) + " " + repr(record.__dict__))


@dataclass
class Hostile:
    api: ServedHub
    tap: LogTap
    access_key: str
    secret_key: str
    clips: dict[str, list[str]]  # camera -> every clip id
    canary: Path  # a file beside the hub's database: no reply may carry its text
    replies: list[bytes] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)  # tokens made up by the brute force
    sigs: list[str] = field(default_factory=list)  # link signatures sent in query strings, or in a reply
    _addresses: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.canary_text = self.canary.read_bytes().strip()
        self.secret_hex = self.api.service.ctx.secret.hex().encode()

    @property
    def port(self) -> int:
        return self.api.server.port

    def address(self) -> str:
        """A loopback address no request came from yet: the failure limiter counts per address."""
        n = next(self._addresses)
        return f"127.1.{n // 250}.{n % 250 + 1}"

    def token(self, role: str) -> dict[str, str]:
        return self.api.headers(role)

    def send(self, method: str, target: str, *, headers: dict[str, str] | None = None,
             body: bytes | Iterable[bytes] | None = None, address: str = HOUSEHOLD) -> Reply:
        reply = send(self.port, method, target, headers=headers, body=body, address=address)
        self.replies.append(reply.head + reply.body)
        return reply

    def sender(self, method: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
               fresh: bool = False) -> Callable[[str], Reply]:
        """``send`` bound to all but the target; ``fresh``: each request from a new address."""
        return lambda target: self.send(method, target, headers=headers, body=body,
                                        address=self.address() if fresh else HOUSEHOLD)

    def raw(self, request: bytes) -> Reply:
        reply = send_raw(self.port, request)
        self.replies.append(reply.head + reply.body)
        return reply


def send(port: int, method: str, target: str, *, headers: dict[str, str] | None = None,
         body: bytes | Iterable[bytes] | None = None, address: str = "127.0.0.1") -> Reply:
    """One request on a fresh connection from ``address``; an iterable body without Content-Length goes chunked."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(address, 0))
    started = time.monotonic()
    try:
        try:
            conn.request(method, target, body=body, headers=headers or {})
        except OSError:
            pass  # the server answered and stopped reading: its answer may still be there
        try:
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            return Reply(0, b"", b"", time.monotonic() - started)
        head = f"HTTP/1.1 {r.status} {r.reason}\r\n{r.headers}".encode()
        return Reply(r.status, head, data, time.monotonic() - started)
    finally:
        conn.close()


def send_raw(port: int, request: bytes) -> Reply:
    """Bytes ``http.client`` will not send (a NUL, CR LF in the target, a 1 MiB request line)."""
    started = time.monotonic()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(HOUSEHOLD, 0)) as s:
        try:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # answered and closed before the end of the request: read what it said
        try:
            while chunk := s.recv(65536):
                data += chunk
        except OSError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return Reply(status, head, body, time.monotonic() - started)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, s3_server) -> Iterator[Hostile]:
    folder = tmp_path_factory.mktemp("hostile")
    if s3_server.external:
        access, secret = s3_server.access_key, s3_server.secret_key
    else:  # moto takes any key: these exist only in this run, so a find in a log can only be this hub's doing
        access, secret = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    bucket = f"hostile-{secrets.token_hex(4)}"
    storage = (f'[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "{s3_server.endpoint}"\nbucket = "{bucket}"\n'
               f"secure = {str(s3_server.secure).lower()}\n")
    tap, root = LogTap(), logging.getLogger()
    root.addHandler(tap)
    # The hub at its most talkative, on its own loggers: pytest resets the root logger's level around each phase.
    levels = {name: logging.getLogger(name).level for name in HUB_LOGGERS}
    for name in HUB_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("EDGE_MEDIA_S3_ACCESS_KEY", access)
            env.setenv("EDGE_MEDIA_S3_SECRET_KEY", secret)
            hub, media = record_api_hub(folder / "rec", storage=storage)
            with served_hub(hub, folder / "served", media, storage=storage) as api:
                canary = api.hub.data / "canary.txt"
                canary.write_text(f"canary {secrets.token_hex(16)}\n")
                clips: dict[str, list[str]] = {}
                for c in ClipCatalog(api.service.ctx).list_clips():
                    clips.setdefault(str(c.camera), []).append(c.clip_id)
                yield Hostile(api, tap, access, secret, clips, canary)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        root.removeHandler(tap)
        empty_bucket(s3_server, bucket)


def schema_routes(h: Hostile) -> list[tuple[str, str, dict]]:
    schema = httpx.get(f"{h.api.url}/api/v1/openapi.json").json()
    return [(m.upper(), p, op) for p, ops in schema["paths"].items() for m, op in ops.items()]


# -- traversal and long ids -------------------------------------------------------------------------------------


def segments(own: str, foreign: str, canary: Path, root: Path, rng_combos: int) -> dict[str, str]:
    """name -> a path segment exactly as it goes on the wire."""
    enc = lambda text: quote(text, safe="")  # noqa: E731
    relative = os.path.relpath(canary, root)
    out = {
        "..": "..", "../ raw": "../../../../../../etc/passwd", "..%2f": "..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f": "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%2e%2e/ raw": "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "double-encoded": "%252e%252e%252f%252e%252e%252fetc%252fpasswd", "backslash": "..%5c..%5cwin.ini",
        "overlong utf-8": "%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc%c0%afpasswd", "absolute": enc("/etc/passwd"),
        "absolute raw": "/etc/passwd", "canary absolute": enc(str(canary)), "canary relative": enc(relative),
        "canary relative raw": relative, "file url": enc(f"file://{canary}"), "NUL": "%00",
        "own NUL": f"{enc(own)}%00", "own NUL ext": f"{enc(own)}%00.mp4", "own/../foreign": f"{own}/../{foreign}",
        "own%2f..%2fforeign": f"{enc(own)}%2f..%2f{enc(foreign)}", "own%2f": f"{enc(own)}%2f",
        "own dot": f"{enc(own)}.", "own space": f"{enc(own)}%20", "own swapcase": enc(own.swapcase()),
        "bad escape": "%zz%", "long 4 KiB": "x" * 4096, "long 60 KiB": "y" * 60_000,
        "foreign": enc(foreign),
    }
    vocabulary = ["..", "%2e%2e", "%252e", "%2f", "/", "%5c", "%00", "%c0%af", ".", "etc", "passwd", enc(own),
                  enc(foreign), enc(str(canary)), "~", "%ff"]
    rng = np.random.default_rng(14)
    for i in range(rng_combos):
        out[f"combination {i}"] = "".join(rng.choice(vocabulary, size=int(rng.integers(2, 9))))
    return out


@dataclass
class TraversalTally:
    sent: int = 0
    refused: int = 0
    redirects: int = 0  # "<id>/": starlette's redirect to the path without its slash (followed, judged again)
    inside: int = 0  # a file mount serving one of its own files (e.g. "index.html%2f": the page itself)
    own: int = 0  # a redirect's target that is the caller's own camera or clip, undecorated
    server_errors: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    file_content: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


FILE_MARKS = [b"root:x:0:", b"SQLite format 3", b"data_dir", b"ftyp"]  # /etc/passwd, the database, config, a clip


def foreign_of(h: Hostile, role: str) -> set[str]:
    """What ``role`` must never read: the other owner's camera, owner id and clips."""
    a = {"kitchen", "alice", *h.clips["kitchen"]}
    b = {"porch", "bob", *h.clips["porch"]}
    return {"owner_a": b, "viewer_a": b, "owner_b": a, "anonymous": a | b}[role]


def check(h: Hostile, tally: TraversalTally, role: str, what: str, target: str, reply: Reply,
          mount_files: set[bytes] = frozenset(), resend: Callable[[str], Reply] | None = None) -> None:
    """Judge one reply; a redirect to this hub is followed once (``resend``) and its target judged the same way:
    refused, or (say "kitchen%2f" -> "kitchen") the caller's own resource, undecorated."""
    tally.sent += 1
    label = f"{role} {what}: {target[:80]} -> {reply.status}"
    location = here(reply, h.port) if 300 <= reply.status < 400 and resend is not None else None
    if reply.status >= 500 or reply.status == 0:
        tally.server_errors.append(label)
    elif 400 <= reply.status < 500:
        tally.refused += 1
    elif location is not None and resend is not None:
        tally.redirects += 1
        check(h, tally, role, f"{what} (redirected)", location, resend(location), mount_files)
    elif reply.status == 200 and reply.body in mount_files:
        tally.inside += 1
    elif reply.status == 200 and what.endswith("(redirected)") and target in own_resources(h, role):
        tally.own += 1
    else:
        tally.accepted.append(label)
    found = [c for c in [*FILE_MARKS, h.canary_text, h.secret_hex] if c in reply.body]
    if found:
        tally.file_content.append(f"{label} carries {found}")
    sent = unquote(unquote(target))
    leaked = [n for n in foreign_of(h, role) if n.encode() in reply.body and n not in sent]  # not an echo
    if leaked:
        tally.foreign.append(f"{label} names {leaked}")


def own_resources(h: Hostile, role: str) -> set[str]:
    clips = h.clips[OWN_CAMERA[role]]
    return {f"/api/v1/cameras/{OWN_CAMERA[role]}", *(f"/api/v1/clips/{c}" for c in clips)}


def here(reply: Reply, port: int) -> str | None:
    """The target a redirect names, if it stays on this hub (anything else would be an open redirect)."""
    location = http.client.parse_headers(io.BytesIO(reply.head.split(b"\r\n", 1)[1] + b"\r\n\r\n"))["location"]
    there = urlsplit(location or "")
    if not there.path or (there.netloc and there.netloc != f"127.0.0.1:{port}"):
        return None
    return there.path + (f"?{there.query}" if there.query else "")


def files_in(root: Path) -> set[bytes]:
    return {f.read_bytes() for f in root.rglob("*") if f.is_file()}


def values(h: Hostile, camera: str) -> dict[str, str]:
    """Path parameter -> the value naming ``camera``'s resources."""
    return {"clip_id": h.clips[camera][0], "name": camera, "purpose": "misdetection-feedback"}


def fill(path: str, param: str, segment: str, role: str, h: Hostile) -> str:
    """``path`` with ``param`` set to ``segment`` and every other parameter naming the role's own resources."""
    url = path
    for name, value in values(h, OWN_CAMERA[role]).items():
        url = url.replace("{" + name + "}", segment if name == param else value)
    return url


BODIES = {"/api/v1/clips/{clip_id}/flags": b'{"kind": "missed", "label": "glass_break"}',
          "/api/v1/consent/{purpose}/grant": b'{"notice_version": 1}', "/api/v1/erase": b'{"confirm": "ERASE"}'}


@pytest.mark.faults
def test_traversal_nul_and_long_ids_in_every_path_parameter_are_refused(hostile, figures):
    h = hostile
    tally = TraversalTally()
    routes = [(m, p) for m, p, _ in schema_routes(h) if "{" in p]
    params = sorted({p.split("{")[1].split("}")[0] for _, p in routes})
    assert params == ["clip_id", "name", "purpose"], f"a new path parameter: give it own/foreign values: {params}"
    combos = 120 if figures.long else 6
    # Short: the roles that own something or read across owners; a request without a token stops at 401 anyway.
    for role in ROLES if figures.long else ROLES[:3]:
        headers = {**h.token(role), "Content-Type": "application/json"}
        for method, path in routes:
            param = path.split("{")[1].split("}")[0]
            own = values(h, OWN_CAMERA[role])[param]
            other = values(h, OTHER[OWN_CAMERA[role]])[param] if param != "purpose" else "nothing"
            for what, seg in segments(own, other, h.canary, STATIC_DIR, combos).items():
                target = fill(path, param, seg, role, h)
                if path == "/api/v1/media/{clip_id}":  # signed for the hostile id: past the signature, to the lookup
                    exp = int(time.time()) + 300
                    sig = h.api.state.links.sign(unquote(seg), LINK_USER[role], exp)
                    h.sigs.append(sig)
                    target += f"?u={LINK_USER[role]}&exp={exp}&sig={sig}"
                    resend = h.sender(method, fresh=True)  # each failure from an address of its own
                else:
                    resend = h.sender(method, headers=headers, body=BODIES.get(path))
                check(h, tally, role, f"{method} {path} [{what}]", target, resend(target), resend=resend)
        for mount, root in (("/ui/", STATIC_DIR), ("/docs/assets/", Path(str(SWAGGER_UI)))):
            inside = files_in(root)
            for what, seg in segments("index.html", os.path.relpath(h.canary, root), h.canary, root, combos).items():
                get = h.sender("GET", headers=h.token(role))
                check(h, tally, role, f"GET {mount} [{what}]", mount + seg, get(mount + seg), inside, get)
    token = h.token("owner_a")["Authorization"].encode()
    for method, path in routes:  # what http.client refuses to send: a raw NUL, CR LF in the target, 1 MiB ids
        param = path.split("{")[1].split("}")[0]
        for what, seg in (("raw NUL", "a\x00../x"), ("CR LF", "a\r\nX-Injected: 1\r\n"), ("1 MiB id", "z" * (1 << 20))):
            target = fill(path, param, seg, "owner_a", h)
            request = f"{method} {target} HTTP/1.1\r\nHost: hub\r\n".encode("latin-1") + b"Authorization: " + \
                token + b"\r\nContent-Length: 0\r\n\r\n"
            check(h, tally, "owner_a", f"{method} {path} [{what}]", target, h.raw(request))
    figures.add("traversal / NUL / long-id requests (path parameters x payloads x roles, and the file mounts)", "-",
                tally.sent, True)
    figures.add("of them refused with 4xx", "all but the next three", tally.refused, not tally.accepted)
    figures.add("answered by a redirect on this hub (starlette's trailing slash; followed, and counted again)", "-",
                tally.redirects, True)
    figures.add("a file mount's own file (/ui/index.html%2f: the page itself)", "-", tally.inside, True)
    figures.add("a followed redirect reaching the caller's own camera or clip (kitchen%2f -> kitchen)", "-",
                tally.own, True)
    figures.add("anything else served", "0", len(tally.accepted), not tally.accepted)
    figures.add("responses >= 500 (or no status line)", "0", len(tally.server_errors), not tally.server_errors)
    figures.add("file contents in a reply (canary, /etc/passwd, database, install secret, config, clip)", "0",
                len(tally.file_content), not tally.file_content)
    figures.add("cross-camera / cross-owner reads through decorated ids", "0", len(tally.foreign), not tally.foreign)
    assert not tally.server_errors, tally.server_errors[:5]
    assert not tally.accepted, "\n".join(tally.accepted[:10])
    assert not tally.file_content, tally.file_content[:5]
    assert not tally.foreign, tally.foreign[:5]


# -- oversized bodies -------------------------------------------------------------------------------------------


def json_body(size: int) -> Iterator[bytes]:
    """A JSON flag ``size`` bytes long in 64 KiB chunks, never held whole: its label is megabytes of 'a'."""
    head, tail = b'{"kind": "missed", "label": "', b'"}'
    left = size - len(head) - len(tail)
    yield head
    while left > 0:
        yield b"a" * min(CHUNK, left)
        left -= CHUNK
    yield tail


@pytest.mark.faults
def test_oversized_bodies_get_413_quickly_and_the_heap_stays_flat(hostile, figures):
    h = hostile
    size = (64 if figures.long else 8) << 20
    roles = ROLES if figures.long else ("owner_a", "anonymous")
    writes = [(m, p, op) for m, p, op in schema_routes(h) if m in WRITES]
    assert len(writes) >= 7
    statuses, slow, growth = [], 0.0, 0
    tracemalloc.start()
    try:
        for role in roles:
            for method, path, _ in writes:
                target = fill(path, "", "", role, h)
                for chunked in (False, True):
                    headers = {**h.token(role), "Content-Type": "application/json"}
                    if not chunked:
                        headers["Content-Length"] = str(size)
                    tracemalloc.reset_peak()
                    base = tracemalloc.get_traced_memory()[0]
                    reply = h.send(method, target, headers=headers, body=json_body(size))
                    growth = max(growth, tracemalloc.get_traced_memory()[1] - base)
                    statuses.append((role, method, path, chunked, reply.status))
                    slow = max(slow, reply.seconds)
    finally:
        tracemalloc.stop()
    # Under the cap but hostile: deeply nested and very wide JSON to the routes that read a body.
    shaped = {"nested": b"[" * 60_000, "wide": json.dumps({f"k{i}": i for i in range(5000)}).encode()}
    shaped_status = []
    for method, path, op in writes:
        if "requestBody" in op:
            for body in shaped.values():
                headers = {**h.token("owner_a"), "Content-Type": "application/json"}
                shaped_status.append(h.send(method, fill(path, "", "", "owner_a", h), headers=headers,
                                            body=body).status)
    refused = sum(s[-1] == 413 for s in statuses)
    mib = size >> 20
    figures.add(f"{mib} MiB JSON bodies (declared and chunked) to every write route x {len(roles)} roles", "-",
                len(statuses), True)
    figures.add("of them refused with 413", "all", refused, refused == len(statuses))
    figures.add("slowest refusal (client-timed, whole upload)", "< 5 s", f"{slow:.2f} s", slow < 5)
    figures.add(f"largest Python heap growth during one {mib} MiB request (tracemalloc)", "< 2 MiB",
                f"{growth / 2**20:.2f} MiB", growth < 2 << 20)
    figures.add("nested / wide JSON under the cap: responses >= 500", "0", sum(s >= 500 for s in shaped_status),
                all(400 <= s < 500 for s in shaped_status))
    assert refused == len(statuses), [s for s in statuses if s[-1] != 413][:5]
    assert slow < 5 and growth < 2 << 20
    assert all(400 <= s < 500 for s in shaped_status), shaped_status


# -- brute force ------------------------------------------------------------------------------------------------


def guesses(h: Hostile, address: str, count: int, *, forge: bool = False) -> list[int]:
    """``count`` made-up tokens from ``address``; with ``forge``, each names another client in X-Forwarded-For."""
    out = []
    for i in range(count):
        token = secrets.token_urlsafe(32)
        h.tried.append(token)
        headers = {"Authorization": f"Bearer {token}"}
        if forge:
            headers["X-Forwarded-For"] = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        out.append(h.send("GET", "/api/v1/me", headers=headers, address=address).status)
    return out


def until_429(statuses: list[int]) -> int | None:
    return statuses.index(429) + 1 if 429 in statuses else None


@pytest.mark.faults
def test_token_brute_force_meets_the_limit_and_good_tokens_still_work(hostile, figures, monkeypatch):
    h = hostile
    count = 1000 if figures.long else 60
    attacker, forger, neighbour, linker = h.address(), h.address(), h.address(), h.address()
    plain = guesses(h, attacker, count)
    forged = guesses(h, forger, count, forge=True)
    loopback = guesses(h, "127.0.0.1", count, forge=True)  # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told
    clip = h.clips["kitchen"][0]
    h.sigs.extend(secrets.token_hex(32) for _ in range(count))
    sigs = [h.send("GET", f"/api/v1/media/{clip}?u=vic&exp={int(time.time()) + 300}&sig={sig}",
                   address=linker).status for sig in h.sigs[-count:]]
    during = h.send("GET", "/api/v1/me", headers=h.token("viewer_a"), address=neighbour).status
    blocked = h.send("GET", "/api/v1/me", headers=h.token("viewer_a"), address=attacker)
    later = time.monotonic() + 61  # the window has passed for every address
    monkeypatch.setattr(h.api.state.limiter, "clock", lambda: later)
    after = h.send("GET", "/api/v1/me", headers=h.token("viewer_a"), address=attacker).status
    fresh = guesses(h, attacker, 1)
    for address in (forger, "127.0.0.1", linker):  # looked at after the window: forgotten (nothing blocked later)
        assert not h.api.state.limiter.blocked(address)
    for name, statuses in (("made-up tokens", plain), ("made-up tokens, forged X-Forwarded-For", forged),
                           ("made-up tokens from 127.0.0.1, forged X-Forwarded-For", loopback),
                           ("made-up link signatures", sigs)):
        first = until_429(statuses)
        figures.add(f"{name}: attempts until the first 429 (of {count})", f"{LIMIT + 1}", first, first == LIMIT + 1)
    accepted = sum(s == 200 for s in plain + forged + loopback + sigs)
    figures.add("made-up tokens or signatures accepted", "0", accepted, accepted == 0)
    figures.add("a good token from another address during the block", "200", during, during == 200)
    figures.add("a good token from the blocked address, after the 60 s window", "200", after, after == 200)
    for statuses in (plain, forged, loopback):
        assert statuses == [401] * LIMIT + [429] * (count - LIMIT)
    assert sigs == [403] * LIMIT + [429] * (count - LIMIT)
    assert during == 200 and after == 200 and fresh == [401]
    assert blocked.status == 429 and b"retry-after" in blocked.head.lower()  # as designed: the address waits


# -- secrets ----------------------------------------------------------------------------------------------------


def found(secret: str, text: str) -> bool:
    """The secret, or its first or last 12 characters (a log line that cuts a token short still leaks it)."""
    return any(part in text for part in (secret, secret[:12], secret[-12:]))


@pytest.mark.faults
def test_no_token_link_signature_or_s3_secret_in_any_log_record_or_reply(hostile, figures, s3_server):
    """Runs last: the log tap holds the whole module's records by then (this test adds the error paths)."""
    h = hostile
    real = dict(h.api.tokens)
    near = [real["owner_a"] + "x", real["owner_a"][:-1], real["owner_b"].upper()]
    for token in near + [BAD_TOKEN, real["revoked"]]:
        h.send("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, address=h.address())
    basic = base64.b64encode(f"alice:{real['owner_a']}".encode()).decode()
    for headers, target in (({"Authorization": f"Basic {basic}"}, "/api/v1/me"),
                            ({"Cookie": f"token={real['owner_a']}"}, "/api/v1/me"),
                            ({}, f"/api/v1/me?access_token={real['owner_a']}&token={real['viewer_a']}"),
                            ({"Authorization": f"Bearer {real['owner_a']} {real['owner_b']}"}, "/api/v1/me")):
        h.send("GET", target, headers=headers, address=h.address())
    owner = {**h.token("owner_a"), "Content-Type": "application/json"}
    clip = h.clips["kitchen"][0]
    link = json.loads(h.send("POST", f"/api/v1/clips/{clip}/link", headers=owner).body)["url"]
    h.sigs.append(httpx.URL(link).params["X-Amz-Signature"])
    notice = json.loads(h.send("GET", "/api/v1/consent/notice?purpose=misdetection-feedback", headers=owner).body)
    h.send("POST", "/api/v1/consent/misdetection-feedback/grant", headers=owner,
           body=json.dumps({"notice_version": notice["version"]}).encode())
    assert h.send("POST", f"/api/v1/clips/{clip}/flags", headers=owner,
                  body=b'{"kind": "missed", "label": "glass_break"}').status == 201  # the clip is read from S3
    assert h.send("GET", "/api/v1/export", headers=owner).status == 200
    # The store loses the clip behind the hub's back: the error paths (and what they log) run too.
    record = ClipCatalog(h.api.service.ctx).get(clip)
    assert record is not None and record.key is not None
    s3_server.client().remove_object(h.api.service.ctx.store.bucket, record.key)
    export = h.send("GET", "/api/v1/export", headers=owner).status  # lists the store: warns of the missing clip
    flag = h.send("POST", f"/api/v1/clips/{clip}/flags", headers=owner,
                  body=b'{"kind": "missed", "label": "dog_bark"}').status
    assert (export, flag) == (200, 503)  # the flag needs the clip's audio: the store's failure, said as such
    tokens = [*real.values(), BAD_TOKEN, *near, *h.tried]
    secret = h.api.service.ctx.secret.hex()
    logs = "\n".join(h.tap.lines)
    in_logs = [n for n in [*tokens, h.secret_key, h.access_key, secret, *h.sigs] if found(n, logs)]
    replies = b"\n".join(h.replies).decode("latin-1")
    # A presigned S3 link names the access key by design (X-Amz-Credential); never the secret key.
    in_replies = [n for n in [*tokens, h.secret_key, secret] if found(n, replies)]
    figures.add("log records captured over the module (recording, every hostile request, store errors)", "-",
                len(h.tap.lines), True)
    figures.add("replies checked", "-", len(h.replies), True)
    figures.add("secrets searched for (tokens real and tried, link signatures sent or issued, S3 keys, install "
                "secret)", "-",
                len(tokens) + len(h.sigs) + 3, True)
    figures.add("secrets found in logs", "0", len(in_logs), not in_logs)
    figures.add("secrets found in replies", "0", len(in_replies), not in_replies)
    assert {"edge_media.api.access", "edge_media.api.app"} <= h.tap.names, "the hub's own logs were captured"
    assert not in_logs, [n[:8] + "..." for n in in_logs]
    assert not in_replies, [n[:8] + "..." for n in in_replies]
