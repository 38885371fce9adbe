"""Who may run what: the security policy a host hands its blocks as a service.

The policy is data. The host that runs workflows decides it once (the CLI and
``Engine`` use :meth:`SecurityPolicy.local`; ``stepwell serve`` states its own at
start-up) and passes it in ``services[SECURITY_SERVICE]``; blocks read it with
:func:`policy_of` and enforce their part:

* :class:`CodePolicy`: ``open`` (a personal machine: ``python:`` references and worker
  code run as the user), ``sandboxed`` (``python:`` only from :attr:`python_allowlist`,
  ``code`` only in a confined worker), ``none`` (no code blocks at all);
* :class:`WorkerLimits`: the rlimits of a function worker, per block within the
  policy's maximums;
* :class:`EgressPolicy`: which addresses ``api_call`` may reach and how much it reads;
* :class:`DocumentLimits`: the budgets of the subprocess that reads PDFs.

Nothing here imports the rest of the project, so blocks, the engine and the server
share one vocabulary.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Mapping
from dataclasses import field, fields, replace
from enum import StrEnum
from typing import Any

from engine.contracts.frozen import record

#: ``services`` key of the :class:`SecurityPolicy`.
SECURITY_SERVICE = "security_policy"
MB = 1024 * 1024


class CodePolicy(StrEnum):
    """Who may run code through ``function`` blocks."""

    OPEN = "open"
    SANDBOXED = "sandboxed"
    NONE = "none"


@record
class WorkerLimits:
    """Resource limits of one function worker (None: not limited).

    Attributes:
        memory_mb: address space (``RLIMIT_AS``); allocations past it fail.
        cpu_seconds: CPU time (``RLIMIT_CPU``); the worker is killed past it.
        processes: processes of the worker's user (``RLIMIT_NPROC``), applied when the
            worker runs under a user of its own (see docs/security.md).
        file_size_mb: largest file the worker may write (``RLIMIT_FSIZE``).
        open_files: file descriptors (``RLIMIT_NOFILE``).
    """

    memory_mb: int | None = None
    cpu_seconds: int | None = None
    processes: int | None = None
    file_size_mb: int | None = None
    open_files: int | None = None

    def capped(self, maximum: WorkerLimits) -> WorkerLimits:
        """Each limit no larger than ``maximum``'s (a missing limit takes the maximum)."""
        values: dict[str, int | None] = {}
        for f in fields(self):
            mine, cap = getattr(self, f.name), getattr(maximum, f.name)
            values[f.name] = cap if mine is None else mine if cap is None else min(mine, cap)
        return WorkerLimits(**values)

    def over(self, requested: Mapping[str, Any]) -> WorkerLimits:
        """These limits with the non-None values of ``requested`` (a block's config)."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: int(v) for k, v in requested.items()
                                if k in known and v is not None})


#: Limits of a shared server's workers when a block sets none.
SHARED_WORKER_DEFAULTS = WorkerLimits(memory_mb=1024, cpu_seconds=60, processes=64,
                                      file_size_mb=64, open_files=256)
#: The most a block may ask for on a shared server.
SHARED_WORKER_MAXIMUM = WorkerLimits(memory_mb=4096, cpu_seconds=300, processes=256,
                                     file_size_mb=1024, open_files=1024)


@record
class EgressPolicy:
    """Where ``api_call`` may connect, and how much of an answer it keeps.

    Attributes:
        restricted: refuse loopback, private, link-local (cloud metadata), multicast,
            reserved and unspecified addresses unless allowlisted; checked after DNS
            resolution and again on every redirect.
        allowlist: host names (``api.internal``, ``*.corp.example``) and networks
            (``10.1.0.0/16``, ``127.0.0.1``) allowed even when restricted.
        max_response_bytes: longer response bodies fail the step (``RESPONSE_TOO_LARGE``).
        max_redirects: redirects followed per request.
        cross_origin_redirects: ``strip`` (follow, dropping every header the block set)
            or ``refuse``.
    """

    restricted: bool = False
    allowlist: tuple[str, ...] = ()
    max_response_bytes: int = 10 * MB
    max_redirects: int = 5
    cross_origin_redirects: str = "strip"

    def allows_host(self, host: str) -> bool:
        """True when ``host`` (a name) matches a name pattern of the allowlist."""
        name = host.lower().rstrip(".")
        return any("/" not in p and fnmatch.fnmatchcase(name, p.lower()) for p in self.allowlist)


@record
class DocumentLimits:
    """Budgets of the subprocess that opens, reads and rewrites PDFs.

    Attributes:
        wall_seconds: the subprocess is killed after this long.
        cpu_seconds: CPU time (``RLIMIT_CPU``).
        memory_mb: address space (``RLIMIT_AS``).
        max_pages: documents with more pages are refused.
        max_inflated_mb: page content bytes read per call once decompressed (a stream
            shared by several pages counts once per page), and the most any single
            stream may inflate to.

    The defaults suit a personal machine; :meth:`shared` is what a shared server uses.
    """

    wall_seconds: float = 600.0
    cpu_seconds: int = 600
    memory_mb: int = 4096
    max_pages: int = 20_000
    max_inflated_mb: int = 256

    @classmethod
    def shared(cls) -> DocumentLimits:
        """The budgets of a shared server (a minute, 1 GB, 2,000 pages, 16 MB)."""
        return cls(wall_seconds=60.0, cpu_seconds=60, memory_mb=1024, max_pages=2000,
                   max_inflated_mb=16)


@record
class SecurityPolicy:
    """What the host allows (see the module docstring).

    Attributes:
        code: who may run code.
        python_allowlist: ``module:function`` patterns (``*`` wildcards) ``python:``
            references may name when ``code`` is ``sandboxed``.
        confine_workers: function workers get a minimal environment, a fresh temporary
            directory and every isolation layer the platform offers (required ones
            fail closed).
        declared_secrets_only: ``${NAME}`` placeholders and secret mounts resolve from
            the run's declared secrets only; an unknown name fails the step.
        worker_user: the user workers switch to when the host runs as root (name or
            uid; None: ``nobody``).
        worker_defaults / worker_maximum: limits when a block sets none / the most it
            may set.
        egress: the ``api_call`` rules.
        documents: the PDF subprocess budgets.
    """

    code: CodePolicy = CodePolicy.OPEN
    python_allowlist: tuple[str, ...] = ()
    confine_workers: bool = False
    declared_secrets_only: bool = False
    worker_user: str | None = None
    worker_defaults: WorkerLimits = field(default_factory=WorkerLimits)
    worker_maximum: WorkerLimits = field(default_factory=WorkerLimits)
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    documents: DocumentLimits = field(default_factory=DocumentLimits)

    @classmethod
    def local(cls) -> SecurityPolicy:
        """A personal machine: code runs as the user, any address is reachable."""
        return cls()

    @classmethod
    def shared(cls, *, code: CodePolicy = CodePolicy.SANDBOXED,
               python_allowlist: tuple[str, ...] = (), egress_allowlist: tuple[str, ...] = (),
               worker_user: str | None = None) -> SecurityPolicy:
        """A server several organizations (or the network) reach."""
        return cls(code=code, python_allowlist=python_allowlist, confine_workers=True,
                   declared_secrets_only=True, worker_user=worker_user, worker_defaults=SHARED_WORKER_DEFAULTS,
                   worker_maximum=SHARED_WORKER_MAXIMUM,
                   egress=EgressPolicy(restricted=True, allowlist=egress_allowlist),
                   documents=DocumentLimits.shared())

    def allows_python(self, reference: str) -> bool:
        """True when a ``python: module:function`` reference may run in-process."""
        if self.code is CodePolicy.OPEN:
            return True
        if self.code is CodePolicy.NONE:
            return False
        return any(python_pattern_allows(p, reference) for p in self.python_allowlist)

    def worker_limits(self, requested: Mapping[str, Any] | None) -> WorkerLimits:
        """The limits of one worker: the block's request over the defaults, capped."""
        return self.worker_defaults.over(requested or {}).capped(self.worker_maximum)


def _segments_match(pattern: str, name: str) -> bool:
    """``fnmatch`` per dotted segment: a ``*`` never crosses a dot."""
    want, have = pattern.split("."), name.split(".")
    return len(want) == len(have) and all(
        fnmatch.fnmatchcase(h, w) for w, h in zip(want, have, strict=True))


def _defined_in(module_name: str, attr_path: str) -> bool:
    """True when ``module_name:attr_path`` resolves to something the module defines.

    Every step of the path must be an object (not another module) whose ``__module__``
    is ``module_name``: a name the module imported (``os``, ``system``) is refused.
    """
    try:
        target: Any = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - unverifiable: refuse; run time names the error
        return False
    for part in attr_path.split("."):
        target = getattr(target, part, None)
        if target is None or isinstance(target, type(importlib)):
            return False
        if getattr(target, "__module__", None) != module_name:
            return False
    return True


def python_pattern_allows(pattern: str, reference: str) -> bool:
    """True when the allowlist ``pattern`` admits the ``python:`` ``reference``.

    A pattern equal to the reference admits it as written. Otherwise the module and the
    attribute path are matched segment by segment (``*`` never crosses a dot, so
    ``pkg.mod:*`` admits ``pkg.mod:func`` but not ``pkg.mod:os.system``), and the object
    reached must be defined in the module named (its ``__module__``), so a wildcard never
    reaches what the module merely imported.

    Args:
        pattern: a ``module:function`` pattern from ``--allow-python``.
        reference: a block's ``python:`` reference.
    """
    if reference == pattern:
        return True
    want_module, _, want_attr = pattern.partition(":")
    module_name, sep, attr_path = reference.partition(":")
    if not sep or not attr_path or not want_attr:
        return False
    if not (_segments_match(want_module, module_name)
            and _segments_match(want_attr, attr_path)):
        return False
    return _defined_in(module_name, attr_path)


def policy_of(services: Mapping[str, Any]) -> SecurityPolicy:
    """The policy in ``services``, or the local one when the host set none."""
    policy = services.get(SECURITY_SERVICE)
    return policy if isinstance(policy, SecurityPolicy) else SecurityPolicy.local()
