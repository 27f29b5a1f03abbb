"""Header resolution: is the first record a header, and where is each spec column in a record.

Column names are matched by name (case-insensitive, quotes stripped, aliases allowed, any
order, extra columns where the spec allows them; the canonical name wins over an alias).
A wrong, ambiguous or missing header is refused with :class:`InputFormatError`, with a
hint when the file looks separated by another character; a missing column's message names
the other names accepted for it. :func:`peek_header` reads the names of a file's first line,
for adapters that choose between two published layouts of one file name.
"""

from __future__ import annotations

from musicrec.ingest.fields import split_record
from musicrec.ingest.inputs import InputFile, InputFormatError, InputPolicy
from musicrec.ingest.lines import iter_line_blocks
from musicrec.ingest.spec import ReaderStats, TableSpec, other_separator


def _norm_name(s: str) -> str:
    return s.strip().strip('"').strip().lower()


ABSENT = -1  # the position of an optional column the file does not have (its values are null)


def resolve_header(first: str, line_no: int, spec: TableSpec, name: str,
                   stats: ReaderStats) -> tuple[list[int], bool, int]:
    """Decide whether the first record is a header.

    Returns ``(positions, consumed, width)``: the index of each spec column in a
    record (:data:`ABSENT` for an optional column the file does not have), whether
    the first record was a header (and so is not data), and the number of fields a
    record must have.
    """
    fields = split_record(first, spec) or [first]
    normed = [_norm_name(f) for f in fields]
    known = {n for c in spec.columns for n in spec.names_for(c)}
    headerish = [n for n in normed if n in known and n != ""]
    n_req = len(spec.required_columns)
    default = [*range(n_req), *([ABSENT] * len(spec.optional_columns))]  # a headerless file: required columns only
    if spec.header == "none":
        if headerish:
            stats.header = "unexpected"
            return default, False, n_req  # reported as unexpected_header by the caller
        stats.header = "absent"
        return default, False, n_req
    if not headerish:
        if len(fields) == 1 and len(spec.columns) > 1:
            other = other_separator(spec, first)
            hint = f" (it looks {other}-separated)" if other else ""
            raise InputFormatError(
                f"{name}: line {line_no}: expected a {spec.layout()} header with columns "
                f"{','.join(spec.columns)}; found {first[:200]!r}{hint}"
            )
        if spec.header == "required" and not any(ch.isdigit() for ch in first):
            raise InputFormatError(
                f"{name}: line {line_no}: header has unknown columns; expected a {spec.layout()} header with "
                f"columns {','.join(spec.columns)}; found {first[:300]!r}"
            )
        stats.header = "missing" if spec.header == "required" else "absent"
        return default, False, n_req
    positions = []
    missing = []
    ambiguous = []
    shadowed = []
    for col in spec.columns:
        canonical, *aliases = spec.names_for(col)
        exact = [i for i, n in enumerate(normed) if n == canonical]
        alias = [i for i, n in enumerate(normed) if n in aliases]
        if len(exact) > 1 or (not exact and len(alias) > 1):
            found = exact if exact else alias
            ambiguous.append(f"{col} is given by {len(found)} columns "
                             f"({', '.join(f'{fields[i].strip()!r} (column {i + 1})' for i in found)})")
        elif exact:
            positions.append(exact[0])  # the canonical name wins wherever an alias stands
            shadowed += [(i, col) for i in alias]
        elif alias:
            positions.append(alias[0])
        elif col in spec.optional_columns:
            positions.append(ABSENT)
        else:
            missing.append(col)
    if ambiguous or (shadowed and not spec.extra_columns):
        what = "; ".join(ambiguous + [f"{col} is given both by its own column and by {fields[i].strip()!r} "
                                      f"(column {i + 1}, an alias of {col})" for i, col in shadowed])
        raise InputFormatError(
            f"{name}: line {line_no}: header is ambiguous: {what}; expected one column per field of "
            f"{','.join(spec.columns)}. Remove or rename the duplicate column"
        )
    n_present = sum(p != ABSENT for p in positions)
    if missing or (not spec.extra_columns and len(fields) != n_present):
        other = other_separator(spec, first)
        hint = f" (it looks {other}-separated)" if other and len(fields) == 1 else ""
        what = f"missing column(s) {', '.join(missing)}" if missing else f"{len(fields)} columns instead of {len(spec.columns)}"
        accepted = [f"{col} may also be named {', '.join(spec.aliases[col])}" for col in missing if spec.aliases.get(col)]
        what += f" ({'; '.join(accepted)})" if accepted else ""
        raise InputFormatError(
            f"{name}: line {line_no}: header has {what}; expected a {spec.layout()} header with columns "
            f"{','.join(spec.columns)}{' (extra columns allowed)' if spec.extra_columns else ''}; found "
            f"{','.join(fields)[:300]!r}{hint}"
        )
    stats.header = "present"
    stats.header_notes = [f"{name}: line {line_no}: column {i + 1} {fields[i].strip()!r} (an alias of {col}) is "
                          f"ignored as an extra column: the file also has the column {col}, which is used"
                          for i, col in shadowed]
    return positions, True, len(fields)


def peek_header(inp: InputFile, spec: TableSpec, policy: InputPolicy) -> list[str]:
    """The column names (normalised: stripped, unquoted, lower-case) of the first non-blank line of
    ``inp``, split as ``spec`` says; ``[]`` for a file with no such line. Only the first block is read
    when the first line is in it."""
    fh = inp.open(policy)
    try:
        for _, text, _ in iter_line_blocks(fh, inp.name, spec.encoding, ReaderStats(), policy.max_line_bytes):
            for line in text.split("\n"):
                if line.strip():
                    return [_norm_name(f) for f in (split_record(line, spec) or [line])]
    finally:
        fh.close()
    return []
