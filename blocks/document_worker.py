"""PDF work in a killable subprocess: ``python -P -m blocks.document_worker``.

Hostile PDFs are cheap to write and expensive to read (streams that inflate a
thousandfold, pages that share one huge content stream, deep object trees). So the
document blocks never parse a PDF in the engine's process: :func:`run_pdf_job` runs one
function of :mod:`blocks.pdf` in a worker started by :mod:`blocks.sandbox`, with

* wall time (the worker is killed), CPU time and memory (rlimits) from
  :class:`~engine.contracts.policy.DocumentLimits`;
* a page budget and an inflated-bytes budget, checked before the real work: the page
  count, and the decoded size of every page's content, counted once per page (a stream
  shared by many pages counts many times, as reading them costs);
* pypdf's own per-stream limits (``pypdf.Configuration``: decompressed output, declared
  lengths, image buffers), lowered to the inflated budget;
* the isolation layers of confined workers when the policy confines workers.

Cancelling the caller kills the worker at once, so a cancelled step stops. A caller
that cannot await (a split_by_key review approved with corrected pages, cut while its
run resumes) uses :func:`run_pdf_job_blocking`: the same worker under the same budgets,
driven from a thread of its own while the caller waits.

Protocol: stdin and stdout carry one frame each: a 4-byte big-endian length, a JSON
header, then the raw byte strings it refers to. Values are JSON with byte strings as
``{"$b": index}``, :class:`~blocks.pdf.FormField` as ``{"$form": {...}}`` and objects
as ``{"$d": {...}}``; decoding builds nothing else, so a compromised worker can return
wrong data but cannot make the parent run code.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.contracts.policy import DocumentLimits

#: The blocks.pdf functions a worker may run.
FUNCTIONS = frozenset({"page_texts", "page_count", "page_subset", "split_pages",
                       "page_chunks", "merge_pdfs", "as_pdf", "form_fields", "fill_form"})
MB = 1024 * 1024


# ----------------------------------------------------------------------------- codec


def encode(value: Any) -> bytes:
    """One frame holding ``value`` (JSON types, bytes, FormField)."""
    blobs: list[bytes] = []

    def walk(item: Any) -> Any:
        if isinstance(item, bytes | bytearray):
            blobs.append(bytes(item))
            return {"$b": len(blobs) - 1}
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return {"$form": {f.name: walk(getattr(item, f.name))
                              for f in dataclasses.fields(item)}}
        if isinstance(item, dict):
            return {"$d": {str(k): walk(v) for k, v in item.items()}}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    header = json.dumps({"value": walk(value), "blobs": [len(b) for b in blobs]}).encode()
    return struct.pack(">I", len(header)) + header + b"".join(blobs)


def decode(frame: bytes) -> Any:
    """The value of a frame made by :func:`encode`.

    Raises:
        ValueError: the frame is malformed.
    """
    if len(frame) < 4:
        raise ValueError("truncated frame")
    (size,) = struct.unpack(">I", frame[:4])
    header = json.loads(frame[4:4 + size])
    blobs, offset = [], 4 + size
    for length in header["blobs"]:
        blobs.append(frame[offset:offset + int(length)])
        offset += int(length)
    if offset != len(frame):
        raise ValueError("frame length mismatch")

    def build(item: Any) -> Any:
        if isinstance(item, list):
            return [build(v) for v in item]
        if not isinstance(item, dict):
            return item
        if "$b" in item:
            return blobs[int(item["$b"])]
        if "$d" in item:
            return {str(k): build(v) for k, v in item["$d"].items()}
        if "$form" in item:
            from blocks.pdf import FormField

            raw = {k: build(v) for k, v in item["$form"].items()}
            return FormField(name=str(raw["name"]), kind=str(raw["kind"]), value=raw["value"],
                             options=[str(o) for o in raw["options"]],
                             description=str(raw["description"]))
        raise ValueError("unknown value in frame")

    return build(header["value"])


# ----------------------------------------------------------------------------- parent


async def run_pdf_job(fn: str, *args: Any, limits: DocumentLimits, confine: bool = False,
                      user: str | None = None) -> Any:
    """``blocks.pdf.<fn>(*args)`` in a worker under ``limits`` (see the module docstring).

    Args:
        fn: a name in :data:`FUNCTIONS`.
        args: its arguments (bytes, JSON values).
        limits: the budgets.
        confine: apply the isolation layers of confined workers.
        user: the worker user when confining as root.

    Returns:
        What the function returned.

    Raises:
        DocumentProblem: the document is unusable or over a budget (the message says
            which), or the worker failed.
    """
    from blocks.pdf import DocumentProblem
    from blocks.sandbox import WorkerSpec, run_worker
    from engine.contracts.policy import WorkerLimits

    request = encode({"fn": fn, "args": list(args), "max_pages": limits.max_pages,
                      "max_inflated": limits.max_inflated_mb * MB})
    spec = WorkerSpec(module="blocks.document_worker", confine=confine, user=user,
                      limits=WorkerLimits(memory_mb=limits.memory_mb,
                                          cpu_seconds=limits.cpu_seconds, processes=16,
                                          open_files=256))
    outcome = await run_worker(spec, request, timeout=limits.wall_seconds)
    over = DocumentProblem(
        f"reading it went over the document budget ({_over_what(outcome, limits)})",
        "Pass a simpler or smaller PDF (or print it to a new PDF first).",
        "DOCUMENT_TOO_COMPLEX")
    if outcome.timed_out or outcome.returncode in (-9, -24, 137, 152):
        raise over
    try:
        response = decode(outcome.stdout)
    except (ValueError, KeyError, IndexError):
        if outcome.unconfined:
            raise DocumentProblem("the document sandbox is not available here",
                                  f"See docs/security.md ({outcome.stderr.strip()[-200:]}).",
                                  "SANDBOX_UNAVAILABLE") from None
        raise over from None
    if not response.get("ok"):
        raise DocumentProblem(str(response.get("problem")), str(response.get("fix") or ""),
                              str(response.get("code") or "PDF_CORRUPT"))
    return response["value"]


def run_pdf_job_blocking(fn: str, *args: Any, limits: DocumentLimits, confine: bool = False,
                         user: str | None = None) -> Any:
    """:func:`run_pdf_job` for a synchronous caller (even one inside an event loop).

    The job runs on a fresh event loop in a thread of its own, and the caller's thread
    waits for it; the worker is killed at ``limits.wall_seconds`` like any other.

    Args / Returns / Raises: as :func:`run_pdf_job`.
    """
    import functools
    import threading

    import anyio

    done: dict[str, Any] = {}

    def body() -> None:
        try:
            done["value"] = anyio.run(functools.partial(
                run_pdf_job, fn, *args, limits=limits, confine=confine, user=user))
        except Exception as exc:  # noqa: BLE001 - raised again in the waiting caller
            done["error"] = exc

    thread = threading.Thread(target=body, name=f"stepwell-pdf-{fn}", daemon=True)
    thread.start()
    thread.join()
    if "error" in done:
        raise done["error"]
    return done["value"]


def _over_what(outcome: Any, limits: DocumentLimits) -> str:
    if outcome.timed_out:
        return f"more than {limits.wall_seconds:g} s"
    if outcome.returncode in (-24, 152):
        return f"more than {limits.cpu_seconds} s of CPU"
    return f"killed: more than {limits.memory_mb} MB of memory or {limits.cpu_seconds} s of CPU"


# ----------------------------------------------------------------------------- worker


def check_budget(data: bytes, max_pages: int, max_inflated: int) -> None:
    """Refuse a PDF with too many pages or too much page content to read.

    Raises:
        DocumentProblem: ``DOCUMENT_TOO_LARGE``, or what :func:`blocks.pdf.open_pdf` raises.
    """
    from blocks.pdf import DocumentProblem, open_pdf

    reader = open_pdf(data)
    pages = len(reader.pages)
    if pages > max_pages:
        raise DocumentProblem(f"the PDF has {pages} pages, more than the {max_pages} allowed",
                              "Split it into smaller documents first.", "DOCUMENT_TOO_LARGE")
    total = 0
    for page in reader.pages:
        contents = page.get_contents()
        total += len(contents.get_data()) if contents is not None else 0
        if total > max_inflated:
            raise DocumentProblem(
                f"its pages hold more than {max_inflated // MB} MB of content once "
                "decompressed (shared streams count once per page)",
                "Pass a simpler PDF, or print it to a new PDF first.", "DOCUMENT_TOO_LARGE")


def _limit_pypdf(max_stream: int) -> None:
    """Lower pypdf's per-stream limits to the budget (this process only)."""
    import dataclasses

    import pypdf

    known = {f.name for f in dataclasses.fields(pypdf.Configuration)}
    wanted: dict[str, Any] = {name: max_stream for name in (
        "maximum_declared_stream_length", "array_based_stream_maximum_output_length",
        "jbig2_maximum_output_length", "lzw_maximum_output_length",
        "run_length_maximum_output_length", "zlib_maximum_output_length",
        "brotli_maximum_output_length", "image_maximum_buffer_size")}
    wanted["jbig2dec_binary"] = None  # no external decoder
    pypdf.overwrite_configuration(**{k: v for k, v in wanted.items() if k in known})


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Run one job: ``{fn, args, max_pages, max_inflated}`` -> ``{ok, value}`` or a problem."""
    from blocks import pdf

    name = request.get("fn")
    if name not in FUNCTIONS:
        return {"ok": False, "problem": f"unknown function {name!r}", "fix": "",
                "code": "DOCUMENT_WORKER_ERROR"}
    _limit_pypdf(int(request["max_inflated"]))
    try:
        for arg in request["args"]:
            for item in arg if isinstance(arg, list) else [arg]:
                if isinstance(item, bytes) and b"%PDF" in item[:1024]:
                    check_budget(item, int(request["max_pages"]), int(request["max_inflated"]))
        return {"ok": True, "value": getattr(pdf, str(name))(*request["args"])}
    except pdf.DocumentProblem as problem:
        return {"ok": False, "problem": problem.problem, "fix": problem.fix,
                "code": problem.code}
    except MemoryError:
        return {"ok": False, "problem": "reading it needs more memory than allowed",
                "fix": "Pass a simpler PDF.", "code": "DOCUMENT_TOO_LARGE"}
    except Exception as exc:  # noqa: BLE001 - pypdf raises assorted errors on bad input
        return {"ok": False, "problem": f"the PDF cannot be processed ({type(exc).__name__}: "
                f"{exc})", "fix": "Re-export or repair it (e.g. `qpdf in.pdf out.pdf`).",
                "code": "PDF_CORRUPT"}


def main() -> None:
    """Confine, read one frame, answer one frame."""
    from blocks.confine import apply_from_argv

    apply_from_argv(sys.argv)
    request = decode(sys.stdin.buffer.read())
    response = encode(handle(request))
    sys.stdout.buffer.write(response)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
