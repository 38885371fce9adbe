"""engine.contracts.bounded and engine.yaml_budget: what callers may hand to stepwell."""

from __future__ import annotations

import time

import pytest
import yaml

from engine.contracts.bounded import (
    paired,
    paired_json,
    MAX_JSON_DEPTH,
    check_json,
    clean_mime,
    clean_text,
    json_problem,
    loads_json,
)
from engine.contracts.errors import InputError
from engine.yaml_budget import YamlBudgetExceeded, check_expansion


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": [value]} if depth % 2 else [value]
    return value


def test_depth_cap() -> None:
    ok: object = 1
    for _ in range(MAX_JSON_DEPTH):
        ok = [ok]
    check_json(ok)
    with pytest.raises(InputError, match="deeper than 64"):
        check_json([ok])
    with pytest.raises(InputError, match="deeper than 64"):
        check_json(nested(100_000))  # iterative: no RecursionError


@pytest.mark.parametrize("value", [float("nan"), {"x": [float("inf")]}, -float("inf"),
                                   {1: "int key"}, {"s": {1, 2}}, b"bytes"])
def test_non_json_values_are_refused(value: object) -> None:
    assert json_problem(value)
    with pytest.raises(InputError, match="not acceptable JSON"):
        check_json(value, what="json_inputs.data")


def test_plain_json_passes() -> None:
    check_json({"a": [1, 2.5, "x", None, True, {"b": []}], "t": (1, 2)})


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", "-Infinity", "{", "[" * 5000])
def test_loads_json_refuses(text: str) -> None:
    with pytest.raises(InputError):
        loads_json(text)


def test_loads_json_reads() -> None:
    assert loads_json('{"a": [1, 2]}') == {"a": [1, 2]}


def test_clean_text_and_mime() -> None:
    assert clean_text("in\x1b[31mvoice\r\n\x07\u202etxt.pdf") == "in[31mvoicetxt.pdf"
    assert clean_text("a" * 10, limit=4) == "aaaa"
    assert clean_text("Überweisung 2026 – März") == "Überweisung 2026 – März"
    assert clean_mime("Application/PDF; charset=binary") == "application/pdf"
    for bad in ("text/plain\r\nX-Evil: 1", "no-slash", "", None, "text/ plain", "a/b\x00"):
        assert clean_mime(bad) is None


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ",".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_bomb_is_refused_by_expanded_size_not_alias_count() -> None:
    text = billion_laughs()
    assert len(text) < 800 and text.count("*") == 72
    started = time.perf_counter()
    with pytest.raises(YamlBudgetExceeded, match="expands to more than"):
        check_expansion(yaml.compose(text))
    assert time.perf_counter() - started < 1


def test_yaml_budget_counts_shared_nodes_once_per_use() -> None:
    text = "base: &b {x: 1, y: 2}\nuses: [*b, *b, *b]\n"
    # root(1) + 2 keys + base map (1 + 4) + list (1 + 3 * 5)
    assert check_expansion(yaml.compose(text)) == 1 + 2 + 5 + 1 + 15
    with pytest.raises(YamlBudgetExceeded):
        check_expansion(yaml.compose(text), max_nodes=20)


def test_recursive_and_deep_yaml() -> None:
    with pytest.raises(YamlBudgetExceeded, match="contains it"):
        check_expansion(yaml.compose("a: &x [1, *x]"))
    with pytest.raises(YamlBudgetExceeded, match="deeper"):
        check_expansion(yaml.compose("[" * 100 + "]" * 100))
    assert check_expansion(None) == 0


def test_the_loader_applies_the_budget_and_cleans_names() -> None:
    from engine.contracts.errors import WorkflowLoadError
    from engine.definition import Workflow

    bomb = "apiVersion: workflows.retab.com/v1alpha2\nkind: Workflow\n" + billion_laughs()
    started = time.perf_counter()
    with pytest.raises(WorkflowLoadError, match="expands to more than"):
        Workflow.from_yaml(bomb)
    assert time.perf_counter() - started < 1
    with pytest.raises(WorkflowLoadError, match="nests deeper"):
        Workflow.from_yaml("{" + '"a": [' * 200 + "]" * 200 + "}")
    named = Workflow.from_yaml('metadata: {name: "in\\e[2Jvoice\\r\\n"}\nspec:\n  blocks:\n'
                               '    a: {type: note, label: "x\\e]0;t\\a"}\n')
    assert named.name == "in[2Jvoice" and named.blocks[0].label == "x]0;t"


def test_split_characters_are_joined_and_lone_surrogates_replaced() -> None:
    assert paired("a \ud83e\uddfe b") == "a \U0001f9fe b"  # YAML's reading of JSON's escape
    assert paired("\ud83e end \udc00") == "\ufffd end \ufffd"
    assert paired("\uddfe\ud83e") == "\ufffd\ufffd"  # the wrong order is no pair
    assert clean_text("lab\x07el \ud83e\uddfe", limit=7) == "label \U0001f9fe"
    assert paired_json({"k\ud83e": ["\ud83e\uddfe", 1, None, ("t\udc00",)]}) == {
        "k\ufffd": ["\U0001f9fe", 1, None, ["t\ufffd"]]}
    plain = {"a": ["b"]}
    assert paired_json(plain) == plain
