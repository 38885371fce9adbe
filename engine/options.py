"""The knobs of an Engine: database path, retry policy, model provider, execution options.

Plain values, read by :mod:`engine.core` when it opens its store and by
:mod:`engine.launch` / :mod:`engine.runner` for every execution.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from engine.contracts.errors import PermanentError, UsageError
from engine.contracts.frozen import record

DEFAULT_DB = "stepwell.db"


def default_db_path() -> str:
    """``$STEPWELL_DB`` if set, else ``./stepwell.db``."""
    return os.environ.get("STEPWELL_DB") or DEFAULT_DB


def db_path(db: str | Path | None) -> str:
    """The database a ``--db`` value names (see :mod:`store.urls`); ``sqlite://`` (no
    path) is the in-memory store, like SQLAlchemy.

    Args:
        db: a path, a ``sqlite:///`` or ``postgresql://`` URL, or None for
            :func:`default_db_path`.

    Returns:
        A SQLite file path, ``:memory:``, or a ``postgresql://`` URL.

    Raises:
        UsageError: a URL with an unknown scheme.
    """
    from store.urls import parse_db

    return parse_db(db).target


def model_provider(provider: Any, env: Mapping[str, str] | None) -> Any:
    """A model provider from an instance, a name, or a ScriptedProvider script.

    Args:
        provider: a provider instance, a name (``offline``, ``openai``), or a mapping
            (the script of a :class:`~blocks.providers.scripted.ScriptedProvider`).
        env: where a named provider reads its settings (None: ``os.environ``).

    Returns:
        The provider instance.

    Raises:
        UsageError: ``provider`` is a name no provider answers to.
    """
    from blocks.providers import resolve_provider

    if isinstance(provider, str):
        try:
            return resolve_provider(provider, env if env is not None else os.environ)
        except PermanentError as exc:
            raise UsageError(exc.message) from None
    if isinstance(provider, Mapping):
        from blocks.providers.scripted import ScriptedProvider

        return ScriptedProvider(provider)
    return provider


@record
class RetryPolicy:
    """How a block's transient and quota errors are retried.

    Attributes:
        max_attempts: attempts in all, the first included (1 = never retry).
        initial_interval_s: wait before the first retry.
        backoff: multiplier applied to the wait after each retry.
        max_interval_s: the wait never exceeds this.
        jitter: fraction of random spread added to each wait (0 = none).
    """

    max_attempts: int = 3
    initial_interval_s: float = 0.5
    backoff: float = 2.0
    max_interval_s: float = 30.0
    jitter: float = 0.1

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based).

        A server's ``Retry-After`` lengthens the wait, up to ``max_interval_s``: a
        hostile or broken API cannot park a step for longer than the policy allows.
        """
        wait = min(self.max_interval_s,
                   self.initial_interval_s * self.backoff ** (retry_number - 1))
        if self.jitter:
            wait *= 1 + random.uniform(0, self.jitter)
        if retry_after is not None and not math.isnan(retry_after):
            wait = max(wait, min(retry_after, self.max_interval_s))
        return wait

    @classmethod
    def from_config(cls, raw: Any, default: RetryPolicy) -> RetryPolicy:
        """A block's ``config.retry`` (mapping or model) over the engine default."""
        if raw is None:
            return default
        values = raw if isinstance(raw, Mapping) else raw.model_dump(exclude_none=True)
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**{**{f: getattr(default, f) for f in cls.__dataclass_fields__}, **known})


#: A run's environment: one mapping for every run, or one per organization.
RunEnvironment = Mapping[str, str] | Callable[[str], Mapping[str, str]]


@record
class ExecutionOptions:
    """The engine-wide knobs every execution uses.

    Attributes:
        max_concurrency: block handlers running at once.
        retry: default retry policy.
        env: environment for ``${NAME}`` substitution and secrets (None: ``os.environ``),
            or a function of the organization id that returns that organization's.
        services: services handed to blocks.
        executor: where attempts of work blocks run (:mod:`engine.executors`); None
            runs them in the run's process.
    """

    max_concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    env: RunEnvironment | None = None
    services: Mapping[str, Any] = field(default_factory=dict)
    executor: Any = None
