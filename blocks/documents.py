"""Plumbing shared by the document blocks (parse, extract, split, classifier, edit,
merge_pdf, and the split_by_key for_each).

* :func:`load_document`: the bytes of a file input, with its MIME type sniffed from the
  content. Unusable files (missing, empty, corrupt or encrypted PDFs) fail the step at
  stage ``document_fetch`` with a message that says what to do.
* :func:`read_pages`: one text per page. PDFs through pypdf; text, Markdown, CSV and
  JSON decoded (a form feed starts a new page); PNG/JPEG through the provider's vision
  (``describe_image``), or a permanent error when the provider has none.
* :func:`to_pdf`: the document as a PDF (images and text are wrapped).
* :func:`pdf_job`: any :mod:`blocks.pdf` work, in a budgeted subprocess that a cancel
  kills (hostile PDFs cost the worker, never the engine).
* :func:`call_model`: awaits a provider call and prefixes its errors with the block.
* :class:`Route` and :func:`route_diagnostics`: categories and subdocuments, whose
  ``handle_key`` (default: the slugified name) names an ``output-file-<key>`` handle.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import PurePath
from typing import Any, TypeVar

from blocks.base import StrictConfig
from blocks.conditional import slugify
from blocks.control import who
from blocks.document_worker import run_pdf_job
from blocks.pdf import (
    DocumentProblem,
    as_pdf,
    decode_text,
    is_text_mime,
    page_texts,
    sniff_mime,
)
from blocks.providers import CallContext, ModelProvider, Usage, json_as_text
from engine.contracts.blocks import BlockContext
from engine.contracts.errors import (
    BlockError,
    Diagnostic,
    ErrorStage,
    PermanentError,
    StepwellError,
)
from engine.contracts.frozen import record
from engine.contracts.policy import policy_of
from engine.contracts.values import FileRef, Payload

T = TypeVar("T")


@record
class Document:
    """A file input: its reference, bytes and sniffed MIME type."""

    ref: FileRef
    data: bytes
    mime: str

    @property
    def stem(self) -> str:
        """The filename without its extension (``document`` when there is none)."""
        return PurePath(self.ref.filename).stem or "document"


def fetch_error(ctx: BlockContext, filename: str, problem: DocumentProblem) -> PermanentError:
    """A ``document_fetch`` error naming the block, the file, the problem and the fix."""
    return PermanentError(f"{who(ctx)}: cannot use {filename!r}: {problem.problem}. "
                          f"{problem.fix}", stage=ErrorStage.DOCUMENT_FETCH, code=problem.code)


def load_document(ctx: BlockContext, inputs: Mapping[str, Payload], handle: str) -> Document:
    """The document that arrived on ``handle``.

    Raises:
        PermanentError: nothing or JSON arrived (``input_collection``), or the file is
            missing from the store or empty (``document_fetch``).
    """
    payload = inputs.get(handle)
    if payload is None or payload.document is None:
        got = "nothing" if payload is None else "JSON"
        raise PermanentError(
            f"{who(ctx)} needs a file on {handle!r} but received {got}; connect a document "
            "output (e.g. start_document.output-file-0).",
            stage=ErrorStage.INPUT_COLLECTION, code="EXPECTED_FILE")
    ref = payload.document
    if ctx.files is None:
        raise PermanentError(f"{who(ctx)}: no file store is configured; run it through the "
                             "engine.", stage=ErrorStage.DOCUMENT_FETCH, code="NO_FILE_STORE")
    try:
        data = ctx.files.read_bytes(ref)
    except (StepwellError, KeyError, OSError) as exc:
        raise PermanentError(f"{who(ctx)}: the file {ref.filename!r} ({ref.id}) cannot be read "
                             f"from the file store ({exc}). Start the run again with the file.",
                             stage=ErrorStage.DOCUMENT_FETCH, code="DOCUMENT_UNAVAILABLE") from exc
    if not data.strip():
        raise fetch_error(ctx, ref.filename, DocumentProblem(
            "the file is empty", "Upload the document again with its content.", "DOCUMENT_EMPTY"))
    return Document(ref=ref, data=data, mime=sniff_mime(data, ref.filename, ref.mime_type))


async def pdf_job(ctx: BlockContext, doc: Document, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` (a :mod:`blocks.pdf` function) in a budgeted, killable subprocess.

    The budgets (time, CPU, memory, pages, inflated bytes) and the isolation come from
    the host's policy (:mod:`blocks.document_worker`); cancelling the step kills the
    subprocess. A :class:`DocumentProblem` (a budget included) becomes a step error.
    """
    policy = policy_of(ctx.services)
    try:
        result: T = await run_pdf_job(fn.__name__, *args, limits=policy.documents,
                                      confine=policy.confine_workers, user=policy.worker_user)
    except DocumentProblem as problem:
        raise fetch_error(ctx, doc.ref.filename, problem) from problem
    return result


async def call_model(ctx: BlockContext, call: Awaitable[T]) -> T:
    """Await a provider call; its BlockErrors are re-raised naming the block."""
    try:
        return await call
    except BlockError as exc:
        if exc.message.startswith(who(ctx)):
            raise
        raise type(exc)(f"{who(ctx)}: {exc.message}", category=exc.category, stage=exc.stage,
                        code=exc.code, context=exc.context,
                        retry_after=exc.retry_after) from exc


async def read_pages(ctx: BlockContext, doc: Document, provider: ModelProvider,
                     model: str | None, instructions: str | None = None
                     ) -> tuple[list[str], Usage | None]:
    """One text per page of ``doc``, and the usage when a model had to read it.

    Raises:
        PermanentError: unreadable document (``document_fetch``), an image with a
            provider that has no vision, or an unsupported type.
    """
    if doc.mime == "application/pdf":
        return await pdf_job(ctx, doc, page_texts, doc.data), None
    if is_text_mime(doc.mime):
        return decode_text(doc.data).split("\f"), None
    if doc.mime.startswith("image/"):
        if not provider.supports_vision:
            raise PermanentError(
                f"{who(ctx)}: {doc.ref.filename!r} is an image ({doc.mime}); reading it needs a "
                f"vision-capable model and the {provider.name!r} provider has none. Set "
                "STEPWELL_MODEL_PROVIDER=openai with a vision model, or pass a PDF with text.",
                code="VISION_REQUIRED")
        text = await call_model(ctx, provider.describe_image(
            doc.data, doc.mime, model=model, context=CallContext.of(ctx, instructions)))
        return text.pages, text.usage
    raise fetch_error(ctx, doc.ref.filename, DocumentProblem(
        f"it is a {doc.mime} file, which stepwell cannot read",
        "Convert it to PDF (or text, CSV, JSON, PNG, JPEG) and run again.",
        "UNSUPPORTED_DOCUMENT_TYPE"))


def _csv_layout(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    widths = [max((len(r[i]) for r in rows if i < len(r)), default=0)
              for i in range(max((len(r) for r in rows), default=0))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                     for row in rows)


def structured_text(doc: Document, pages: list[str]) -> list[str]:
    """Pages as a model reads them best: a JSON file as ``key path: value`` lines, a CSV
    file as aligned columns (so header cells sit above their values); others unchanged."""
    try:
        if doc.mime == "application/json":
            return [json_as_text(json.loads(decode_text(doc.data)))]
        if doc.mime == "text/csv":
            return [_csv_layout(page) for page in pages]
    except (ValueError, csv.Error):
        return pages
    return pages


async def to_pdf(ctx: BlockContext, doc: Document) -> bytes:
    """``doc`` as PDF bytes (see :func:`blocks.pdf.as_pdf`).

    A PDF is returned as it is: the job that reads it next checks it (and fails the same
    way), which saves a subprocess per document.
    """
    if doc.mime == "application/pdf":
        return doc.data
    return await pdf_job(ctx, doc, as_pdf, doc.data, doc.mime)


async def pdf_pages(ctx: BlockContext, doc: Document, provider: ModelProvider,
                    model: str | None, instructions: str | None = None
                    ) -> tuple[bytes, list[str], Usage | None]:
    """``doc`` as PDF bytes, one text per page of that PDF, and the usage when a model had
    to read it (images). For blocks that cut the PDF by the pages a model names.

    Raises:
        PermanentError: unreadable document (``document_fetch``), or an image with a
            provider that has no vision.
    """
    pdf = await to_pdf(ctx, doc)
    if doc.mime.startswith("image/"):
        pages, usage = await read_pages(ctx, doc, provider, model, instructions)
        return pdf, pages, usage
    return pdf, await pdf_job(ctx, doc, page_texts, pdf), None


def store_pdf(ctx: BlockContext, data: bytes, filename: str) -> FileRef:
    """Put a PDF in the run's file store."""
    assert ctx.files is not None
    return ctx.files.put_bytes(data, filename, "application/pdf")


def add_usage(usage: Usage, extra: Usage | None) -> Usage:
    """``usage`` plus ``extra`` (when reading the document also cost tokens)."""
    return usage if extra is None else extra + usage


# ----------------------------------------------------------------------------- routes


_HANDLE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class Route(StrictConfig):
    """A category or subdocument: ``name``, ``description``, optional ``handle_key``."""

    name: str
    description: str = ""
    handle_key: str | None = None

    @property
    def key(self) -> str:
        """The handle key: ``handle_key`` or the slugified name."""
        return self.handle_key or slugify(self.name)


def route_diagnostics(routes: list[Any], path: str, field: str) -> list[Diagnostic]:
    """Empty lists, empty or duplicate handle keys and duplicate names."""
    if not routes:
        return [Diagnostic(code="MISSING_ROUTES", path=f"{path}.config.{field}",
                           message=f"no {field} configured",
                           fix=f"add at least one entry to {field}: [{{name, description}}]")]
    problems: list[Diagnostic] = []
    keys: dict[str, int] = {}
    names: set[str] = set()
    for i, route in enumerate(routes):
        where = f"{path}.config.{field}[{i}]"
        if not _HANDLE_KEY.match(route.key):
            problems.append(Diagnostic(code="INVALID_HANDLE_KEY", path=f"{where}.handle_key",
                                       message=f"handle key {route.key!r} is empty or has "
                                       "characters other than letters, digits, '-' and '_'",
                                       fix="set handle_key, e.g. `invoice`"))
        elif route.key in keys:
            problems.append(Diagnostic(code="DUPLICATE_HANDLE_KEY", path=f"{where}.handle_key",
                                       message=f"handle key {route.key!r} is also used by "
                                       f"{field}[{keys[route.key]}]",
                                       fix="give each entry a distinct name or handle_key"))
        if route.name in names:
            problems.append(Diagnostic(code="DUPLICATE_ROUTE_NAME", path=f"{where}.name",
                                       message=f"{route.name!r} is listed twice",
                                       fix="give each entry its own name"))
        keys.setdefault(route.key, i)
        names.add(route.name)
    return problems
