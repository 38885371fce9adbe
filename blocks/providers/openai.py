"""The ``openai`` provider: any OpenAI-compatible chat-completions endpoint.

Works with OpenAI, Ollama, vLLM, llama.cpp's server and the like, through
``POST {base_url}/chat/completions`` with ``response_format: {type: json_schema}``.

Settings (environment, read by :meth:`OpenAIProvider.from_env`):

=================================  =============================================
``STEPWELL_OPENAI_BASE_URL``       default ``https://api.openai.com/v1``
``STEPWELL_OPENAI_API_KEY``        falls back to ``OPENAI_API_KEY``; optional for
                                   local servers
``STEPWELL_OPENAI_MODEL``          used when a block says no model or a Retab
                                   model name (``retab-small``); default
                                   ``gpt-4o-mini``
``STEPWELL_OPENAI_TIMEOUT``        seconds per request, default 120
``STEPWELL_OPENAI_VISION``         ``0`` for text-only models (default ``1``)
``STEPWELL_OPENAI_STRICT``         ``0`` to send ``strict: false`` always
``STEPWELL_OPENAI_TEMPERATURE``    sent when set (default: the server's)
``STEPWELL_OPENAI_PRICE``          ``input,output`` USD per million tokens, for
                                   models the price table does not know
=================================  =============================================

Errors: 429 -> :class:`QuotaError` with ``retry_after`` from ``Retry-After``; 5xx,
connection failures and timeouts -> :class:`TransientError`; other 4xx and answers that
are not JSON -> :class:`PermanentError`. Cost comes from :data:`PRICES` (USD per million
tokens, longest model-name prefix wins); an unknown model has cost ``null``.
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from blocks.pdf import FormField
from blocks.providers import (
    CallContext,
    Classification,
    ExtractionResult,
    FormMapping,
    ImageText,
    Label,
    Partition,
    PartitionResult,
    SplitPart,
    SplitResult,
    Usage,
    gather,
    total_usage,
)
from blocks.providers import openai_prompts as prompts
from blocks.providers.consensus import vote
from engine.contracts.errors import PermanentError, QuotaError, TransientError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
_RETRIED = "transient: the engine retries it per the retry policy"
#: USD per million tokens (input, output); approximate list prices.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00), "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00), "gpt-5": (1.25, 10.00), "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
}
Messages = list[dict[str, Any]]


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _json_answer(content: str) -> Any:
    text = content.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
    return json.loads(fenced.group(1) if fenced else text)


class OpenAIProvider:
    """Chat-completions client (see the module docstring). One HTTP client per call,
    so a provider can be shared across runs and event loops."""

    name = "openai"

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None,
                 model: str = DEFAULT_MODEL, timeout: float = 120.0, vision: bool = True,
                 strict: bool = True, temperature: float | None = None,
                 price: tuple[float, float] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.vision = vision
        self.strict = strict
        self.temperature = temperature
        self.price = price

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OpenAIProvider:
        """A provider configured from ``env`` (see the module docstring)."""
        price = env.get("STEPWELL_OPENAI_PRICE")
        temperature = env.get("STEPWELL_OPENAI_TEMPERATURE")
        return cls(
            base_url=env.get("STEPWELL_OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            api_key=env.get("STEPWELL_OPENAI_API_KEY") or env.get("OPENAI_API_KEY") or None,
            model=env.get("STEPWELL_OPENAI_MODEL") or DEFAULT_MODEL,
            timeout=float(env.get("STEPWELL_OPENAI_TIMEOUT") or 120),
            vision=env.get("STEPWELL_OPENAI_VISION", "1") not in ("0", "false", "no"),
            strict=env.get("STEPWELL_OPENAI_STRICT", "1") not in ("0", "false", "no"),
            temperature=float(temperature) if temperature else None,
            price=tuple(float(p) for p in price.split(",")[:2]) if price else None,  # type: ignore[arg-type]
        )

    @property
    def supports_vision(self) -> bool:
        """True unless ``STEPWELL_OPENAI_VISION=0``."""
        return self.vision

    def model_name(self, model: str | None) -> str:
        """The block's model, unless it is empty or a Retab name (``retab-*``)."""
        return model if model and not model.startswith("retab-") else self.model

    def cost(self, model: str, prompt: int, completion: int) -> float | None:
        """USD for the tokens, or None for a model without a known price."""
        price = self.price
        if price is None:
            known = [k for k in PRICES if model.startswith(k)]
            price = PRICES[max(known, key=len)] if known else None
        if price is None:
            return None
        return (prompt * price[0] + completion * price[1]) / 1_000_000

    # ------------------------------------------------------------------ transport

    async def chat(self, messages: Messages, name: str, schema: Mapping[str, Any],
                   model: str | None) -> tuple[Any, Usage]:
        """One structured-output call: the parsed JSON answer and its usage.

        Raises:
            QuotaError, TransientError, PermanentError: see the module docstring.
        """
        import httpx

        chosen = self.model_name(model)
        strict_schema, strict_ok = prompts.strict_schema(schema)
        strict = self.strict and strict_ok
        body: dict[str, Any] = {
            "model": chosen, "messages": messages,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": name, "schema": strict_schema if strict else dict(schema),
                "strict": strict}}}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(
                f"the model endpoint {url} did not answer within {self.timeout:g}s ({_RETRIED}). "
                "Raise STEPWELL_OPENAI_TIMEOUT for slow models.",
                code="MODEL_TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise TransientError(
                f"cannot reach the model endpoint {url} ({type(exc).__name__}: {exc}; "
                f"{_RETRIED}). Check STEPWELL_OPENAI_BASE_URL and that the server is up.",
                code="MODEL_UNREACHABLE") from exc
        self._raise_for_status(response, chosen)
        return self._parse(response, chosen)

    def _raise_for_status(self, response: Any, model: str) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = response.text[:500]
        if status == 429:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            raise QuotaError(
                f"the model endpoint is rate limiting (HTTP 429; quota: retried"
                f"{f' after {wait:g}s' if wait is not None else ''} per the retry policy). If it "
                "persists, run fewer steps at once or raise the block's retry.max_attempts.",
                code="MODEL_RATE_LIMITED", retry_after=wait, context={"response": detail})
        if status >= 500:
            raise TransientError(f"the model endpoint failed (HTTP {status}; {_RETRIED}). "
                                 "If it persists, check the model server's logs.",
                                 code=f"MODEL_HTTP_{status}",
                                 context={"response": detail})
        fix = {401: "Set STEPWELL_OPENAI_API_KEY (or OPENAI_API_KEY) to a valid key.",
               403: "The key may not use this model; check its permissions.",
               404: f"Check STEPWELL_OPENAI_BASE_URL ({self.base_url}) and the model name "
                    f"{model!r}."}.get(status, "Check the model name and the request "
                                               "(the endpoint's message is in the context).")
        raise PermanentError(f"the model endpoint rejected the request (HTTP {status}). {fix}",
                             code=f"MODEL_HTTP_{status}", context={"response": detail})

    def _parse(self, response: Any, model: str) -> tuple[Any, Usage]:
        try:
            payload = response.json()
        except ValueError as exc:
            raise PermanentError(
                f"the model endpoint {self.base_url} did not return JSON but "
                f"{response.headers.get('content-type') or 'an untyped body'} (a proxy or a "
                "web page?). Point STEPWELL_OPENAI_BASE_URL at an OpenAI-compatible API root "
                "(it usually ends in /v1).",
                code="MODEL_NOT_JSON", context={"response": response.text[:1000]}) from exc
        try:
            message = payload["choices"][0]["message"]
            answer = _json_answer(message.get("content") or "")
            if not isinstance(answer, dict):
                raise TypeError(f"expected a JSON object, got {type(answer).__name__}")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise PermanentError(
                f"the model did not return JSON ({type(exc).__name__}: {exc}). Use a model "
                "that supports structured output (response_format json_schema).",
                code="MODEL_NOT_JSON", context={"response": response.text[:1000]}) from exc
        raw = payload.get("usage") or {}
        used = str(payload.get("model") or model)
        prompt = int(raw.get("prompt_tokens") or 0)
        completion = int(raw.get("completion_tokens") or 0)
        return answer, Usage(model=used, prompt_tokens=prompt, completion_tokens=completion,
                             cost=self.cost(used, prompt, completion))

    # ------------------------------------------------------------------ operations

    async def extract(self, pages: Sequence[str], json_schema: Mapping[str, Any], *,
                      model: str | None, n_consensus: int, context: CallContext,
                      extra: Mapping[str, Any] | None = None) -> ExtractionResult:
        """``n_consensus`` concurrent calls, voted per leaf."""
        messages = prompts.extract_messages(pages, extra, context.instructions)
        answers = await gather(
            [lambda: self.chat(messages, "extraction", json_schema, model)] * max(1, n_consensus))
        choices = [a for a, _ in answers]
        data, likelihoods = vote(choices)
        return ExtractionResult(data=data, likelihoods=likelihoods, choices=choices,
                                usage=total_usage([u for _, u in answers]))

    async def classify(self, pages: Sequence[str], categories: Sequence[Label], *,
                       model: str | None, first_n_pages: int | None,
                       context: CallContext) -> Classification:
        """Category, reasoning, confidence and per-category scores from the model."""
        shown = pages[:first_n_pages] if first_n_pages else pages
        user = f"Categories:\n{prompts.label_list(categories)}\n\nDocument:\n" \
               f"{prompts.pages_block(shown)}"
        names = [c.name for c in categories]
        answer, usage = await self.chat(
            [{"role": "system", "content": prompts.with_instructions(
                prompts.SYSTEM_CLASSIFY, context.instructions)},
             {"role": "user", "content": user}], "classification",
            prompts.classify_schema(names), model)
        category = answer.get("category")
        if category not in names:
            raise PermanentError(f"the model chose {category!r}, which is not a configured "
                                 f"category ({', '.join(names)}).", code="MODEL_BAD_ANSWER")
        scores = {n: 0.0 for n in names}
        for item in answer.get("scores") or []:
            if isinstance(item, Mapping) and item.get("category") in scores:
                scores[item["category"]] = float(item.get("score") or 0.0)
        confidence = min(1.0, max(0.0, float(answer.get("confidence") or 0.0)))
        return Classification(category=category, reasoning=str(answer.get("reasoning", "")),
                              scores=scores, likelihood=confidence, usage=usage)

    async def split(self, pages: Sequence[str], subdocuments: Sequence[Label], *,
                    model: str | None, allow_multiple: bool,
                    context: CallContext) -> SplitResult:
        """Subdocuments and their pages, as the model sees them."""
        rule = "A type may occur several times." if allow_multiple else \
            "Each type occurs at most once."
        user = f"Subdocument types:\n{prompts.label_list(subdocuments)}\n{rule}\n\n" \
               f"Document ({len(pages)} pages):\n{prompts.pages_block(pages)}"
        answer, usage = await self.chat(
            [{"role": "system", "content": prompts.with_instructions(
                prompts.SYSTEM_SPLIT, context.instructions)},
             {"role": "user", "content": user}], "split",
            prompts.split_schema([s.name for s in subdocuments]), model)
        parts = []
        for item in answer.get("parts") or []:
            numbers = sorted({int(p) for p in item.get("pages") or [] if 1 <= int(p) <= len(pages)})
            if numbers:
                parts.append(SplitPart(name=str(item["name"]), pages=numbers,
                                       confidence=float(item.get("confidence") or 0.0)))
        return SplitResult(parts=sorted(parts, key=lambda p: p.pages[0]), usage=usage)

    async def partition(self, pages: Sequence[str], key: str, *, model: str | None,
                        allow_overlap: bool, context: CallContext) -> PartitionResult:
        """Pages grouped by the key's value."""
        rule = "A page may belong to several groups." if allow_overlap else \
            "A page belongs to at most one group."
        user = f"Key: {key}\n{rule}\n\nDocument:\n{prompts.pages_block(pages)}"
        answer, usage = await self.chat(
            [{"role": "system", "content": prompts.SYSTEM_PARTITION},
             {"role": "user", "content": user}], "partition", prompts.partition_schema(), model)
        valid = range(1, len(pages) + 1)
        parts = [Partition(key=str(p["key"]), pages=sorted({int(n) for n in p["pages"]
                                                            if int(n) in valid}))
                 for p in answer.get("partitions") or [] if p.get("pages")]
        claimed = {n for p in parts for n in p.pages}
        unassigned = [n for n in valid if n not in claimed]
        return PartitionResult(partitions=parts, unassigned_pages=unassigned, usage=usage)

    async def map_form_fields(self, fields: Sequence[FormField], data: Mapping[str, Any], *,
                              model: str | None, context: CallContext) -> FormMapping:
        """Field -> value, as the model maps them."""
        listing = "\n".join(
            f"- {f.name} ({f.kind}" + (f", options: {', '.join(f.options)})" if f.options else ")")
            for f in fields)
        user = f"Form fields:\n{listing}\n\nData:\n{json.dumps(dict(data), default=str)}"
        answer, usage = await self.chat(
            [{"role": "system", "content": prompts.with_instructions(
                prompts.SYSTEM_FORM, context.instructions)},
             {"role": "user", "content": user}], "form_values",
            prompts.form_schema([f.name for f in fields]), model)
        values = {str(v["field"]): v["value"] for v in answer.get("values") or []
                  if isinstance(v, Mapping) and v.get("value") is not None}
        return FormMapping(values=values, usage=usage)

    async def describe_image(self, image: bytes, mime_type: str, *, model: str | None,
                             context: CallContext) -> ImageText:
        """The image's text, read by a vision model."""
        url = f"data:{mime_type};base64,{base64.b64encode(image).decode()}"
        content = [{"type": "text", "text": "Transcribe this document image."},
                   {"type": "image_url", "image_url": {"url": url}}]
        answer, usage = await self.chat(
            [{"role": "system", "content": prompts.with_instructions(
                prompts.SYSTEM_IMAGE, context.instructions)},
             {"role": "user", "content": content}], "transcription", prompts.image_schema(),
            model)
        return ImageText(pages=[str(answer.get("text", ""))], usage=usage)
