"""Strict YAML for table specs: a parsed document plus the line of every field.

:func:`load_yaml_document` reads a file and returns a :class:`YamlDocument`: the data (plain
dicts, lists and scalars, as ``yaml.safe_load`` gives), the 1-based line of every field path
(``columns[2].name``, the same paths :mod:`pipeline_sql.spec` reports) and, per path, the text
of every unquoted scalar that YAML 1.1 read as a boolean or a null (``no``, ``on``, ``yes``,
``off``, ``~``), so that a refusal of such a value can say "quote it". It refuses, with a
:class:`YamlProblem` naming the line:

* bytes that are not UTF-8 (with the byte's offset and line, not a ``UnicodeDecodeError``);
* characters YAML does not accept (control characters) and YAML syntax errors;
* a key written twice in one mapping (YAML's last-one-wins hides the first);
* a document that refers to itself through an alias, documents of more than
  :data:`MAX_NODES` nodes (aliases expanded) and nesting deeper than :data:`MAX_DEPTH`.

libyaml's C parser is used when available (``CSafeLoader``); the document is composed into nodes
(which carry their marks), checked, then constructed by PyYAML's safe constructor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Nodes (aliases counted each time they are used) a spec document may hold.
MAX_NODES = 200_000
#: How deeply mappings and sequences may nest (a spec needs 5; PyYAML's composer and
#: constructor recurse, and thousands of levels overflow the stack, in C as well).
MAX_DEPTH = 64
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class YamlProblem(ValueError):
    """The file is not a usable YAML document: ``line`` (1-based, or None) and what is wrong."""

    def __init__(self, line: int | None, message: str, field: str | None = None):
        self.line = line
        self.field = field
        self.message = message
        super().__init__(message)


@dataclass
class YamlDocument:
    data: Any
    #: field path -> 1-based line of its value
    lines: dict[str, int] = field(default_factory=dict)
    #: field path -> the unquoted text YAML 1.1 read as a boolean or null (``no``, ``~``)
    implicit: dict[str, str] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest enclosing field that has one."""
        p = path
        while p:
            if p in self.lines:
                return self.lines[p]
            cut = max(p.rfind("."), p.rfind("["))
            if cut <= 0:
                break
            p = p[:cut]
        return self.lines.get(p)


def join_path(path: str, key: Any) -> str:
    """The field path of ``key`` under ``path`` (``columns[0]`` + ``name``; ``key`` + ``[0]``)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def decode_utf8(raw: bytes) -> str:
    """Decode UTF-8 (a leading byte-order mark is dropped); YamlProblem names the bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise YamlProblem(
            line,
            f"byte 0x{raw[e.start]:02x} at offset {e.start} (line {line}, column {column}) is not UTF-8; "
            "expected a UTF-8 text file (save it as UTF-8)",
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def load_yaml_document(path: str | Path) -> YamlDocument:
    """Read ``path`` (OSError propagates) and parse it strictly."""
    return parse_yaml(decode_utf8(Path(path).read_bytes()))


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document strictly (see the module docstring)."""
    _check_depth(text)
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            raise _problem(e, text) from None
        doc = YamlDocument(None)
        if node is None:
            return doc
        _walk(node, "", doc, set(), [0], loader)
        try:
            doc.data = loader.construct_document(node)
        except yaml.YAMLError as e:
            raise _problem(e, text) from None
        except (ValueError, TypeError, OverflowError) as e:  # a scalar PyYAML cannot build
            raise YamlProblem(None, f"is not valid YAML: {e}") from None
        return doc
    finally:
        loader.dispose()


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` from the event stream (the parser does not
    recurse), before anything recursive reads the document."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1
                    raise YamlProblem(line, f"nests mappings and lists more than {MAX_DEPTH} levels deep; expected a table spec")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as e:
        raise _problem(e, text) from None


def _problem(e: yaml.YAMLError, text: str) -> YamlProblem:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None:
        return YamlProblem(mark.line + 1, f"is not valid YAML: {getattr(e, 'problem', None) or e}")
    if isinstance(e, yaml.reader.ReaderError):
        # a character YAML does not allow (control characters): its position in the text
        line = text.count("\n", 0, e.position) + 1
        return YamlProblem(line, f"is not valid YAML: character {e.character!r} at line {line} is not allowed in YAML; expected printable text")
    return YamlProblem(None, f"is not valid YAML: {e}")


def _walk(node: yaml.Node, path: str, doc: YamlDocument, stack: set[int], count: list[int], loader) -> None:
    count[0] += 1
    if len(stack) > MAX_DEPTH:  # aliases can nest deeper than the text does
        raise YamlProblem(node.start_mark.line + 1, f"nests mappings and lists more than {MAX_DEPTH} levels deep (aliases expanded); expected a table spec")
    if count[0] > MAX_NODES:
        raise YamlProblem(node.start_mark.line + 1, f"holds more than {MAX_NODES} values (aliases expanded); expected a table spec")
    if id(node) in stack:
        raise YamlProblem(node.start_mark.line + 1, "an alias refers to the value that contains it; expected a finite document", path or None)
    if path and path not in doc.lines:
        doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _TIMESTAMP_TAG:
            _timestamp(node, path, loader)
        if not node.style and node.tag in (_BOOL_TAG, _NULL_TAG) and node.value:  # plain: None, or '' from libyaml
            doc.implicit[path] = node.value
        return
    stack.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                _walk(item, join_path(path, i), doc, stack, count, loader)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    _walk(value_node, path, doc, stack, count, loader)
                    continue
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.tag == _TIMESTAMP_TAG:
                        _timestamp(key_node, path, loader)
                    try:
                        key = loader.construct_object(key_node, deep=True)
                    except yaml.YAMLError as e:
                        raise _problem(e, "") from None
                else:
                    key = None  # PyYAML refuses unhashable keys when it constructs the mapping
                line = key_node.start_mark.line + 1
                sub = join_path(path, key)
                if key is not None:
                    try:
                        first = seen.get(key)
                    except TypeError:
                        first = None
                    if first is not None:
                        raise YamlProblem(
                            line,
                            f"{key!r} is written twice in this mapping (first at line {first}); expected each key once "
                            "(YAML would keep only the last one)",
                            sub,
                        )
                    seen[key] = line
                    if not key_node.style and key_node.tag in (_BOOL_TAG, _NULL_TAG):
                        doc.implicit[sub] = key_node.value
                doc.lines.setdefault(sub, value_node.start_mark.line + 1 if value_node.start_mark.line == key_node.start_mark.line else line)
                _walk(value_node, sub, doc, stack, count, loader)
    finally:
        stack.discard(id(node))


def _timestamp(node: yaml.ScalarNode, path: str, loader) -> None:
    """An unquoted date or time must be a real one (PyYAML fails on 2024-13-45 with a bare
    ValueError)."""
    try:
        loader.construct_object(node)
    except (ValueError, OverflowError) as e:
        raise YamlProblem(
            node.start_mark.line + 1,
            f"{node.value!r} is read by YAML as a date or time, but is not a valid one ({e}); "
            "expected a valid date (YYYY-MM-DD) or time, or text in quotes",
            path or None,
        ) from None


def implicit_hint(text: str) -> str:
    """What to say about an unquoted ``text`` YAML 1.1 read as a boolean or null."""
    as_what = "null" if text.lower() in ("~", "null") else "a boolean"
    return f"YAML reads the unquoted {text} as {as_what}; write it in quotes ('{text}') if you mean the text"
