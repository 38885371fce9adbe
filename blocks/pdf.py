"""PDF helpers shared by the document blocks (pure functions: bytes in, bytes out).

Everything here is synchronous and free of engine types; blocks call it in a worker
thread and turn :class:`DocumentProblem` into a step error that names the block.

* :func:`sniff_mime`: the content decides (PDF/PNG/JPEG signatures), then the name.
* :func:`open_pdf`: a readable :class:`pypdf.PdfReader`, or a :class:`DocumentProblem`
  saying what is wrong (empty, not a PDF, corrupt, encrypted) and what to do.
* :func:`page_texts`: one text per page. pypdf's ``layout`` mode keeps columns apart
  (two or more spaces between cells), which the offline extractor relies on; plain mode
  is the fallback when layout extraction fails.
* :func:`page_subset`, :func:`split_pages`, :func:`page_chunks`, :func:`merge_pdfs`:
  page surgery.
* :func:`as_pdf`: a PDF stays as it is; a PNG or JPEG becomes a one-page PDF (written by
  :mod:`blocks.pdfwrite`, no imaging library needed); text becomes a plain PDF.
* :func:`form_fields`, :func:`fill_form`: AcroForm fields (text, checkbox, choice).

pypdf is imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import io
import logging
from dataclasses import field
from typing import TYPE_CHECKING, Any

from blocks import pdfwrite
from engine.contracts.files import detect_mime
from engine.contracts.frozen import record

if TYPE_CHECKING:
    from pypdf import PdfReader

#: MIME types whose bytes are text the blocks decode directly.
TEXT_MIMES = frozenset(
    {"application/json", "application/xml", "application/x-yaml", "application/yaml"}
)
IMAGE_MIMES = frozenset({"image/png", "image/jpeg"})


class DocumentProblem(ValueError):
    """A document that cannot be used: ``problem`` says why, ``fix`` what to do."""

    def __init__(self, problem: str, fix: str, code: str = "DOCUMENT_UNREADABLE") -> None:
        self.problem = problem
        self.fix = fix
        self.code = code
        super().__init__(f"{problem}. {fix}")


def is_text_mime(mime: str) -> bool:
    """True for ``text/*`` and the JSON/XML/YAML types the blocks read as text."""
    return mime.startswith("text/") or mime in TEXT_MIMES or mime.endswith("+json")


def sniff_mime(data: bytes, filename: str = "", declared: str | None = None) -> str:
    """The MIME type of ``data``: content signatures first, then the name, then ``declared``.

    Args:
        data: the file's bytes.
        filename: its name (the extension helps for text formats: ``.md``, ``.csv``).
        declared: what the file store recorded; used when nothing better is known.

    Returns:
        A MIME type, ``application/octet-stream`` when nothing matches.
    """
    if data.lstrip()[:5].startswith(b"%PDF"):
        return "application/pdf"
    found = detect_mime(data, filename)
    if found in ("application/octet-stream", "text/plain") and declared:
        if declared not in ("application/octet-stream", "text/plain"):
            return declared
    return found


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Latin-1: text files always decode."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ----------------------------------------------------------------------------- reading


def open_pdf(data: bytes) -> PdfReader:
    """A reader over ``data`` with every page reachable.

    Raises:
        DocumentProblem: the file is empty, not a PDF, corrupt, or encrypted with a
            password (an owner-only password is removed transparently).
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    _quiet_pypdf()
    if not data.strip():
        raise DocumentProblem(
            "the file is empty (0 bytes of content)",
            "Upload the document again; the copy the run received has no content.",
            "DOCUMENT_EMPTY",
        )
    if b"%PDF" not in data[:1024]:
        raise DocumentProblem(
            "the file is not a PDF (no %PDF header)",
            "Pass a PDF, or a PNG/JPEG/text file the block can convert.",
            "NOT_A_PDF",
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypt_blank(reader):
            raise DocumentProblem(
                "the PDF is encrypted with a password",
                "Remove the password first (e.g. `qpdf --decrypt --password=... in.pdf "
                "out.pdf`) and run again with the decrypted file.",
                "PDF_ENCRYPTED",
            )
        _ = len(reader.pages)
    except DocumentProblem:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise DocumentProblem(
            f"the PDF is corrupt and cannot be read ({type(exc).__name__}: {exc})",
            "Re-export or repair it (e.g. `qpdf in.pdf out.pdf`) and run again.",
            "PDF_CORRUPT",
        ) from exc
    if len(reader.pages) == 0:
        raise DocumentProblem(
            "the PDF has no pages", "Pass a PDF with at least one page.", "PDF_NO_PAGES"
        )
    return reader


def _quiet_pypdf() -> None:
    """Keep pypdf's repair warnings ("EOF marker not found", ...) off stderr.

    The problems that matter become :class:`DocumentProblem` messages on the step; the
    records still reach any logging handler the application configures.
    """
    logger = logging.getLogger("pypdf")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def _decrypt_blank(reader: PdfReader) -> bool:
    try:
        return bool(reader.decrypt(""))
    except Exception:  # noqa: BLE001 - missing crypto backends surface as assorted errors
        return False


def page_count(data: bytes) -> int:
    """Number of pages of a PDF (raises DocumentProblem like :func:`open_pdf`)."""
    return len(open_pdf(data).pages)


def page_texts(data: bytes) -> list[str]:
    """The text of every page, columns kept apart (see the module docstring).

    Raises:
        DocumentProblem: as :func:`open_pdf`.
    """
    reader = open_pdf(data)
    texts = []
    for page in reader.pages:
        try:
            raw = page.extract_text(extraction_mode="layout")
        except Exception:  # noqa: BLE001 - layout mode trips on some fonts; plain mode copes
            raw = page.extract_text() or ""
        texts.append(tidy_layout(raw))
    return texts


def tidy_layout(text: str) -> str:
    """Strip trailing spaces, the common left margin and runs of blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    margins = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    cut = min(margins, default=0)
    out: list[str] = []
    for line in lines:
        line = line[cut:] if line.strip() else ""
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


# ----------------------------------------------------------------------------- pages


def _write(writer: Any) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def page_subset(data: bytes, pages: list[int]) -> bytes:
    """A new PDF with ``pages`` (1-based, in the order given) of ``data``.

    Raises:
        DocumentProblem: unreadable PDF, or a page number out of range.
    """
    from pypdf import PdfWriter

    reader = open_pdf(data)
    writer = PdfWriter()
    total = len(reader.pages)
    for number in pages:
        if not 1 <= number <= total:
            raise DocumentProblem(
                f"page {number} does not exist (the PDF has {total})",
                "Use 1-based page numbers within the document.",
                "PAGE_OUT_OF_RANGE",
            )
        writer.add_page(reader.pages[number - 1])
    return _write(writer)


def split_pages(data: bytes) -> list[bytes]:
    """One single-page PDF per page of ``data``."""
    return [page_subset(data, [n]) for n in range(1, page_count(data) + 1)]


def page_chunks(data: bytes, per_item: int = 1) -> list[tuple[str, bytes]]:
    """``[(page range, PDF)]`` with ``per_item`` pages each (``"3"`` or ``"3-4"``).

    Raises:
        DocumentProblem: as :func:`open_pdf`.
    """
    if per_item == 1:
        return [(str(n), page) for n, page in enumerate(split_pages(data), start=1)]
    total = page_count(data)
    chunks = []
    for first in range(1, total + 1, per_item):
        last = min(first + per_item - 1, total)
        label = str(first) if first == last else f"{first}-{last}"
        chunks.append((label, page_subset(data, list(range(first, last + 1)))))
    return chunks


def merge_pdfs(documents: list[bytes]) -> bytes:
    """The pages of every PDF in ``documents``, in order, as one PDF."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for data in documents:
        for page in open_pdf(data).pages:
            writer.add_page(page)
    return _write(writer)


def as_pdf(data: bytes, mime: str) -> bytes:
    """``data`` as a PDF: PDFs unchanged, PNG/JPEG as one page, text as plain pages.

    Raises:
        DocumentProblem: an unsupported type, or an image the writer cannot embed.
    """
    if mime == "application/pdf":
        open_pdf(data)
        return data
    if not data.strip():
        raise DocumentProblem(
            "the file is empty (0 bytes of content)",
            "Upload the document again; the copy the run received has no content.",
            "DOCUMENT_EMPTY",
        )
    if mime in IMAGE_MIMES:
        return pdfwrite.image_pdf(data, mime)
    if is_text_mime(mime):
        return pdfwrite.text_pdf(decode_text(data))
    raise DocumentProblem(
        f"cannot turn a {mime} file into a PDF",
        "Convert it to PDF first (office formats: `libreoffice --convert-to pdf`).",
        "UNSUPPORTED_DOCUMENT_TYPE",
    )


# ----------------------------------------------------------------------------- forms


@record
class FormField:
    """One AcroForm field: ``kind`` is ``text``, ``checkbox``, ``choice`` or ``other``."""

    name: str
    kind: str
    value: Any = None
    options: list[str] = field(default_factory=list)
    description: str = ""


def _options(raw: dict[str, Any]) -> list[str]:
    states = [str(s).lstrip("/") for s in raw.get("/_States_", []) if str(s) != "/Off"]
    if states:
        return states
    opts = raw.get("/Opt") or []
    return [str(o[-1] if isinstance(o, list) else o) for o in opts]


def form_fields(data: bytes) -> list[FormField]:
    """The fillable fields of a PDF, in document order (empty when it has no form)."""
    kinds = {"/Tx": "text", "/Btn": "checkbox", "/Ch": "choice"}
    raw_fields = open_pdf(data).get_fields() or {}
    out = []
    for name, raw in raw_fields.items():
        kind = kinds.get(str(raw.get("/FT")), "other")
        value = raw.get("/V")
        out.append(
            FormField(
                name=str(name),
                kind=kind,
                value=None if value is None else str(value).lstrip("/"),
                options=_options(raw),
                description=str(raw.get("/TU", "") or ""),
            )
        )
    return out


def fill_form(data: bytes, values: dict[str, str]) -> bytes:
    """``data`` with its form fields set to ``values`` (field name -> text or state).

    A checkbox value must be the field's on-state (see :attr:`FormField.options`) or
    ``Off``. Viewers are asked to regenerate appearances, so the values show everywhere.
    """
    from pypdf import PdfWriter
    from pypdf.generic import NameObject

    reader = open_pdf(data)
    boxes = {n for n, raw in (reader.get_fields() or {}).items() if raw.get("/FT") == "/Btn"}
    writer = PdfWriter(clone_from=reader)
    writer.set_need_appearances_writer(True)
    texts = {k: v for k, v in values.items() if k not in boxes}
    states = {k: NameObject("/" + v.lstrip("/")) for k, v in values.items() if k in boxes}
    for page in writer.pages:
        if texts:
            writer.update_page_form_field_values(page, texts, auto_regenerate=False)
        for annot in page.get("/Annots") or []:
            widget = annot.get_object()
            parent = widget.get("/Parent")
            name = widget.get("/T") or (parent.get_object().get("/T") if parent else None)
            if str(name) in states:
                holder = parent.get_object() if parent and "/T" not in widget else widget
                holder[NameObject("/V")] = states[str(name)]
                widget[NameObject("/AS")] = states[str(name)]
    return _write(writer)
