"""``fake``: a deterministic chat model for unit tests (no weights, no network).

It answers from a scripted list (cycled), from a callable, or with a fixed
default; it reports token usage (whitespace word counts) and supports
``with_structured_output`` by parsing its answer as JSON, so scripted JSON
answers exercise the same code paths as a real model's structured output::

    get_chat_model("fake", responses=['{"score": 2}'])
    register_script("judge", func=lambda messages: "yes")
    get_chat_model("fake:judge")
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict, Field, PrivateAttr

from filinglens.agents.providers import ModelParams, Provider

Reply = Union[str, dict, AIMessage]

_scripts: dict[str, dict] = {}


def register_script(
    name: str,
    responses: Optional[Sequence[Reply]] = None,
    func: Optional[Callable[[list[BaseMessage]], Reply]] = None,
) -> None:
    """Make ``fake:NAME`` answer from ``responses`` (cycled) or ``func(messages)``."""
    _scripts[name] = {"responses": list(responses or []), "func": func}


def clear_scripts() -> None:
    _scripts.clear()


def _count(text: str) -> int:
    return len(text.split())


def _message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(
        part if isinstance(part, str) else str(part.get("text", "")) for part in content
    )


class FakeChatModel(BaseChatModel):
    """Scripted, deterministic chat model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responses: list[Any] = Field(default_factory=list)
    func: Optional[Callable[[list[BaseMessage]], Reply]] = None
    default: str = "This is a fake response."
    model_name: str = "fake"
    temperature: float = 0.0
    max_tokens: Optional[int] = None
    seed: Optional[int] = None

    _index: int = PrivateAttr(default=0)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    calls: list[list[BaseMessage]] = Field(default_factory=list, exclude=True)

    @property
    def _llm_type(self) -> str:
        return "fake-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature}

    # ------------------------------------------------------------------ replies

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:
            self.calls.append(list(messages))
            if self.func is not None:
                raw: Reply = self.func(list(messages))
            elif self.responses:
                raw = self.responses[self._index % len(self.responses)]
                self._index += 1
            else:
                raw = self.default
        if isinstance(raw, AIMessage):
            message = raw.model_copy()
        elif isinstance(raw, dict):
            message = AIMessage(content=json.dumps(raw))
        else:
            message = AIMessage(content=str(raw))
        text = _message_text(message)
        if self.max_tokens is not None:
            words = text.split()
            if len(words) > self.max_tokens:
                text = " ".join(words[: self.max_tokens])
                message = AIMessage(content=text)
        n_in = sum(_count(_message_text(m)) for m in messages)
        n_out = _count(text)
        message.usage_metadata = {
            "input_tokens": n_in,
            "output_tokens": n_out,
            "total_tokens": n_in + n_out,
        }
        message.response_metadata = {"model_name": self.model_name, "finish_reason": "stop"}
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[CallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._reply(messages)
        usage = dict(message.usage_metadata or {})
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"token_usage": usage, "model_name": self.model_name},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[CallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._reply(messages)
        text = _message_text(message)
        pieces = text.split(" ") if text else [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = AIMessageChunk(
                content=piece if last else piece + " ",
                usage_metadata=message.usage_metadata if last else None,
                response_metadata=message.response_metadata if last else {},
            )
            if run_manager:
                run_manager.on_llm_new_token(chunk.content, chunk=None)
            yield ChatGenerationChunk(message=chunk)

    # ------------------------------------------------------------ tools / schema

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable:
        """Accept tools (ignored): scripted answers decide what the model 'does'."""
        return self

    def with_structured_output(
        self, schema: Any, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable:
        """Parse the (scripted) answer as JSON into ``schema`` (pydantic class or dict schema)."""
        from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser

        if isinstance(schema, type) and hasattr(schema, "model_validate"):
            parser: Runnable = PydanticOutputParser(pydantic_object=schema)
        else:
            parser = JsonOutputParser()
        if not include_raw:
            return self | parser

        def parse_with_raw(raw: AIMessage) -> dict:
            try:
                return {"raw": raw, "parsed": parser.invoke(raw), "parsing_error": None}
            except Exception as exc:  # mirror LangChain's include_raw contract
                return {"raw": raw, "parsed": None, "parsing_error": exc}

        return self | RunnableLambda(parse_with_raw)


def _create(name: str, params: ModelParams) -> FakeChatModel:
    script = _scripts.get(name, {})
    kwargs: dict[str, Any] = {
        "model_name": f"fake:{name}" if name else "fake",
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "seed": params.seed,
        "responses": list(params.extra.get("responses") or script.get("responses") or []),
        "func": params.extra.get("func") or script.get("func"),
    }
    if params.extra.get("default") is not None:
        kwargs["default"] = params.extra["default"]
    return FakeChatModel(**kwargs)


provider = Provider(
    name="fake",
    description="deterministic scripted model for tests (no weights, no network)",
    create=_create,
    unavailable=lambda name, params: None,
    listed=(("fake", "deterministic scripted model for tests (no weights, no network)"),),
    default_name="",
    extra_params=("responses", "func", "default"),
)
