"""What a delimited file should look like (:class:`TableSpec`) and what the reader saw in it (:class:`ReaderStats`).

Each adapter declares one :class:`TableSpec` per published file: its columns, separator,
header rule, quoting, encoding, header aliases and free-text columns. The reader fills a
:class:`ReaderStats` per file (header found, BOM, encoding fallbacks, line count, control
characters replaced), which the clean reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

SEPARATOR_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", "<SEP>": "<SEP>", " ": "space"}

#: The header names of a play-count column, in every source whose header names it (generic
#: triplet tables, the MSD tutorial table): a spec's canonical name plus
#: :func:`play_count_aliases` of it. The one list; the header error names them.
PLAY_COUNT_NAMES = ("playcount", "play_count", "listen_count", "plays", "count")


def play_count_aliases(canonical: str) -> tuple[str, ...]:
    """The accepted play-count header names other than ``canonical`` (a spec's own name for the column)."""
    return tuple(n for n in PLAY_COUNT_NAMES if n != canonical)


def other_separator(spec: "TableSpec", text: str) -> str | None:
    """The name of another separator ``text`` holds (for the "it looks X-separated" hints), or None.

    A space is only suggested when no other separator is there: names and titles hold spaces.
    """
    other = [s for s in SEPARATOR_NAMES if s != spec.sep and s in text]
    return SEPARATOR_NAMES[other[0]] if other else None


@dataclass(frozen=True)
class TableSpec:
    """Expected layout of one delimited file.

    ``columns`` are the canonical names of the fields returned (in this order).
    ``header``: ``"required"`` (a header line is expected; tolerated if absent),
    ``"none"`` (no header; one is rejected as ``unexpected_header``) or
    ``"optional"`` (either, silently). ``aliases`` lists other accepted header
    names per column (compared lower-case, stripped). ``extra_columns`` allows
    header columns beyond ``columns`` (then ignored). ``optional_columns`` (the
    last of ``columns``) may be absent from a header, and are never in a headerless
    file: they are then null. ``text_columns``: the
    free-text columns (display text: titles, names, tags, genres), where a
    control character is replaced by U+FFFD; every other column is an identifier
    or a number, where one rejects the record (``control_character``).
    """

    columns: tuple[str, ...]
    sep: str
    header: Literal["required", "none", "optional"]
    quoting: bool = False
    encoding: Literal["utf-8", "latin-1"] = "utf-8"
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    extra_columns: bool = False
    text_columns: tuple[str, ...] = ()
    optional_columns: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.text_columns) - set(self.columns)
        if unknown:
            raise ValueError(f"text_columns {sorted(unknown)} are not columns of the spec {self.columns}")
        n_opt = len(self.optional_columns)
        if n_opt and tuple(self.columns[-n_opt:]) != tuple(self.optional_columns):
            raise ValueError(f"optional_columns {self.optional_columns} must be the last columns of {self.columns}")

    @property
    def required_columns(self) -> tuple[str, ...]:
        """The columns every file has (all but the optional ones)."""
        return self.columns[:len(self.columns) - len(self.optional_columns)]

    def names_for(self, column: str) -> tuple[str, ...]:
        return (column.lower(), *(a.lower() for a in self.aliases.get(column, ())))

    def layout(self) -> str:
        return SEPARATOR_NAMES.get(self.sep, repr(self.sep)) + "-separated"


@dataclass
class ReaderStats:
    """What the reader saw in one file (reported per file)."""

    header: str = "absent"  # present | missing (expected, absent) | absent (none expected) | unexpected
    bom: bool = False
    encoding_fallback_lines: int = 0
    trailing_newline: bool = True
    physical_lines: int = 0
    header_notes: list[str] = field(default_factory=list)  # e.g. an alias column ignored (reported if any)
    control_characters_replaced: int = 0  # by U+FFFD, in the free-text fields of the records passed on
    rows_with_control_characters_replaced: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "header": self.header,
            "bom": self.bom,
            "encoding_fallback_lines": self.encoding_fallback_lines,
            "trailing_newline": self.trailing_newline,
            "physical_lines": self.physical_lines,
            **self.control_dict(),
            **({"header_notes": list(self.header_notes)} if self.header_notes else {}),
        }

    def control_dict(self) -> dict[str, int]:
        """The control-character replacement counts (all an input that is not a text file reports)."""
        return {
            "control_characters_replaced": self.control_characters_replaced,
            "rows_with_control_characters_replaced": self.rows_with_control_characters_replaced,
        }
