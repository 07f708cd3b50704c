"""The one error type of the model layer: what is wrong and at which field path."""

from __future__ import annotations


class ModelError(ValueError):
    """A document that does not fit its schema.

    ``path`` is the dotted field path (``spec.hosts[2]``); ``where`` optionally names the
    document (``examples/demo.yaml#3 HTTPScaledObject default/app``).
    """

    def __init__(self, path: str, message: str, where: str = "") -> None:
        self.path = path
        self.message = message
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.where}: " if self.where else ""
        field = f"{self.path}: " if self.path else ""
        return f"{head}{field}{self.message}"

    def located(self, where: str) -> ModelError:
        """The same error, attributed to a document."""
        return ModelError(self.path, self.message, where)
