"""uploader: durable outbox, object stores (S3, local directory), retention. Knows nothing of video."""

from .local_store import LocalStore
from .s3_store import S3Store, is_permanent
from .store import ObjectInfo, ObjectStore, StoreError

__all__ = ["LocalStore", "ObjectInfo", "ObjectStore", "S3Store", "StoreError", "is_permanent"]
