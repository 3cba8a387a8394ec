"""edge-media configuration: one TOML file validated by one pydantic model per concern.

``load_config(path)`` is the entry point; it raises ``ConfigError`` whose ``str()`` is the operator's message.
"""

from .api import ApiConfig
from .audio import AudioConfig, MicrophoneConfig
from .camera import CameraConfig
from .events import EventsConfig
from .loader import ConfigError, dump_example, load_config, parse_config
from .recording import RecordingConfig
from .root import Config, OwnerConfig
from .service import ServiceConfig
from .storage import S3Config, StorageConfig

__all__ = [
    "ApiConfig",
    "AudioConfig",
    "MicrophoneConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "EventsConfig",
    "OwnerConfig",
    "RecordingConfig",
    "S3Config",
    "ServiceConfig",
    "StorageConfig",
    "dump_example",
    "load_config",
    "parse_config",
]
