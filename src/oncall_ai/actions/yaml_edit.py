"""Change one scalar in a YAML file with the smallest possible textual edit.

Pins and index files are edited by people; their comments, key order, quoting and layout carry
meaning. A load -> modify -> dump round trip would lose all of that, so instead we find the value's
exact span with PyYAML's composer (node start/end marks) and replace only those characters, in
the quoting style the value already had. The result is then parsed again and compared with the
original: anything other than that one key changing is refused.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from oncall_ai.errors import DataError


@dataclass(frozen=True)
class ScalarEdit:
    new_text: str
    old_value: Any
    new_value: Any
    line: int  # 1-based line of the edited value


def load(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"{where}:{mark.line + 1}" if mark else where
        raise DataError(f"{loc}: invalid YAML: {getattr(e, 'problem', None) or e}") from None


def get_path(data: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` (a tuple of mapping keys), or KeyError."""
    cur = data
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            raise KeyError(key)
        cur = cur[key]
    return cur


def replace_scalar(text: str, path: tuple[str, ...], value: Any, *, where: str) -> ScalarEdit:
    """`text` with the scalar at `path` set to `value` (str, int, float or bool), edited in place.
    Raises DataError naming `where` when the value cannot be edited safely."""
    import yaml

    data = load(text, where)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:  # pragma: no cover - load() above already parsed it
        raise DataError(f"{where}: invalid YAML: {e}") from None
    dotted = ".".join(path)
    node = root
    for depth, key in enumerate(path):
        if not isinstance(node, yaml.MappingNode):
            at = ".".join(path[:depth]) or "the top level"
            raise DataError(f"{where}: {at} is not a mapping, so it has no key {key!r}")
        matches = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
        if not matches:
            known = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
            raise DataError(f"{where}: no key {'.'.join(path[:depth + 1])!r}"
                            + (f" (keys here: {', '.join(map(str, known[:20]))})" if known else ""))
        if len(matches) > 1:
            raise DataError(f"{where}: key {'.'.join(path[:depth + 1])!r} appears {len(matches)} times; fix the file first")
        node = matches[0]
    if not isinstance(node, yaml.ScalarNode):
        raise DataError(f"{where}: {dotted} is a {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}, "
                        "not a single value; edit it by hand")
    if node.style not in (None, "'", '"'):
        raise DataError(f"{where}: {dotted} is a block scalar ({node.style}); edit it by hand")
    start, end = node.start_mark, node.end_mark
    if start.line != end.line:
        raise DataError(f"{where}:{start.line + 1}: {dotted} spans several lines; edit it by hand")
    if end.index <= start.index or (node.style is None and node.value == "" and start.index == end.index):
        raise DataError(f"{where}:{start.line + 1}: {dotted} has an empty value; edit it by hand")
    old_value = get_path(data, path)

    expected = copy.deepcopy(data)
    parent = get_path(expected, path[:-1]) if len(path) > 1 else expected
    parent[path[-1]] = value
    for rendered in _renderings(value, node.style):
        new_text = text[:start.index] + rendered + text[end.index:]
        try:
            reparsed = load(new_text, where)
        except DataError:
            continue
        if _same(reparsed, expected):
            return ScalarEdit(new_text, old_value, value, start.line + 1)
    raise DataError(f"{where}:{start.line + 1}: could not write {value!r} into {dotted} without changing "
                    "anything else (anchors, aliases or unusual syntax?); edit it by hand")


def _renderings(value: Any, style: str | None):
    """Candidate spellings of `value`, the old value's quoting style first."""
    import yaml

    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            yield json.dumps(value, ensure_ascii=False)
            return
        single = "'" + value.replace("'", "''") + "'"
        double = json.dumps(value, ensure_ascii=False)
        order = {"'": (single, double), '"': (double, single)}.get(style, (value, double, single))
        yield from order
        return
    plain = yaml.safe_dump(value, default_flow_style=True).splitlines()[0]
    yield plain


def _same(a: Any, b: Any) -> bool:
    """Deep equality that also tells 1 from 1.0 and True from 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def coerce_cli_value(text: str, current: Any) -> Any:
    """A value typed on the command line, as the type the key has now: `--to 41` stays the number
    41 for `version: 40`, and `--to 2024-08-06` stays a string for a string pin."""
    import yaml

    if isinstance(current, str) or current is None:
        return text
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if type(parsed) is type(current):
        return parsed
    if isinstance(current, float) and type(parsed) is int:
        return float(parsed)
    return text


def scalar_text(value: Any) -> str:
    """How a value is shown in plans and messages."""
    if isinstance(value, str):
        return value
    return json.dumps(value)
