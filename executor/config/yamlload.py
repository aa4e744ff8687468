"""Safe YAML loading that remembers where each value was written, for FILE:LINE errors.

PyYAML's safe loader gives plain values and forgets positions; composing the node tree first
keeps the marks. Aliases are expanded with a budget so a 'billion laughs' file cannot blow up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_CONFIG_BYTES = 256 * 1024
MAX_NODES = 50_000
# Deeper than any job config needs, and far from Python's recursion limit.
MAX_DEPTH = 64

Path = tuple[str | int, ...]


class YamlError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Document:
    """A parsed YAML document plus the line (1-based) at which each path was written."""

    value: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        # Fall back to the nearest written ancestor: a missing key is reported where its
        # parent mapping is.
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def load_yaml(text: str | bytes) -> Document:
    if isinstance(text, bytes):
        if len(text) > MAX_CONFIG_BYTES:
            raise YamlError(1, f"file is {len(text)} bytes; the limit is {MAX_CONFIG_BYTES}")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(1, f"file is not UTF-8 text ({exc.reason})") from None
    elif len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise YamlError(1, f"file is larger than the limit of {MAX_CONFIG_BYTES} bytes")

    try:
        loader = yaml.SafeLoader(text)  # the reader checks every character here
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(0, exc.position)) + 1
        raise YamlError(
            line,
            f"character U+{exc.character:04X} (a control character) is not allowed in YAML; remove it, "
            f"or write it as \\x{exc.character:02x} inside double quotes",
        ) from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _marked_error(exc) from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"invalid YAML: {exc}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively; the reader knows how far it got.
        raise YamlError(loader.line + 1, f"values nest more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
    doc = Document(value=None)
    if node is None:
        return doc
    builder = _Builder(loader, doc)
    doc.value = builder.build(node, ())
    return doc


# PyYAML's words for the usual mistakes, and what a person would say instead.
_PLAIN_WORDS = (
    (
        "expected <block end>, but found",
        "this line's indentation does not match the lines above it: indent it like its siblings "
        "(spaces, not tabs)",
    ),
    (
        "mapping values are not allowed here",
        "unexpected ':' here: check the indentation of this line, or quote a value that holds ': '",
    ),
    (
        "found character '\\t' that cannot start any token",
        "a tab where YAML needs spaces: indent with spaces",
    ),
)


def _marked_error(exc: yaml.MarkedYAMLError) -> YamlError:
    problem = exc.problem or exc.context or "cannot be parsed"
    line = exc.problem_mark.line + 1 if exc.problem_mark else 1
    for words, plain in _PLAIN_WORDS:
        if problem.startswith(words):
            return YamlError(line, f"invalid YAML: {plain}")
    if exc.context and exc.context_mark:
        start = exc.context_mark.line + 1
        if "end of stream" in problem or "<stream end>" in problem:
            # An unclosed quote or bracket: the file's end is not where to look.
            return YamlError(start, f"invalid YAML: {problem} {exc.context} that starts here")
        if start != line:
            problem = f"{problem} ({exc.context} from line {start})"
    return YamlError(line, f"invalid YAML: {problem}")


# Collections may carry only the default tags: `!!set`, `!!omap` and `!!python/...` are refused.
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, doc: Document) -> None:
        self._loader = loader
        self._doc = doc
        self._count = 0
        # Collections being built: an alias to one of them is a cycle (`a: &x [*x]`).
        self._open: set[int] = set()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._count += 1
        line = node.start_mark.line + 1
        if self._count > MAX_NODES:
            raise YamlError(line, f"document has more than {MAX_NODES} values")
        if len(path) > MAX_DEPTH:
            raise YamlError(line, f"values nest more than {MAX_DEPTH} levels deep")
        self._doc.lines.setdefault(path, line)
        if not isinstance(node, yaml.CollectionNode):
            return self._scalar(node)
        if node.tag not in _COLLECTION_TAGS:
            raise YamlError(line, f"invalid value: the tag {node.tag!r} is not supported")
        if id(node) in self._open:
            raise YamlError(line, "an alias refers to a value that contains it (a cycle)")
        self._open.add(id(node))
        try:
            return self._collection(node, path)
        finally:
            self._open.discard(id(node))

    def _collection(self, node: yaml.CollectionNode, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlError(line, "YAML merge keys (<<) are not supported; write the keys out")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlError(line, "mapping keys must be plain strings")
                key = str(self._loader.construct_object(key_node))
                if key in result:
                    raise YamlError(line, f"duplicate key {key!r}")
                self._doc.lines[(*path, key)] = line
                result[key] = self.build(value_node, (*path, key))
            return result
        return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise YamlError(node.start_mark.line + 1, f"invalid value: {exc.problem}") from None
