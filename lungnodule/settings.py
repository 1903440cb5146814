"""Stage settings: frozen dataclasses whose fields carry their own help, with the conversions they share.

Each stage's config (`UnetConfig`, `MgiConfig`, `CTGANConfig`) is a frozen dataclass deriving from
:class:`Settings`; its fields are declared with :func:`setting`, which keeps the one-line help and the allowed
values beside the default. The stage scripts' flags, their `--help` and the docs' preset tables
(:mod:`lungnodule.preset_docs`) are made from that metadata, so a setting is described in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence


def setting(default: Any, help: str, choices: Sequence | None = None) -> Any:
    """A dataclass field with `default`, a one-line `help` and, optionally, the allowed `choices`."""
    return dataclasses.field(default=default, metadata={"help": help,
                                                        "choices": tuple(choices) if choices else None})


class Settings:
    """Shared behaviour of the stage configs (mixed into frozen dataclasses)."""

    def to_dict(self) -> dict:
        """The settings as a JSON-friendly dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict):
        """A config from a dict, ignoring unknown keys (e.g. a script namespace's `preset`, or a setting an
        older version wrote); lists become tuples where the field's default is a tuple."""
        kept = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                v = values[f.name]
                kept[f.name] = tuple(v) if isinstance(f.default, tuple) and isinstance(v, list) else v
        return cls(**kept)

    def replace(self, **changes):
        """A copy with some settings changed (validated as a new config)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls, name: str) -> tuple[str, tuple | None]:
        """(help, choices) of the setting `name` ("" and None for a field declared without :func:`setting`)."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.metadata.get("help", ""), f.metadata.get("choices")
        raise KeyError(name)
