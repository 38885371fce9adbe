"""The built-in block set: :func:`register_all` fills a registry with every type.

Families, one module each: control blocks (:mod:`blocks.control`), the conditional
(:mod:`blocks.conditional`), merge_dicts and reshape (:mod:`blocks.dicts`), the
function block (:mod:`blocks.function`), the loop containers (:mod:`blocks.for_each`,
:mod:`blocks.loops`, which also holds their sentinels), and the document/model blocks
(:mod:`blocks.parse`, :mod:`blocks.extract`, :mod:`blocks.split`,
:mod:`blocks.classifier`, :mod:`blocks.edit`, :mod:`blocks.merge_pdf`) plus
:mod:`blocks.api_call`. Document and network blocks reach their model through
``ctx.services["model_provider"]`` or the configured default (:mod:`blocks.providers`).

Every type is registered by where it lives (:meth:`BlockRegistry.register_lazy`): a
module is imported when a workflow first uses one of its types, so running a workflow
of functions never imports the PDF or model code.
"""

from __future__ import annotations

from blocks.registry import BlockRegistry

#: ``type_name -> (MODULE:CLASS, legacy aliases, authorable)``, in registration order.
BUILTIN_TYPES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "start_document": ("blocks.control:StartDocument", ("start",), True),
    "start_json": ("blocks.control:StartJson", (), True),
    "note": ("blocks.control:Note", (), True),
    "end": ("blocks.control:End", (), True),
    "hil": ("blocks.hil:Hil", (), True),
    "conditional": ("blocks.conditional:Conditional", (), True),
    "merge_dicts": ("blocks.dicts:MergeDicts", (), True),
    "reshape": ("blocks.dicts:Reshape", (), True),
    "function": ("blocks.function:Function", ("functions",), True),
    "for_each": ("blocks.for_each:ForEach", (), True),
    "while_loop": ("blocks.loops:WhileLoop", (), True),
    "for_each_sentinel_start": ("blocks.loops:ForEachSentinelStart", (), False),
    "for_each_sentinel_end": ("blocks.loops:ForEachSentinelEnd", (), False),
    "while_loop_sentinel_start": ("blocks.loops:WhileLoopSentinelStart", (), False),
    "while_loop_sentinel_end": ("blocks.loops:WhileLoopSentinelEnd", (), False),
    "parse": ("blocks.parse:Parse", (), True),
    "extract": ("blocks.extract:Extract", (), True),
    "split": ("blocks.split:Split", (), True),
    "classifier": ("blocks.classifier:Classifier", (), True),
    "edit": ("blocks.edit:Edit", (), True),
    "merge_pdf": ("blocks.merge_pdf:MergePdf", (), True),
    "api_call": ("blocks.api_call:ApiCall", (), True),
}


def register_all(registry: BlockRegistry) -> BlockRegistry:
    """Register every built-in block type (with legacy aliases) on ``registry``.

    Each is imported on its first lookup (:meth:`BlockRegistry.get`).

    Args:
        registry: usually a fresh :class:`BlockRegistry`.

    Returns:
        The same registry, for chaining.

    Raises:
        RegistryError: a built-in name is already registered there.
    """
    for name, (target, aliases, authorable) in BUILTIN_TYPES.items():
        registry.register_lazy(name, target, aliases=aliases, authorable=authorable)
    return registry


def is_builtin(block_type: object) -> bool:
    """Whether ``block_type`` is an instance of a built-in block class (none is imported)."""
    cls = type(block_type)
    return f"{cls.__module__}:{cls.__qualname__}" in _TARGETS


_TARGETS = frozenset(target for target, _, _ in BUILTIN_TYPES.values())
