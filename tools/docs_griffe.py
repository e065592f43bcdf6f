"""A griffe extension (mkdocs.yml, mkdocstrings `extensions:`) for the API reference.

The package's docstrings hold doctest examples (`>>>` lines and their output,
run by tests/test_doctests.py) as plain text after "Example:". In Markdown a
`>` starts a block quote, so each doctest session is fenced as a `pycon` code
block before mkdocstrings renders the docstring.
"""

import griffe


def fence_doctests(text):
    """`text` with every doctest session wrapped in a ```pycon fence.

    Example:

    >>> fence_doctests("Example:\\n\\n>>> 1 + 1\\n2\\n\\nText.").splitlines()
    ['Example:', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'Text.']
    """
    out, session, in_fence = [], [], False
    for line in [*text.splitlines(), ""]:
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if not in_fence and (stripped.startswith(">>>") or (session and stripped)):
            session.append(line)
            continue
        if session:
            indent = session[0][: len(session[0]) - len(session[0].lstrip())]
            out += [f"{indent}```pycon", *session, f"{indent}```"]
            session = []
        out.append(line)
    return "\n".join(out[:-1])


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
