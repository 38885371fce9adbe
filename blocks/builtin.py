"""The built-in block set: :func:`register_all` fills a registry with every type.

Families, one module each: control blocks (:mod:`blocks.control`), the conditional
(:mod:`blocks.conditional`), merge_dicts and reshape (:mod:`blocks.dicts`), the
function block (:mod:`blocks.function`), the loop containers (:mod:`blocks.for_each`,
:mod:`blocks.loops`, which also holds their sentinels), and the document/model blocks
(:mod:`blocks.parse`, :mod:`blocks.extract`, :mod:`blocks.split`,
:mod:`blocks.classifier`, :mod:`blocks.edit`, :mod:`blocks.merge_pdf`) plus
:mod:`blocks.api_call`, registered in :func:`_register_documents`.
"""

from __future__ import annotations

from blocks import conditional, control, dicts, for_each, function, hil, loops
from blocks.registry import BlockRegistry


def register_all(registry: BlockRegistry) -> BlockRegistry:
    """Register every built-in block type (with legacy aliases) on ``registry``.

    Args:
        registry: usually a fresh :class:`BlockRegistry`.

    Returns:
        The same registry, for chaining.

    Raises:
        RegistryError: a built-in name is already registered there.
    """
    _register_control(registry)
    _register_loops(registry)
    _register_documents(registry)
    return registry


def _register_control(registry: BlockRegistry) -> None:
    registry.register(control.StartDocument(), aliases=("start",))
    registry.register(control.StartJson())
    registry.register(control.Note())
    registry.register(control.End())
    registry.register(hil.Hil())
    registry.register(conditional.Conditional())
    registry.register(dicts.MergeDicts())
    registry.register(dicts.Reshape())
    registry.register(function.Function(), aliases=("functions",))


def _register_loops(registry: BlockRegistry) -> None:
    registry.register(for_each.ForEach())
    registry.register(loops.WhileLoop())
    registry.register(loops.ForEachSentinelStart())
    registry.register(loops.ForEachSentinelEnd())
    registry.register(loops.WhileLoopSentinelStart())
    registry.register(loops.WhileLoopSentinelEnd())


def _register_documents(registry: BlockRegistry) -> None:
    """Document and network blocks: parse, extract, split, classifier, edit, merge_pdf,
    api_call. They reach their model through ``ctx.services["model_provider"]`` or the
    configured default (:mod:`blocks.providers`); the split_by_key for_each uses
    :func:`blocks.partition.partition_by_key` the same way."""
    from blocks import api_call, classifier, edit, extract, merge_pdf, parse, split

    registry.register(parse.Parse())
    registry.register(extract.Extract())
    registry.register(split.Split())
    registry.register(classifier.Classifier())
    registry.register(edit.Edit())
    registry.register(merge_pdf.MergePdf())
    registry.register(api_call.ApiCall())
