"""The QA agent with a scripted fake model: citations checked, insufficient evidence, bad answers."""

from __future__ import annotations

import json

import pytest

from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.models import get_chat_model
from filinglens.agents.qa import INSUFFICIENT, answer_question
from filinglens.errors import InputError
from filinglens.store import Store

EVIDENCE = [
    EvidenceItem("c1", "Total net sales were $391.0 billion in 2024, up 2% from 2023.", "7", "AAPL 10-K FY2024, Item 7"),
    EvidenceItem("c2", "The Company had approximately 164,000 full-time equivalent employees.", "1", "AAPL 10-K FY2024, Item 1"),
]


def ask(tmp_path, reply, question="How many employees does Apple have?", evidence=EVIDENCE):
    """The plain prompt (``compute=False``: a count would otherwise go to the compute prompt, test_qa_compute.py)."""
    model = get_chat_model("fake", responses=[reply if isinstance(reply, str) else json.dumps(reply)])
    return answer_question(question, evidence, store=Store(tmp_path / "r.db"), model_id="fake", model=model,
                           compute=False), model


def test_answer_with_verified_citation(tmp_path):
    answer, _ = ask(tmp_path, {"answer": "About 164,000 employees.", "sufficient": True,
                               "citations": [{"evidence": 2, "quote": "approximately 164,000 full-time equivalent employees"}]})
    assert answer.sufficient and "164,000" in answer.answer
    assert answer.citations[0].verified and answer.citations[0].chunk_id == "c2"
    assert answer.citations[0].citation.startswith("AAPL 10-K FY2024, Item 1")


def test_a_quote_that_is_not_in_the_filing_is_flagged(tmp_path):
    answer, _ = ask(tmp_path, {"answer": "200,000", "sufficient": True,
                               "citations": [{"evidence": 2, "quote": "about 200,000 employees worldwide"}]})
    assert answer.unverified == 1 and not answer.citations[0].verified


def test_insufficient_evidence_says_so(tmp_path):
    answer, _ = ask(tmp_path, {"answer": "", "sufficient": False, "citations": []}, "What is Apple's CEO's shoe size?")
    assert not answer.sufficient and answer.answer == INSUFFICIENT
    nothing, model = ask(tmp_path, {"answer": "42"}, evidence=[])
    assert nothing.answer == INSUFFICIENT and model.calls == []  # no evidence: no guessing, no call


def test_garbage_answers_end_in_a_recorded_error(tmp_path):
    answer, model = ask(tmp_path, "no idea")
    assert answer.error and "malformed" in answer.error and len(model.calls) == 3
    assert not answer.sufficient


def test_empty_question_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        ask(tmp_path, "{}", question="  ")


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_every_qa_prompt_version_renders_and_is_recorded(tmp_path, version):
    """Every shipped QA prompt renders with the evidence and the question, and its reply length (``max_tokens``
    in the prompt file) reaches the model call's recorded parameters."""
    import sqlite3

    from filinglens.prompts.loader import DEFAULT_QA_VERSION, load_qa_prompt

    model = get_chat_model("fake", responses=[json.dumps({"answer": "164,000", "sufficient": True, "citations": []})])
    kwargs = {} if version == DEFAULT_QA_VERSION else {"prompt_version": version}
    answer = answer_question("Who are Apple's employees?", EVIDENCE, store=Store(tmp_path / "r.db"),
                             model_id="fake", model=model, **kwargs)
    assert answer.prompt == f"qa@{version}" and answer.answer == "164,000"
    user = model.calls[-1][-1].content
    assert "approximately 164,000 full-time equivalent" in user and "{{" not in user
    assert "Who are Apple's employees?" in user
    (params,) = sqlite3.connect(tmp_path / "r.db").execute("select params from model_calls").fetchone()
    assert json.loads(params).get("max_tokens") == load_qa_prompt(version).max_tokens
    assert (load_qa_prompt(version).max_tokens is not None) == (version == "v3")
