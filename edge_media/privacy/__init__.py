"""Owner rights over recordings (export, erasure, restriction); consent comes with feedback."""

from .rights import EraseReport, ExportReport, OwnerRights, OwnerScope

__all__ = ["EraseReport", "ExportReport", "OwnerRights", "OwnerScope"]
