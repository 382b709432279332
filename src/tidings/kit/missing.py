"""The 404 of a lookup by id in the caller's environment, with one sentence frame."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.errors import NotFound


@dataclass(frozen=True, slots=True)
class Missing:
    """The 404 for a `kind` of thing missing from the caller's environment, as a function of
    the missing id: it names the id (quoted) and ends with `hint`, how to find or make one."""

    kind: str
    hint: str
    code: str
    field: str | None = None

    def __call__(self, identifier: str | int) -> NotFound:
        return NotFound(
            f"No {self.kind} {identifier!r} in this environment. {self.hint}",
            code=self.code,
            field=self.field,
        )
