"""uploader: durable outbox, object stores (S3, local directory), retention. Knows nothing of video."""

from .local_store import LocalStore
from .store import ObjectInfo, ObjectStore, StoreError

__all__ = ["LocalStore", "ObjectInfo", "ObjectStore", "StoreError"]
