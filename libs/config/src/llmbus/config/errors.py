"""Configuration errors.

ConfigError            the file cannot be used; `problems` holds one line per problem
  └── ConfigProblem    (value object) file, key path, line, what was expected
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem", "did_you_mean"]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column or 1}"
        return f"{where}: {self.path or '<top>'}: {self.message}"


class ConfigError(ValueError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean `x`?` for the choice closest to `word`, or "" when none is close:
    a typo's fix, without guessing at a word that resembles nothing valid."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""
