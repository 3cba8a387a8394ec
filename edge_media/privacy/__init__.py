"""Owner rights over recordings (export, erasure, restriction); consent comes with feedback."""

from .restrictions import Restriction, Restrictions
from .rights import EraseReport, ExportReport, OwnerRights, OwnerScope

__all__ = ["EraseReport", "ExportReport", "OwnerRights", "OwnerScope", "Restriction", "Restrictions"]
