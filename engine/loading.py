"""Loading workflows: text to data, and data to a :class:`~engine.definition.Workflow`.

Theory of operation
-------------------
Reading is lenient. Only text that cannot be parsed at all, or whose root is not a
mapping, raises :class:`~engine.contracts.errors.WorkflowLoadError`. Everything else
that is wrong *inside* the structure (an edge without a target, a block entry that is
not a mapping, a block without ``type``) is kept as a
:class:`~engine.contracts.errors.Diagnostic` in ``Workflow.load_diagnostics``, and
reading carries on, so that validation can report every problem at once.

The format is chosen by content (:func:`read_any`): the declarative form
(engine.declarative) or Retab graph JSON (engine.graph_json).

PyYAML and ``json`` silently keep the last of two equal mapping keys, which would hide a
block id written twice; both parsers here record duplicate keys and report them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contracts.bounded import json_problem, paired_json
from engine.contracts.errors import WorkflowLoadError
from engine.declarative import read_declarative
from engine.graph_json import read_graph
from engine.load_fields import Duplicate
from engine.yaml_budget import MAX_YAML_DEPTH, YamlBudgetExceeded, compose_within_budget

if TYPE_CHECKING:
    import yaml

    from engine.definition import Workflow


@cache
def _duplicate_key_loader() -> type[yaml.SafeLoader]:
    """The SafeLoader subclass that records mapping keys written twice (before YAML drops
    one). Built on first use: PyYAML is imported by YAML documents only, never for JSON."""
    import yaml

    class DuplicateKeyLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.duplicates: list[Duplicate] = []

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False
                              ) -> dict[Any, Any]:
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or \
                        key_node.tag.endswith(":merge"):
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    self.duplicates.append((key_node.value, key_node.start_mark.line + 1))
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return DuplicateKeyLoader


#: A ``\\u`` escape of a UTF-16 surrogate: YAML reads ``"\\ud83e\\uddfe"`` (JSON's spelling
#: of an emoji) as two lone surrogates, which no UTF-8 text can hold.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _joined(data: Any, text: str) -> Any:
    """``data`` with split characters joined (lone surrogates become U+FFFD), when
    ``text`` escapes a surrogate at all (:func:`~engine.contracts.bounded.paired_json`)."""
    return paired_json(data) if _SURROGATE_ESCAPE.search(text) else data


def parse_yaml(text: str, source: str) -> tuple[Any, list[Duplicate]]:
    """Parse YAML text, recording duplicate keys.

    Aliases are expanded under a budget (:mod:`engine.yaml_budget`): a document that would
    expand past it is refused before any data is built.

    Raises:
        WorkflowLoadError: the text is not valid YAML (the message names the line), or
            it expands past the budget.
    """
    import yaml

    loader: Any = None
    try:
        loader = _duplicate_key_loader()(text)  # a control character fails right here
        node = compose_within_budget(loader, text)  # before anything is built from it
        data = loader.construct_document(node) if node is not None else None
    except YamlBudgetExceeded as exc:
        deep = "deeper" in exc.problem
        raise WorkflowLoadError(
            source, f"the YAML is too {'deep' if deep else 'large'} to load: {exc.problem}",
            f"Nest it at most {MAX_YAML_DEPTH} levels deep." if deep else
            "Write the repeated parts out, or split the workflow; a workflow of hundreds "
            "of blocks stays far below the limit.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WorkflowLoadError(
            source, f"invalid YAML{where}: {problem}",
            "Fix the YAML syntax there (check indentation and quoting), then load it again.",
        ) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return _joined(data, text), loader.duplicates


def parse_json(text: str, source: str) -> tuple[Any, list[Duplicate]]:
    """Parse JSON text, recording duplicate keys.

    Raises:
        WorkflowLoadError: the text is not valid JSON (the message names the line).
    """
    duplicates: list[Duplicate] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append((key, None))
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise WorkflowLoadError(
            source, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            "Fix the JSON syntax there, then load it again.",
        ) from exc
    except RecursionError:
        data = None
    problem = json_problem(data, max_depth=MAX_YAML_DEPTH) if data is not None else \
        f"nested deeper than {MAX_YAML_DEPTH} levels"
    if problem is not None:
        raise WorkflowLoadError(source, f"the JSON cannot be loaded: {problem}",
                                "Write plain JSON (finite numbers, reasonable nesting).")
    return _joined(data, text), duplicates


def require_mapping(data: Any, source: str) -> Mapping[str, Any]:
    """``data`` if it is a mapping.

    Raises:
        WorkflowLoadError: the document root is not a mapping.
    """
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise WorkflowLoadError(
            source, f"the document root is {kind}, not a mapping",
            "A workflow starts with `apiVersion:`, `kind:`, `metadata:` and `spec:` keys "
            "(or, for graph JSON, a `blocks` list).",
        )
    return data


def read_any(data: Any, source: str, duplicates: list[Duplicate] | None = None) -> Workflow:
    """Pick the format by content: declarative (``spec``/``apiVersion``) or graph (``blocks``).

    Raises:
        WorkflowLoadError: the root is not a mapping, or is neither format.
    """
    root = require_mapping(data, source)
    if "spec" in root:
        return read_declarative(root, source, duplicates)
    if isinstance(root.get("blocks"), list):
        return read_graph(root, source)
    if "apiVersion" in root:
        return read_declarative(root, source, duplicates)
    raise WorkflowLoadError(
        source, "it is neither a declarative workflow (no `apiVersion`/`spec`) nor graph "
        "JSON (no top-level `blocks` list)",
        "Start the file with `apiVersion: workflows.retab.com/v1alpha2`, `kind: Workflow`, "
        "`metadata:` and `spec:`.",
    )


def load_path(path: str | Path) -> Workflow:
    """Read a workflow file (YAML or JSON; declarative or graph).

    Raises:
        WorkflowLoadError: the file cannot be read or parsed, or is not a workflow.
    """
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise WorkflowLoadError(source, "the file does not exist",
                                "Check the path (it is relative to the current "
                                "directory).") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowLoadError(source, f"the file cannot be read ({exc})",
                                "Check that it is a readable UTF-8 text file.") from exc
    if file.suffix.lower() == ".json" or (
            file.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("{")):
        data, duplicates = parse_json(text, source)
    else:
        data, duplicates = parse_yaml(text, source)
    return read_any(data, source, duplicates)
