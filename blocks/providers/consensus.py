"""Consensus voting over several model answers (``n_consensus``), provider-agnostic.

An extraction asked ``n`` times gives ``n`` JSON trees. :func:`vote` walks them together:

* objects vote key by key (a missing key counts as ``null``);
* arrays first vote on their length, then element by element among the answers that
  have that element;
* anything else votes by JSON equality (``1 == 1.0``, ``"1" != 1``); the most common
  value wins and ties go to the earliest answer.

Each leaf's likelihood is the share of all ``n`` answers that agree with the winner, so
the ``likelihoods`` tree mirrors the output (Retab's ``consensus.likelihoods``).
Classifier and split answers vote with :func:`vote_label` and :func:`vote_pages`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _canon(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(float(value))
    return json.dumps(value, sort_keys=True, default=str)


def _majority(values: Sequence[Any]) -> tuple[Any, int]:
    counts: dict[str, int] = {}
    first: dict[str, Any] = {}
    for value in values:
        key = _canon(value)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, value)
    best = max(counts, key=lambda k: (counts[k], -list(counts).index(k)))
    return first[best], counts[best]


def _vote(values: list[Any], n: int) -> tuple[Any, Any]:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, Mapping) for v in present):
        keys = list(dict.fromkeys(k for v in present for k in v))
        data: dict[str, Any] = {}
        tree: dict[str, Any] = {}
        for key in keys:
            data[key], tree[key] = _vote(
                [v.get(key) if isinstance(v, Mapping) else None for v in values], n)
        return data, tree
    if present and all(isinstance(v, list) for v in present):
        length, _ = _majority([len(v) for v in present])
        items: list[Any] = []
        shares: list[Any] = []
        for i in range(length):
            item, likelihood = _vote([v[i] for v in present if len(v) > i], n)
            items.append(item)
            shares.append(likelihood)
        return items, shares
    winner, count = _majority(values)
    return winner, round(count / n, 4)


def vote(choices: Sequence[Any]) -> tuple[Any, Any]:
    """The per-leaf majority of ``choices`` and its likelihood tree.

    Args:
        choices: one JSON value per model answer (at least one).

    Returns:
        ``(data, likelihoods)``: likelihood leaves are floats in [0, 1].

    Raises:
        ValueError: ``choices`` is empty.
    """
    if not choices:
        raise ValueError("vote() needs at least one answer")
    return _vote(list(choices), len(choices))


def leaf_values(tree: Any) -> list[float]:
    """Every numeric leaf of a likelihood tree, depth first."""
    if isinstance(tree, Mapping):
        return [x for v in tree.values() for x in leaf_values(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in leaf_values(v)]
    if isinstance(tree, int | float) and not isinstance(tree, bool):
        return [float(tree)]
    return []


def min_likelihood(tree: Any) -> float | None:
    """The lowest leaf of a likelihood tree (None when it has no leaves)."""
    leaves = leaf_values(tree)
    return min(leaves) if leaves else None


def constant_likelihoods(data: Any, value: float) -> Any:
    """A likelihood tree shaped like ``data`` with ``value`` on every leaf."""
    if isinstance(data, Mapping):
        return {k: constant_likelihoods(v, value) for k, v in data.items()}
    if isinstance(data, list):
        return [constant_likelihoods(v, value) for v in data]
    return value


def vote_label(labels: Sequence[str]) -> tuple[str, float]:
    """The most common label (ties: earliest) and the share of answers that gave it."""
    winner, count = _majority(list(labels))
    return winner, round(count / len(labels), 4)


def vote_pages(
    answers: Sequence[Mapping[int, str | None]], pages: int
) -> tuple[dict[int, str | None], dict[int, float]]:
    """Per page, the most common assignment among ``answers`` and its share.

    Args:
        answers: one ``{page: subdocument name or None}`` per model answer.
        pages: the page count (pages an answer omits count as ``None``).
    """
    chosen: dict[int, str | None] = {}
    shares: dict[int, float] = {}
    for page in range(1, pages + 1):
        winner, count = _majority([a.get(page) for a in answers])
        chosen[page], shares[page] = winner, round(count / len(answers), 4)
    return chosen, shares
