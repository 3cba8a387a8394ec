"""Build the configured object store: the local directory (embedded default) or S3.

S3 credentials come from exactly one place, so an operator always knows which one is in use:

* ``[storage.s3] credentials_file`` when it is set. The file holds ``KEY=VALUE`` lines (the same lines are
  valid TOML when the values are quoted, and a valid systemd ``EnvironmentFile``)::

      # /etc/edge-media/s3.credentials  (chmod 600)
      access_key = "AKIA..."
      secret_key = "..."

  Blank lines and ``#`` comments are ignored; values may be wrapped in single or double quotes; any other
  name is an error (a typo should not silently drop a key).
* otherwise the environment variables named by ``access_key_env`` / ``secret_key_env``
  (``EDGE_MEDIA_S3_ACCESS_KEY`` / ``EDGE_MEDIA_S3_SECRET_KEY`` by default).

Error messages name the variables, the file and the line, never a value.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from uploader import LocalStore, ObjectStore
from uploader.s3_store import MIB, S3Store

from ..config import Config, S3Config
from ..errors import EXIT_USAGE, EdgeMediaError

log = logging.getLogger(__name__)

_FILE_KEYS = ("access_key", "secret_key")


class StorageConfigError(EdgeMediaError):
    """The storage section cannot be turned into a store (e.g. missing credentials). ``str()`` is the
    operator's message and never contains a secret."""

    exit_code = EXIT_USAGE


def build_store(config: Config) -> ObjectStore:
    """The object store ``config.storage`` describes. No network I/O happens here: the S3 bucket is checked
    (and created, if allowed) on the store's first use."""
    storage = config.storage
    if storage.backend == "local":
        return LocalStore(config.store_path)
    s3 = storage.s3
    if s3 is None:  # the config model already forbids this; kept for type checkers and hand-built configs
        raise StorageConfigError("backend = 's3' needs a [storage.s3] table")
    access_key, secret_key = resolve_credentials(s3)
    return S3Store(
        endpoint=s3.endpoint,
        access_key=access_key,
        secret_key=secret_key,
        bucket=s3.bucket,
        region=s3.region,
        secure=s3.use_tls,
        part_size=s3.part_size_mb * MIB,
        create_bucket=s3.create_bucket,
    )


def resolve_credentials(s3: S3Config, *, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(access_key, secret_key) from ``credentials_file`` if set, else from the named env vars."""
    if s3.credentials_file is not None:
        return _read_credentials_file(Path(s3.credentials_file))
    env = os.environ if environ is None else environ
    access_key, secret_key = env.get(s3.access_key_env, ""), env.get(s3.secret_key_env, "")
    missing = [name for name, value in ((s3.access_key_env, access_key), (s3.secret_key_env, secret_key)) if not value]
    if missing:
        raise StorageConfigError(
            f"S3 credentials missing: set the environment variable(s) {', '.join(missing)}, "
            "or set [storage.s3] credentials_file"
        )
    return access_key, secret_key


def _read_credentials_file(path: Path) -> tuple[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise StorageConfigError(f"cannot read S3 credentials_file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise StorageConfigError(f"S3 credentials_file {path} is not UTF-8 text") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Not fatal (a container may mount it 0644), but the operator should know.
        log.warning("S3 credentials_file %s is readable by group/others; chmod 600 it", path)
    values = _parse_key_values(text, path)
    missing = [name for name in _FILE_KEYS if not values.get(name)]
    if missing:
        raise StorageConfigError(f"S3 credentials_file {path} lacks {' and '.join(missing)}")
    return values["access_key"], values["secret_key"]


def _parse_key_values(text: str, path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip().lower(), value.strip()
        # Only the line number goes into errors: a malformed line may well be a pasted secret.
        if not sep:
            raise StorageConfigError(f"S3 credentials_file {path} line {number}: expected name = value")
        if name not in _FILE_KEYS:
            raise StorageConfigError(
                f"S3 credentials_file {path} line {number}: unknown name (expected access_key or secret_key)"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values
