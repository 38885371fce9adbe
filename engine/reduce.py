"""The reduce phase of a for_each: from each iteration's result to ``fe-right-out``.

A for_each collects the payload each iteration delivered on ``fe-right-in`` (``null``
where nothing arrived), in item order, then reduces the list by its
``reduce_strategy`` (carried on :class:`~engine.contracts.blocks.ExpandItems`, so the
engine never reads block config):

* ``concat_array`` (default): the list itself. ``reduce_concat_item_key`` adds each
  iteration's key (the partition key of ``split_by_key``, the page range of
  ``split_by_page``, the index of ``iterate_array``) to every object result under that
  name; a result that is not an object becomes ``{<item key>: key, "value": result}``.
  ``reduce_concat_data_key`` wraps the list: ``{<data key>: [...]}``.
* ``first`` / ``last``: the first / last iteration's result (``null`` when there were
  none).
* ``none``: nothing; ``fe-right-out`` does not fire, so what hangs off it is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

ReduceStrategy = Literal["concat_array", "first", "last", "none"]
#: Every strategy, in the order the docs list them.
REDUCE_STRATEGIES: tuple[str, ...] = ("concat_array", "first", "last", "none")


def reduce_results(
    results: Sequence[Any],
    strategy: str = "concat_array",
    *,
    data_key: str | None = None,
    item_key: str | None = None,
    keys: Sequence[Any] | None = None,
) -> tuple[bool, Any]:
    """Reduce a for_each's collected results.

    Args:
        results: each iteration's JSON result, in item order.
        strategy: one of :data:`REDUCE_STRATEGIES`.
        data_key: ``reduce_concat_data_key`` (concat_array only).
        item_key: ``reduce_concat_item_key`` (concat_array only).
        keys: each iteration's key, in item order; the index when not given.

    Returns:
        ``(fires, value)``: whether ``fe-right-out`` fires, and its JSON value.

    Raises:
        ValueError: an unknown strategy (validation refuses it before a run).
    """
    if strategy == "none":
        return False, None
    if strategy == "first":
        return True, results[0] if results else None
    if strategy == "last":
        return True, results[-1] if results else None
    if strategy != "concat_array":
        raise ValueError(f"unknown reduce_strategy {strategy!r}; use one of "
                         f"{', '.join(REDUCE_STRATEGIES)}")
    out = list(results)
    if item_key:
        names = list(keys) if keys is not None else list(range(len(out)))
        out = [_with_key(result, item_key, names[i] if i < len(names) else i)
               for i, result in enumerate(out)]
    return True, ({data_key: out} if data_key else out)


def _with_key(result: Any, item_key: str, key: Any) -> Any:
    if isinstance(result, dict):
        return {item_key: key, **{k: v for k, v in result.items() if k != item_key}}
    return {item_key: key, "value": result}
