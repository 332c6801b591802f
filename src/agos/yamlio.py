"""The one YAML reader of every file agos reads (designs, organisations, energy and area tables,
sweep specs): safe (no Python tags), and strict where PyYAML is lenient — a key given twice is
refused instead of the last one winning silently, and whatever cannot be read (a syntax error, a
5000-digit number, a document nested too deeply) is one line naming the file."""

from __future__ import annotations

import re

import yaml
from yaml.constructor import ConstructorError

from agos.errors import AgosError

MAX_DEPTH = 64  # nesting of mappings and lists; agos's own files use 4


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads YAML 1.2 floats (`1e3`, which YAML 1.1
    leaves a string) as numbers."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: the base class says so
                    break
                if duplicate:
                    raise ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"key '{key}' is given twice (line {seen[key] + 1} and line "
                        f"{key_node.start_mark.line + 1}); give it once",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _depth(node, limit: int) -> int:
    """Nesting depth of a composed node, iteratively (deep input must not exhaust the stack)."""
    deepest = 0
    stack = [(node, 1)]
    seen: set[int] = set()
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if id(current) in seen:  # an alias: counted once
            continue
        seen.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in current.value for child in pair)
    return deepest


def load_yaml(text: str, where: str):
    """The YAML document in `text`; every problem is one AgosError line naming `where`."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _depth(node, MAX_DEPTH) > MAX_DEPTH:
            raise AgosError(f"{where}: nested more than {MAX_DEPTH} levels deep; not an agos file")
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise AgosError(f"{where}: not valid YAML{at}: {' '.join(str(problem).split())}") from None
    except RecursionError:
        raise AgosError(f"{where}: nested too deeply to read; not an agos file") from None
    except ValueError as exc:  # a number Python refuses to convert (more than 4300 digits)
        raise AgosError(f"{where}: a value cannot be read ({exc.args[0].split(';')[0]})") from None
    finally:
        loader.dispose()
