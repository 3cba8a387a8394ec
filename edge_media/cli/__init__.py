"""Every ``edge-media`` command: parsing, one-line errors, exit codes. Commands call into the
service, tools, privacy and uploader packages; nothing else imports this package."""

from .main import main

__all__ = ["main"]
