"""PDF pages as PNG images, rendered in a budgeted subprocess.

The browser never receives the PDF to render itself, and the server never parses one
in its own process: page counts and pages come from :mod:`blocks.page_worker`, started by
:func:`blocks.sandbox.run_worker` under the server policy's document budgets
(:class:`~engine.contracts.policy.DocumentLimits`, capped at :data:`UI_WALL_S`,
:data:`UI_CPU_S` and :data:`UI_MEMORY_MB` for a page view) and isolation
(``confine_workers``), after the same page and inflated-bytes checks the document
blocks make. A page is rendered at :data:`SCALE` (about 108 dpi), scaled down so that
its longest side is at most :data:`MAX_SIDE_PX` pixels (a 100-inch page is 2,000 px,
not 10,800). At most :data:`CONCURRENT_RENDERS` workers run at once; one worker renders
a run of pages (up to :data:`BATCH_PAGES` or :data:`BATCH_BYTES`), so a document's
images mostly come from one subprocess. PNGs are kept in an in-memory cache bounded by
:data:`CACHE_BYTES`, keyed by file id and page. A PDF over a budget (or unreadable)
shows no pages. Only files that a step or review visible to the viewer references are
served (the routes check that first).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from typing import Any

from engine.contracts.errors import StepwellError
from engine.contracts.files import FileStore
from engine.contracts.policy import DocumentLimits, SecurityPolicy
from engine.contracts.values import FileRef

SCALE = 1.5
MAX_SIDE_PX = 2000
MAX_PAGES_SHOWN = 20
CONCURRENT_RENDERS = 2
BATCH_PAGES = 8
BATCH_BYTES = 4 * 1024 * 1024
CACHE_BYTES = 64 * 1024 * 1024
COUNTS_KEPT = 4096
UI_WALL_S = 30.0
UI_CPU_S = 30
UI_MEMORY_MB = 1024
WORKER_MODULE = "blocks.page_worker"  # light: no FastAPI in the worker
log = logging.getLogger("stepwell.server.ui")


def file_ref(file_id: str, filename: str = "", mime_type: str = "") -> FileRef:
    """A reference to a stored file by its id (what ``FileStore.read_bytes`` takes)."""
    return FileRef(id=file_id, filename=filename or file_id, mime_type=mime_type)


def ui_limits(limits: DocumentLimits) -> DocumentLimits:
    """The policy's document budgets, capped for rendering a page view."""
    return DocumentLimits(wall_seconds=min(limits.wall_seconds, UI_WALL_S),
                          cpu_seconds=min(limits.cpu_seconds, UI_CPU_S),
                          memory_mb=min(limits.memory_mb, UI_MEMORY_MB),
                          max_pages=limits.max_pages,
                          max_inflated_mb=limits.max_inflated_mb)


def render_job(data: bytes, first: int, count: int, *, limits: DocumentLimits,
               confine: bool = False, user: str | None = None) -> dict[str, Any]:
    """``{pages, pngs}`` of ``data`` from :mod:`blocks.page_worker`, run under ``limits``.

    Raises:
        DocumentProblem: the PDF is unusable or over a budget, or the worker failed.
    """
    import anyio

    from blocks.document_worker import MB, decode, encode
    from blocks.pdf import DocumentProblem
    from blocks.sandbox import WorkerSpec, run_worker
    from engine.contracts.policy import WorkerLimits

    request = encode({"pdf": data, "first": first, "count": count, "scale": SCALE,
                      "max_side": MAX_SIDE_PX, "max_bytes": BATCH_BYTES,
                      "max_pages": limits.max_pages,
                      "max_inflated": limits.max_inflated_mb * MB})
    spec = WorkerSpec(module=WORKER_MODULE, confine=confine, user=user,
                      limits=WorkerLimits(memory_mb=limits.memory_mb,
                                          cpu_seconds=limits.cpu_seconds, processes=16,
                                          open_files=256))

    done: dict[str, Any] = {}

    def body() -> None:  # a fresh event loop: callers may be inside one
        try:
            done["outcome"] = anyio.run(functools.partial(
                run_worker, spec, request, timeout=limits.wall_seconds))
        except Exception as exc:  # noqa: BLE001 - raised again in the waiting caller
            done["error"] = exc

    thread = threading.Thread(target=body, name="stepwell-ui-pages", daemon=True)
    thread.start()
    thread.join()
    if "error" in done:
        raise done["error"]
    outcome = done["outcome"]
    over = DocumentProblem(f"rendering it went over the page budget (exit "
                           f"{outcome.returncode}{', timed out' if outcome.timed_out else ''})",
                           "Open the file itself instead.", "DOCUMENT_TOO_COMPLEX")
    if outcome.timed_out or outcome.too_much_output:
        raise over
    try:
        response = decode(outcome.stdout)
    except (ValueError, KeyError, IndexError):
        raise over from None
    if not response.get("ok"):
        raise DocumentProblem(str(response.get("problem")), str(response.get("fix") or ""),
                              str(response.get("code") or "PDF_CORRUPT"))
    value: dict[str, Any] = response["value"]
    return value


class PageRenderer:
    """Renders (in budgeted subprocesses) and caches PDF pages.

    Args:
        files: the file store holding the documents (the server's store's).
        policy: the server's security policy (document budgets, worker isolation).
    """

    def __init__(self, files: FileStore, policy: SecurityPolicy | None = None) -> None:
        self.files = files
        policy = policy or SecurityPolicy.local()
        self.limits = ui_limits(policy.documents)
        self.confine = policy.confine_workers
        self.user = policy.worker_user
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._cached_bytes = 0
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._renders = threading.BoundedSemaphore(CONCURRENT_RENDERS)
        self._files = [threading.Lock() for _ in range(16)]  # one job per file at a time

    def page_count(self, file_id: str) -> int:
        """How many pages the PDF has (0 when it cannot be read as a PDF or is over a
        budget). The first pages are rendered by the same subprocess."""
        with self._lock:
            known = self._counts.get(file_id)
        if known is not None:
            return known
        with self._files[hash(file_id) % len(self._files)]:
            with self._lock:
                known = self._counts.get(file_id)
            if known is not None:
                return known
            self._render(file_id, 0)
        with self._lock:
            return self._counts.get(file_id, 0)

    def page_png(self, file_id: str, index: int) -> bytes | None:
        """Page ``index`` (0-based) as PNG, or None when there is no such page (or the
        PDF cannot be rendered within the budgets)."""
        cached = self._cached(file_id, index)
        if cached is not None:
            return cached
        if not 0 <= index < self.page_count(file_id):
            return None
        with self._files[hash(file_id) % len(self._files)]:
            cached = self._cached(file_id, index)
            return cached if cached is not None else self._render(file_id, index)

    def _cached(self, file_id: str, index: int) -> bytes | None:
        key = (file_id, index)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
            return cached

    def _render(self, file_id: str, first: int) -> bytes | None:
        """Render pages from ``first`` into the cache, note the page count (0 on a
        problem) and return page ``first`` (None: there is none)."""
        from blocks.pdf import DocumentProblem

        try:
            data = self.files.read_bytes(file_ref(file_id))
            with self._renders:
                value = render_job(data, first, BATCH_PAGES, limits=self.limits,
                                   confine=self.confine, user=self.user)
        except (DocumentProblem, OSError, StepwellError) as exc:
            log.warning("pages of file %s not shown: %s", file_id, exc)
            value = {"pages": 0, "pngs": []}
        with self._lock:
            self._counts[file_id] = int(value["pages"])
            self._counts.move_to_end(file_id)
            while len(self._counts) > COUNTS_KEPT:
                self._counts.popitem(last=False)
            pngs = [bytes(png) for png in value["pngs"]]
            for offset, png in reversed(list(enumerate(pngs))):  # page ``first`` kept last
                self._keep((file_id, first + offset), png)
        return pngs[0] if pngs else None

    def _keep(self, key: tuple[str, int], png: bytes) -> None:
        """Cache ``png`` (the lock held), dropping the least recently used past
        :data:`CACHE_BYTES`."""
        old = self._cache.pop(key, None)
        self._cached_bytes -= len(old) if old is not None else 0
        self._cache[key] = png
        self._cached_bytes += len(png)
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped)
