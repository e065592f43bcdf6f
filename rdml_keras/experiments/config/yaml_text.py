"""Reading YAML safely: `yaml.safe_load` with a bound on the document's size
once its aliases are expanded.

YAML aliases let a few hundred bytes stand for billions of values (ten levels
of ten aliases: 10**10 list items, an "alias bomb"). PyYAML builds such a
document quickly, as shared Python objects, but whatever then walks it
(validation, a copy, an error message) never finishes. A config is a few
hundred values, so a document that expands to more than `MAX_NODES` YAML
nodes, or that refers to itself, is refused before it is built.

>>> load_yaml("epochs: 3\\npeers: [mlp, mlp]")
{'epochs': 3, 'peers': ['mlp', 'mlp']}
>>> load_yaml("a: &a [x, x]\\nb: [*a, *a]")
{'a': ['x', 'x'], 'b': [['x', 'x'], ['x', 'x']]}
>>> load_yaml("a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "\\n".join(
...     f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 10) + "]"
...     for i in range(1, 7)))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
yaml.constructor.ConstructorError: ... expands to more than 100000 values ...
"""

import yaml

# Far above any config (the largest shipped one has well under 100 nodes),
# far below what takes noticeable time or memory to walk.
MAX_NODES = 100_000


# Configs nest a few levels; PyYAML's recursive reader would hit Python's
# recursion limit (slowly) a few hundred levels down.
MAX_DEPTH = 50


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that bounds nesting while reading and measures each
    document before building it."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node):
        _check_size(node)
        return super().construct_document(node)


def load_yaml(stream):
    """`yaml.safe_load(stream)`, refusing (yaml.YAMLError) a document whose
    aliases expand to more than `MAX_NODES` nodes or refer to themselves, or
    that is nested more than `MAX_DEPTH` levels deep."""
    return yaml.load(stream, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader


def _children(node):
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _check_size(root):
    """Count the nodes of `root` with every alias expanded, without expanding
    them: each distinct node is visited once and its expanded size kept."""
    sizes, open_nodes = {}, set()

    def size(node):
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to the node that contains it", node.start_mark
            )
        open_nodes.add(key)
        total = 1
        for child in _children(node):
            total += size(child)
            if total > MAX_NODES:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the document expands to more than {MAX_NODES} values once its "
                    "aliases (*name) are expanded; a config needs far fewer",
                    node.start_mark,
                )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


def yaml_problem(error) -> str:
    """What a yaml.YAMLError says is wrong, in one line, without the excerpt
    of the document (which may be long).

    >>> yaml_problem(yaml.YAMLError("nested too deeply to read"))
    'nested too deeply to read'
    """
    problem = getattr(error, "problem", None)
    if problem:
        return f"{type(error).__name__}: {problem}"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
