"""Reading a params file: the YAML loader for hostile input and the ParamsError messages.

A params file is read as UTF-8 of at most :data:`MAX_FILE_BYTES`, by a YAML loader
(a strict ``yaml.SafeLoader`` subclass) that refuses anchors/aliases (no alias bombs),
explicit tags, merge keys, duplicate keys at any depth and nesting deeper than
:data:`MAX_DEPTH`, and reads scalars as YAML 1.2 (as DVC does). Every problem is one
:class:`ParamsError` naming the file and the line/column or the key; validation errors
are listed at most :data:`MAX_ERRORS` keys at a time, each value cut to
:data:`MAX_VALUE_CHARS` characters. :func:`read_params_file` returns the parsed document;
the sections that validate it are in :mod:`musicrec.config`. Only ``yaml`` and ``pydantic``
are imported, so every stage can load it cheaply.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from musicrec.errors import UserError

MAX_FILE_BYTES = 64 * 1024  # the committed params.yaml is about 4 KiB; loading 64 KiB takes well under a second
MAX_DEPTH = 16  # nesting levels (params.yaml has 4)
MAX_ERRORS = 10  # keys listed in one ParamsError, then "... and N more"
MAX_VALUE_CHARS = 80  # an offending value is shown cut to this many characters


class ParamsError(UserError, ValueError):
    """Invalid params file; the message names the file and each bad key."""


# --------------------------------------------------------------------------- error messages

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 6, 6, 4, 6
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = MAX_VALUE_CHARS
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w-]*\Z")


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shorten(value: Any) -> str:
    """``repr(value)`` in at most :data:`MAX_VALUE_CHARS` characters, in bounded time for any value."""
    try:
        return _cut(_REPR.repr(value))
    except ValueError:  # an int of more than sys.get_int_max_str_digits() digits
        return f"<{type(value).__name__} too large to print>"


def _key(loc: Iterable[Any]) -> str:
    """``train.als.factors``: a plain key as it is, a list index as a number, any other key quoted and cut."""
    parts = [p if isinstance(p, str) and _PLAIN_KEY.match(p) else str(p) if type(p) is int else shorten(p)
             for p in loc]
    return _cut(".".join(parts) or "(top level)")


def describe_validation_errors(err: ValidationError, prefix: str = "") -> list[str]:
    """One ``key: what was expected (got value)`` line per error, at most :data:`MAX_ERRORS` then ``... and N more``.

    ``prefix`` (``"train.als"``) is put before every key. Values are cut to
    :data:`MAX_VALUE_CHARS` characters, so a huge value never floods the terminal.
    """
    errors = err.errors(include_url=False)
    lines = []
    for e in errors[:MAX_ERRORS]:
        key = _key(e["loc"]) if not prefix else f"{prefix}.{_key(e['loc'])}" if e["loc"] else prefix
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        elif e["type"] == "missing":
            msg = "missing required key"
        elif e["type"] == "invalid_key":
            msg = "keys must be names (text)"
        elif e["type"] == "int_type" and isinstance(e.get("input"), str):
            msg += ": decimal digits without quotes or leading zeros"
        elif e["type"] == "float_type" and isinstance(e.get("input"), str):
            msg += " without quotes"
        # a model validator that names one of its fields ("data.raw_root '/etc' is ...") reports under that key
        named = re.match(rf"^({re.escape(key)}\.[A-Za-z_][\w.]*) (.*)$", msg, re.S)
        if named:
            key, msg = named.group(1), named.group(2)
        msg = _cut(" ".join(msg.split()), 4 * MAX_VALUE_CHARS)
        got = e.get("input")
        suffix = "" if e["type"] in ("missing", "invalid_key") or isinstance(got, dict) else f" (got {shorten(got)})"
        lines.append(f"{key}: {msg}{suffix}")
    if len(errors) > MAX_ERRORS:
        lines.append(f"... and {len(errors) - MAX_ERRORS} more")
    return lines


def format_validation_errors(path: Path, err: ValidationError) -> str:
    """The message of a :class:`ParamsError` for ``err``: ``<path>: invalid parameters:`` then one line per key."""
    return "\n".join([f"{path}: invalid parameters:", *(f"  {line}" for line in describe_validation_errors(err))])


# --------------------------------------------------------------------------- reading the file


class _Refused(yaml.MarkedYAMLError):
    """YAML a params file must not use (aliases, merge keys, duplicate keys, deep nesting)."""


# Plain scalars are resolved as YAML 1.2 (its core schema, as DVC reads params.yaml), not as PyYAML's YAML 1.1:
# only true/false are booleans, integers are decimal and 1e6 is a float. YAML 1.1's yes/no/on/off, 0x1F, 0b101,
# 1:30 (base 60) and 0777 (octal in 1.1, decimal in 1.2) stay text, which the strict types refuse naming the key.
_CORE_SCHEMA = (  # int before float: "10" is an int, "10.0" and "1e6" are floats
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9_]*)$", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*\.[0-9_]*)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
)


def _core_schema_resolvers() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers (null, timestamp, ...) with bool, int and float as in YAML 1.2."""
    tags = {tag for tag, _, _ in _CORE_SCHEMA}
    table = {first: [(tag, rx) for tag, rx in resolvers if tag not in tags]
             for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for tag, regexp, firsts in _CORE_SCHEMA:
        for first in firsts:
            table.setdefault(first, []).append((tag, re.compile(regexp)))
    return table


class _ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses, with the line and column, what a params file never needs.

    Anchors and aliases are refused while composing, so an alias bomb ("billion
    laughs") is stopped at its first anchor before anything is expanded; so are
    explicit tags (``!!int``, ``!!python/...``, ``!custom``); nesting
    is bounded by :data:`MAX_DEPTH`; merge keys (``<<``) and a key given twice in
    one mapping (YAML forbids it; DVC refuses such a file, PyYAML would keep the
    last copy) are refused with both lines. Scalars are read as YAML 1.2 (see
    :data:`_CORE_SCHEMA`).
    """

    yaml_implicit_resolvers = _core_schema_resolvers()

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._paths: dict[int, str] = {}  # id(mapping node) -> its dotted key, for messages

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="YAML anchors and aliases (&name, *name) are not allowed in a params file; "
                           "write each value out", problem_mark=event.start_mark)
        if getattr(event, "tag", None) not in (None, "!"):
            tag = shorten(event.tag.replace("tag:yaml.org,2002:", "!!", 1))
            raise _Refused(problem=f"explicit YAML tags ({tag}) are not allowed in a params file; write the plain "
                           "value", problem_mark=event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as err:  # e.g. a 5000-digit int
            raise _Refused(problem=f"cannot read the value {shorten(node.value)} "
                           f"({_cut(' '.join(str(err).split()), 100)})", problem_mark=node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        where = self._paths.get(id(node), "")
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(problem="YAML merge keys (<<) are not allowed in a params file; write the keys out",
                               problem_mark=key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader refuses it below
                continue
            name = f"{where}.{key}" if where else str(key)
            if first is not key_node:
                raise _Refused(problem=f"key {shorten(name)} is given twice, at line {first.start_mark.line + 1} "
                               f"and line {key_node.start_mark.line + 1}; keep one (DVC refuses such a file too)",
                               problem_mark=key_node.start_mark)
            if isinstance(value_node, yaml.MappingNode):
                self._paths[id(value_node)] = name
        return super().construct_mapping(node, deep=deep)


def _at(text: str, index: int) -> str:
    """``line L, column C`` of character ``index`` of ``text`` (both from 1)."""
    line, line_start = text.count("\n", 0, index) + 1, text.rfind("\n", 0, index) + 1
    return f"line {line}, column {index - line_start + 1}"


def _yaml_error(path: Path, text: str, err: yaml.YAMLError) -> str:
    """One line for a YAML error: the file, line and column, and what is wrong (no snippet of the file)."""
    if isinstance(err, yaml.reader.ReaderError):
        return (f"{path}: {_at(text, err.position)}: not valid YAML: the character U+{err.character:04X} is not "
                "allowed in YAML text")
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(err.problem or err.context or "").split())
        if err.context and err.problem and err.context_mark and err.context_mark is not mark:
            problem += f" ({err.context} at line {err.context_mark.line + 1}, column {err.context_mark.column + 1})"
        if "'\\t'" in problem:
            problem += "; indent with spaces, not tabs"
        kind = "refused" if isinstance(err, _Refused) else "not valid YAML"
        return f"{path}: {where}{kind}: {_cut(problem, 200)}"
    return f"{path}: not valid YAML: {shorten(' '.join(str(err).split()))}"


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (a leading byte-order mark is dropped), at most MAX_FILE_BYTES bytes."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a directory; expected a params YAML file") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot read the params file: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ParamsError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; a params file is a few KiB of YAML "
                          "(is this the right file?)")
    for bom, encoding in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                          (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if data.startswith(bom):
            raise ParamsError(f"{path}: is {encoding} text (it starts with a {encoding} byte-order mark); expected "
                              f"UTF-8: convert it, e.g. iconv -f {encoding} -t UTF-8")
    data = data.removeprefix(b"\xef\xbb\xbf")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ParamsError(f"{path}: {_at(data.decode('latin-1'), nul)}: contains a NUL byte; expected UTF-8 text "
                          "(is it UTF-16/UTF-32 without a byte-order mark, or a binary file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: {_at(data.decode('latin-1'), err.start)}: not UTF-8 text (byte "
                          f"0x{data[err.start]:02X} cannot be decoded; Latin-1 or another legacy encoding?); "
                          "expected UTF-8") from None


def read_params_file(path: Path | str) -> Any:
    """The parsed YAML document in ``path`` (not yet validated); every problem is a :class:`ParamsError`."""
    path = Path(path)
    text = _read_text(path)
    try:
        loader = _ParamsLoader(text)  # the reader checks every character here
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise ParamsError(_yaml_error(path, text, err)) from None
