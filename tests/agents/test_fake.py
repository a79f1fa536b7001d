"""The deterministic fake chat model."""

from __future__ import annotations

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from filinglens.agents.models import get_chat_model
from filinglens.agents.providers.fake import FakeChatModel, clear_scripts, register_script


class Rating(BaseModel):
    score: int
    reason: str


def test_default_answer_is_fixed_and_reports_usage():
    chat = get_chat_model("fake")
    assert isinstance(chat, BaseChatModel) and isinstance(chat, FakeChatModel)
    first = chat.invoke("rate this passage please")
    second = chat.invoke("rate this passage please")
    assert first.content == second.content == "This is a fake response."
    assert first.usage_metadata == {"input_tokens": 4, "output_tokens": 5, "total_tokens": 9}
    assert first.response_metadata["model_name"] == "fake"


def test_scripted_responses_cycle_deterministically():
    def run():
        chat = get_chat_model("fake", responses=["a", "b", {"k": 1}])
        return [chat.invoke("q").content for _ in range(4)]

    assert run() == run() == ["a", "b", '{"k": 1}', "a"]


def test_callable_sees_messages():
    chat = get_chat_model("fake", func=lambda msgs: f"{len(msgs)}:{msgs[-1].content.upper()}")
    out = chat.invoke([SystemMessage("sys"), HumanMessage("hi")])
    assert out.content == "2:HI"
    assert len(chat.calls) == 1


def test_named_scripts():
    register_script("judge", responses=["yes", "no"])
    try:
        chat = get_chat_model("fake:judge")
        assert [chat.invoke("x").content for _ in range(3)] == ["yes", "no", "yes"]
        assert chat.model_name == "fake:judge"
        assert get_chat_model("fake:other").invoke("x").content == "This is a fake response."
    finally:
        clear_scripts()


def test_structured_output_parses_json():
    chat = get_chat_model("fake", responses=['{"score": 2, "reason": "concrete plans"}'])
    rating = chat.with_structured_output(Rating).invoke("rate")
    assert rating == Rating(score=2, reason="concrete plans")
    raw = chat.with_structured_output(Rating, include_raw=True).invoke("rate")
    assert raw["parsed"] == rating and raw["parsing_error"] is None
    as_dict = chat.with_structured_output({"title": "r", "type": "object"}).invoke("rate")
    assert as_dict == {"score": 2, "reason": "concrete plans"}


def test_structured_output_reports_bad_json():
    chat = get_chat_model("fake", responses=["not json"])
    out = chat.with_structured_output(Rating, include_raw=True).invoke("rate")
    assert out["parsed"] is None and out["parsing_error"] is not None


def test_streaming_and_max_tokens():
    chat = get_chat_model("fake", responses=["one two three four"], max_tokens=3)
    chunks = list(chat.stream("q"))
    assert "".join(c.content for c in chunks) == "one two three"
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.usage_metadata["output_tokens"] == 3


def test_batch_and_chain():
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")])
    chain = prompt | get_chat_model("fake", func=lambda m: m[-1].content[::-1]) | StrOutputParser()
    assert chain.batch([{"q": "abc"}, {"q": "xy"}]) == ["cba", "yx"]
