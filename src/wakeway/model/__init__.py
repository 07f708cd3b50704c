"""Frozen dataclasses for our specs and the Gateway API subset, with parsers that validate.

Every parser raises :class:`ModelError` naming the offending field path, so a user sees
"spec.scaleTargetRef.port: must be an integer from 1 to 65535" rather than a traceback.
"""

from wakeway.model.errors import ModelError

__all__ = ["ModelError"]
