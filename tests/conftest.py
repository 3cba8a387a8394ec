import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from uploader.db import Database

from media import make_source

pytest_plugins = ["s3_fixtures", "mqtt_fixtures", "webhook_fixtures", "fault_report"]


@pytest.fixture(scope="session")
def source(tmp_path_factory) -> Path:
    """A 10 s 640x360 15 fps H.264 + AAC file, keyframe every 2 s, object moving 2-4 s."""
    return make_source(tmp_path_factory.mktemp("media"))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh uploader database (outbox, index, audit) on disk."""
    database = Database(tmp_path / "state" / "uploader.db")
    yield database
    database.close()
