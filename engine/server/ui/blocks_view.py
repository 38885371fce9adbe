"""Per-block state of a run, and the workflow graph the run page draws.

Each block of the workflow gets a :class:`BlockSummary` folded from the run's step
counts (:meth:`~engine.contracts.outline.OutlineStore.block_tallies`): how many of its
steps are in each status, the status that stands for them all (:data:`STATUS_RANK`: an
error outranks a run in progress, which outranks waiting...), the first skip or error
message, and for loop containers their item progress (:class:`ItemProgress`): items
opened, done and failed (from the loop sentinels' counts) out of the size each loop noted
when it opened (:meth:`~engine.contracts.outline.OutlineStore.loop_sizes`), so a running
loop shows ``37/200 items`` whatever it iterates over; a while_loop shows its iterations
out of its bound.

:func:`graph_json` is what the browser lays out (left to right, with the vendored
dagre) and draws: blocks, containers as boxes holding a start and an end node, edges
as compiled (generated boundary edges included, dotted). Edges into a container join its
start node and edges out of it leave its end node, as the engine runs them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.contracts.blocks import SentinelRole, sentinel_id
from engine.contracts.outline import SENTINEL_END, SENTINEL_START, BlockTally, LoopSize
from engine.definition import Workflow

#: Which status a block shows when its steps differ: the first one present wins.
STATUS_RANK = ("error", "running", "awaiting_review", "queued", "pending", "cancelled",
               "completed", "skipped")
CONTAINER_TYPES = frozenset({"for_each", "while_loop"})
HIDDEN_TYPES = frozenset({"note"})


@dataclass(slots=True, kw_only=True)
class ItemProgress:
    """Items of one loop container block, over every step of it (nested loops included).

    Attributes:
        total: how many items there are, when known: the sizes its loops noted when
            they opened (a while_loop's bound when ``bound``), else, once it ended, the
            items it opened.
        bound: ``total`` is the most iterations of a while_loop, not a count.
        unit: ``items`` (for_each) or ``iterations`` (while_loop).
        unopened: container steps of the block whose loop has not opened yet (a nested
            loop in outer items still to come): ``total`` will grow.
        started / done / failed: iterations opened, completed, ended by an error.
    """

    total: int | None = None
    bound: bool = False
    unit: str = "items"
    unopened: int = 0
    started: int = 0
    done: int = 0
    failed: int = 0

    @property
    def open(self) -> int:
        """Iterations started and not settled."""
        return max(0, self.started - self.done - self.failed)

    def text(self) -> str:
        """``37/200 items, 2 failed`` (``3 of at most 10 iterations`` for a while_loop)."""
        failed = f", {self.failed} failed" if self.failed else ""
        if self.bound and self.total is not None:
            return f"{self.done} of at most {self.total} {self.unit}{failed}"
        if self.total is None:
            return f"{self.done}/{self.started}{'+' if self.open else ''} {self.unit}{failed}"
        more = "+" if self.unopened else ""
        return f"{self.done}/{self.total}{more} {self.unit}{failed}"


@dataclass(slots=True, kw_only=True)
class BlockSummary:
    """One block of the workflow as this run executed it."""

    block_id: str
    label: str
    type: str
    parent: str | None
    counts: Counter[str] = field(default_factory=Counter)
    reason: str | None = None
    error: str | None = None
    items: ItemProgress | None = None

    @property
    def status(self) -> str:
        """The status that stands for all the block's steps (``not_run`` without any)."""
        for status in STATUS_RANK:
            if self.counts.get(status):
                return status
        return "not_run"

    @property
    def is_container(self) -> bool:
        """True for for_each and while_loop blocks."""
        return self.type in CONTAINER_TYPES

    def counts_text(self) -> str:
        """``3 completed, 1 skipped`` (most frequent first)."""
        return ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in self.counts.most_common())


def summarize(workflow: Workflow, tallies: Iterable[BlockTally],
              sizes: Iterable[LoopSize] = ()) -> dict[str, BlockSummary]:
    """Block id -> its summary, in workflow order (notes left out).

    Args:
        workflow: the definition the run used.
        tallies: the run's steps per block and status.
        sizes: the sizes its loops noted when they opened.
    """
    blocks = {b.id: BlockSummary(block_id=b.id, label=b.display_label, type=b.type,
                                 parent=b.parent_id)
              for b in workflow.blocks if b.type not in HIDDEN_TYPES}
    for container in blocks.values():
        if container.is_container:
            container.items = ItemProgress(
                unit="iterations" if container.type == "while_loop" else "items")
    for tally in tallies:
        if tally.block_type.endswith((SENTINEL_START, SENTINEL_END)):
            _count_items(blocks, tally)
            continue
        summary = blocks.get(tally.block_id)
        if summary is None:  # a step of a block the stored definition lacks
            summary = blocks[tally.block_id] = BlockSummary(
                block_id=tally.block_id, label=tally.label or tally.block_id,
                type=tally.block_type, parent=None)
        summary.counts[tally.status] += tally.count
        if tally.status in ("skipped", "cancelled") and summary.reason is None:
            summary.reason = tally.reason
        if tally.status == "error" and summary.error is None:
            summary.error = tally.error
    _add_sizes(blocks, sizes)
    return blocks


def _count_items(blocks: dict[str, BlockSummary], tally: BlockTally) -> None:
    start = tally.block_type.endswith(SENTINEL_START)
    suffix = sentinel_id("", SentinelRole.START if start else SentinelRole.END)
    container = blocks.get(tally.block_id.removesuffix(suffix))
    if container is None or container.items is None:
        return
    items = container.items
    if start:
        items.started += tally.count
    elif tally.status == "completed":
        items.done += tally.count
    elif tally.status in ("skipped", "error"):
        items.failed += tally.count


def _add_sizes(blocks: dict[str, BlockSummary], sizes: Iterable[LoopSize]) -> None:
    """Totals of loop containers from the sizes their loops noted."""
    noted: dict[str, list[LoopSize]] = {}
    for size in sizes:
        noted.setdefault(size.block_id, []).append(size)
    for block in blocks.values():
        items = block.items
        if items is None:
            continue
        found = noted.get(block.block_id, [])
        if found:
            items.total = sum(s.items for s in found)
            items.bound = all(s.bound for s in found)
            if not items.bound:
                items.total = max(items.total, items.started)
            items.unopened = max(0, sum(block.counts.values()) - len(found)
                                 - block.counts.get("skipped", 0)
                                 - block.counts.get("cancelled", 0)
                                 - block.counts.get("error", 0))
        elif block.status in ("completed", "error", "cancelled", "skipped"):
            items.total = items.started


def graph_json(workflow: Workflow, blocks: dict[str, BlockSummary], run_id: str
               ) -> dict[str, Any]:
    """Nodes and edges for the browser to lay out and draw.

    Args:
        workflow: the definition the run used (compiled, so generated edges are in it).
        blocks: the summaries from :func:`summarize`.
        run_id: for the links of the nodes.
    """
    nodes: list[dict[str, Any]] = []
    for block in blocks.values():
        href = f"/runs/{run_id}?block={block.block_id}#steps"
        summary = block.items.text() if block.items is not None else block.counts_text()
        nodes.append({"id": block.block_id, "label": block.label, "type": block.type,
                      "parent": block.parent if block.parent in blocks else None,
                      "container": block.is_container, "status": block.status,
                      "summary": summary or "not run", "href": href,
                      "failed_items": block.items.failed if block.items else 0})
    edges = []
    seen: set[tuple[str, str, str]] = set()
    for edge in workflow.edges:
        source, target = edge.source_block, edge.target_block
        if source not in blocks or target not in blocks:
            continue
        src_end = "end" if blocks[source].is_container and blocks[target].parent != source \
            else "start" if blocks[source].is_container else ""
        tgt_end = "start" if blocks[target].is_container and blocks[source].parent != target \
            else "end" if blocks[target].is_container else ""
        label = _handle_label(edge.source_handle)
        key = (f"{source}:{src_end}", f"{target}:{tgt_end}", label)
        if key in seen:
            continue
        seen.add(key)
        edges.append({"source": source, "source_end": src_end, "target": target,
                      "target_end": tgt_end, "generated": edge.generated, "label": label,
                      "title": f"{source}.{edge.source_handle or '?'} → "
                               f"{target}.{edge.target_handle or '?'}"})
    return {"nodes": nodes, "edges": edges}


def _handle_label(handle: str) -> str:
    """Routing handles keep their branch name on the edge; plain data handles none."""
    for prefix in ("output-json-", "output-file-"):
        if handle.startswith(prefix):
            rest = handle.removeprefix(prefix)
            return "" if rest.isdigit() else rest
    return ""
