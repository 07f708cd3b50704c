"""The one error type of the model layer: what is wrong and at which field path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document: ``path`` is the dotted field path (``spec.hosts[2]``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ModelError(ValueError):
    """A document that does not fit its schema: one problem or several.

    ``path`` and ``message`` are those of the first problem; ``problems`` lists every problem
    found, so one run reports all that is wrong. ``where`` optionally names the document
    (``examples/demo.yaml#3 HTTPScaledObject default/app``).
    """

    def __init__(
        self, path: str, message: str, where: str = "", *, more: Sequence[Problem] = ()
    ) -> None:
        self.path = path
        self.message = message
        self.where = where
        self.problems = (Problem(path, message), *more)
        super().__init__("\n".join(self.lines()))

    @classmethod
    def of(cls, problems: Sequence[Problem], where: str = "") -> ModelError:
        """One error carrying every problem of ``problems`` (at least one)."""
        first, *rest = problems
        return cls(first.path, first.message, where, more=rest)

    def lines(self) -> list[str]:
        """Each problem on its own line, attributed to the document when ``where`` is set."""
        head = f"{self.where}: " if self.where else ""
        return [f"{head}{problem}" for problem in self.problems]

    def summary(self) -> str:
        """Every problem on one line (a status condition's message)."""
        return "; ".join(str(problem) for problem in self.problems)

    def located(self, where: str) -> ModelError:
        """The same problems, attributed to a document."""
        return ModelError.of(self.problems, where)
