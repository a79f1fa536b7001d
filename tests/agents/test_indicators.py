"""The indicators rating method (v5): combination, facts before questions, cited facts and quotes,
interval and borderline flag; prompt-file validation; the per-indicator evidence merge."""

from __future__ import annotations

import pytest

from filinglens.agents.evidence import EvidenceItem
from filinglens.app import interleave
from filinglens.agents.providers.fake import FakeChatModel
from filinglens.agents.rating import IndicatorValue, RatingChain, Target, combine_indicators, is_borderline
from filinglens.errors import ConfigError
from filinglens.prompts.loader import Indicator, RatingPrompt, load_prompt
from filinglens.retrieval.facts import Figure, Financials
from filinglens.store import Store

TARGET = Target("f-aapl-2024", "Apple Inc.", "AAPL", "320193", 2024, "a" * 64)
EVIDENCE = [
    EvidenceItem("c1", "We aim to be carbon neutral across our entire supply chain by 2030. "
                       "Apple has reduced its emissions by 60% compared with 2015.", "1", "AAPL 10-K, Item 1"),
    EvidenceItem("c2", "Our employees are critical to our success. We offer competitive benefits, including "
                       "health care and paid leave, and training programs for career development.", "1",
                 "AAPL 10-K, Item 1"),
    EvidenceItem("c3", "Total net sales increased 2% during 2024 compared to 2023. We expect continued growth "
                       "in Services, and we plan to expand our retail presence.", "7", "AAPL 10-K, Item 7"),
]


def _prompt(**changes) -> RatingPrompt:
    return load_prompt("environment@v5").model_copy(update=changes)


def values_for(prompt, **probs) -> list[IndicatorValue]:
    return [IndicatorValue(i, probs[i.id], "model") for i in prompt.indicators]


def test_combination_is_gate_times_bias_plus_weighted_values():
    prompt = _prompt()
    ind = {i.id: i for i in prompt.indicators}
    assert ind["discusses_sustainability"].gate and prompt.bias == 1.0
    got = combine_indicators(prompt, values_for(prompt, discusses_sustainability=0.9, dated_target=1.0,
                                                progress_or_investment=0.5, central_to_strategy=0.0))
    raw = 1 + 0.4 * 1.0 + 0.3 * 0.5 + 0.3 * 0.0
    assert got.raw == pytest.approx(raw) and got.gate == 0.9
    assert got.expected == pytest.approx(0.9 * raw)
    # sd: each P(yes) a coin; the gate's uncertainty scales the whole raw score
    var_raw = 0.3 ** 2 * 0.25
    assert got.sd == pytest.approx((0.81 * var_raw + raw ** 2 * 0.9 * 0.1) ** 0.5)
    # all yes: E is clipped to 2 and certain
    top = combine_indicators(prompt, values_for(prompt, discusses_sustainability=1.0, dated_target=1.0,
                                                progress_or_investment=1.0, central_to_strategy=1.0))
    assert top.expected == 2.0 and top.sd == 0.0
    # no gate: E = 0 whatever the rest says
    assert combine_indicators(prompt, values_for(prompt, discusses_sustainability=0.0, dated_target=1.0,
                                                 progress_or_investment=1.0, central_to_strategy=1.0)).expected == 0


def test_negative_weights_unavailable_indicators_and_the_clip():
    prompt = load_prompt("confidence@v5")
    ind = {i.id: i for i in prompt.indicators}
    values = [IndicatorValue(ind["revenue_growth"], 0.0, "fact"), IndicatorValue(ind["earnings_growth"], 0.0, "fact"),
              IndicatorValue(ind["net_loss"], 1.0, "fact"), IndicatorValue(ind["going_concern"], 1.0, "fact"),
              IndicatorValue(ind["downgrade"], None, "unavailable"), IndicatorValue(ind["outlook"], 0.5, "model")]
    got = combine_indicators(prompt, values)
    assert got.raw == pytest.approx(1 - 1 - 1 + 0.2 * 0.5) and got.expected == 0.0
    assert got.sd == pytest.approx(0.2 * 0.5)  # only the question is uncertain; facts are certain


def _financials(revenue=(391_035e6, 383_285e6), net_income=(93_736e6, 96_995e6), signals=None) -> Financials:
    figures = {"revenue": Figure("revenue", *revenue, "ixbrl", "us-gaap:Revenues", "2023-10-01..2024-09-28",
                                 "2022-09-25..2023-09-30"),
               "net_income": Figure("net_income", *net_income, "ixbrl", "us-gaap:NetIncomeLoss",
                                    "2023-10-01..2024-09-28", "2022-09-25..2023-09-30")}
    return Financials(figures, "2023-10-01..2024-09-28", "ixbrl", signals or {})


class YesTo:
    """A fake hosted model: "yes" when the question contains one of ``words``; records the questions."""

    def __init__(self, *words):
        self.words = words
        self.questions: list[str] = []

    def __call__(self, messages):
        question = str(messages[-1].content).split("Question about", 1)[-1]
        self.questions.append(question)
        return "yes" if any(w in question for w in self.words) else "no"


def _chain(tmp_path, script, facts=None, db="r.db") -> RatingChain:
    return RatingChain(Store(tmp_path / db), model_id="fake", model=FakeChatModel(func=script),
                       gather=lambda prompt, target: list(EVIDENCE), facts=facts)


def test_confidence_reads_facts_first_and_cites_them(tmp_path):
    script = YesTo("confidence about future growth")
    rating = _chain(tmp_path, script, facts=lambda t: _financials()).rate(TARGET, "confidence", "v5")
    assert rating.status == "ok", rating.error
    by_id = {i["id"]: i for i in rating.indicators}
    # revenue +2.0% on a 0-10% scale; net income fell; no loss, no signals: no question asked for them
    assert by_id["revenue_growth"]["source"] == "fact"
    assert by_id["revenue_growth"]["value"] == pytest.approx(0.2023, abs=1e-3)
    assert by_id["earnings_growth"]["value"] == 0.0 and by_id["net_loss"]["value"] == 0.0
    assert by_id["going_concern"]["value"] == 0.0 and by_id["outlook"]["source"] == "model"
    assert len(script.questions) == 1 and rating.model_calls == 1
    assert rating.expected_score == pytest.approx(1 + 0.6 * 0.2023 + 0.2, abs=1e-3) and rating.score == 1
    cited = {f["fact"]: f for f in rating.facts}
    assert cited["revenue"]["current"] == 391_035e6 and cited["revenue"]["concept"] == "us-gaap:Revenues"
    assert "391,035 million" in cited["revenue"]["text"] and "+2.0%" in cited["revenue"]["text"]
    assert "E = 1 + 0.6·0.20" in rating.rationale
    # the deciding question cites the sentence closest to it, verbatim from the evidence
    [quote] = rating.quotes
    assert quote["verified"] and "expect continued growth" in quote["text"]
    assert rating.to_dict()["facts"] == rating.facts and rating.to_dict()["indicators"] == rating.indicators


def test_a_net_loss_makes_confidence_0_and_without_facts_the_questions_decide(tmp_path):
    loss = _financials(revenue=(66_517e6, 77_794e6), net_income=(-11_817e6, -2_222e6),
                       signals={"downgrade": ["Moody's downgraded our credit ratings to Baa3 in April 2024."]})
    rating = _chain(tmp_path, YesTo("expansion"), facts=lambda t: loss).rate(TARGET, "confidence", "v5")
    assert rating.score == 0 and {f["fact"] for f in rating.facts} >= {"net_income", "downgrade"}

    script = YesTo("revenue or net sales increased", "net income or earnings increased")
    rating = _chain(tmp_path, script, facts=lambda t: None, db="other.db").rate(TARGET, "confidence", "v5")
    sources = {i["id"]: i["source"] for i in rating.indicators}
    assert sources == {"revenue_growth": "model", "earnings_growth": "model", "net_loss": "model",
                       "going_concern": "unavailable", "downgrade": "unavailable", "outlook": "model"}
    assert len(script.questions) == 4 and rating.facts == []
    assert rating.expected_score == pytest.approx(2.0) and rating.score == 2


def test_interval_and_borderline_flag(tmp_path):
    chain = _chain(tmp_path, YesTo("discuss", "dated environmental target"))
    rating = chain.rate(TARGET, "environment", "v5")
    # hosted answers are 0 or 1: no spread, so no interval to speak of; borderline then comes from the
    # cut-off bands fitted with the prompt (where the calibration itself is unsure)
    assert rating.interval == [rating.expected_score, rating.expected_score]
    from filinglens.prompts.loader import load_prompt

    bands = load_prompt("environment@v5").borderline_bands
    assert rating.borderline == any(low <= rating.expected_score <= high for low, high in bands)
    assert rating.expected_score == pytest.approx(1.4) and rating.score == 1
    assert rating.quotes and all(q["verified"] for q in rating.quotes)
    assert any("carbon neutral" in q["text"] for q in rating.quotes)
    # a cut-off within E ± sd (or E exactly on it) is borderline
    assert is_borderline(1.45, 0.1, [0.5, 1.5]) and is_borderline(0.45, 0.06, [0.5, 1.5])
    assert not is_borderline(1.2, 0.1, [0.5, 1.5]) and not is_borderline(1.45, 0.0, [0.5, 1.5])
    assert is_borderline(1.5, 0.0, [0.5, 1.5])


def test_prompt_file_validation(tmp_path):
    base = load_prompt("people@v5").model_dump()
    with pytest.raises(ValueError, match="unknown fact"):
        Indicator(id="x", fact="profit_vibes", weight=1)
    with pytest.raises(ValueError, match="needs `scale"):
        Indicator(id="x", fact="revenue_change", weight=1)
    with pytest.raises(ValueError, match="needs a `question` or a `fact`"):
        Indicator(id="x", weight=1)
    with pytest.raises(ValueError, match="non-zero `weight`"):
        Indicator(id="x", question="Is it?")
    two_gates = [dict(i, gate=True) for i in base["indicators"][:2]]
    with pytest.raises(ValueError, match="at most one indicator"):
        RatingPrompt.model_validate({**base, "indicators": two_gates})
    with pytest.raises(ValueError, match="needs `indicators`"):
        RatingPrompt.model_validate({**base, "indicators": []})
    # a user prompt directory with a broken indicators file: one clear line
    bad = tmp_path / "rating" / "people" / "v9.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("extends: v5\nindicators:\n  - id: Bad Id\n    question: q\n    weight: 1\n")
    with pytest.raises(ConfigError, match="invalid prompt"):
        load_prompt("people@v9", extra_dirs=[tmp_path])


def test_the_prompt_hash_pins_weights_and_cutoffs():
    prompt = load_prompt("innovation@v5")
    moved = prompt.model_copy(update={"cutoffs": [0.6, 1.5]})
    assert moved.hash != prompt.hash
    data = prompt.model_dump()
    data["indicators"][1]["weight"] = 0.5
    assert RatingPrompt.model_validate(data).hash != prompt.hash


def test_interleave_takes_each_indicators_best_passages_in_turn():
    class E:
        def __init__(self, cid):
            self.chunk_id = cid

    ranked = [[E("a1"), E("a2"), E("shared")], [E("shared"), E("b2")], [E("c1")]]
    assert [e.chunk_id for e in interleave(ranked, 10)] == ["a1", "shared", "c1", "a2", "b2"]
    assert [e.chunk_id for e in interleave(ranked, 3)] == ["a1", "shared", "c1"]


def test_providers_declare_token_probabilities():
    from filinglens.agents.models import has_capability
    from filinglens.agents.providers import TOKEN_PROBABILITIES
    from filinglens.agents.rating import token_probabilities

    assert has_capability("local", TOKEN_PROBABILITIES) and has_capability("local-small", TOKEN_PROBABILITIES)
    assert not has_capability("fake", TOKEN_PROBABILITIES)
    assert not has_capability("cohere:command-r-plus", TOKEN_PROBABILITIES)
    assert not has_capability("no-such-provider", TOKEN_PROBABILITIES)
    assert token_probabilities("local") and not token_probabilities("openai:gpt-4o")


def test_refitting_cutoffs_reuses_every_cached_indicator_call(tmp_path, monkeypatch):
    script = YesTo("discuss", "dated environmental target")
    chain = _chain(tmp_path, script)
    first = chain.rate(TARGET, "environment", "v5")
    assert first.model_calls == 4 and first.cached_calls == 0 and first.score == 1
    # the same prompt with refitted cut-offs (a new prompt hash): the answers come from the cache
    user = tmp_path / "prompts" / "rating" / "environment"
    user.mkdir(parents=True)
    text = open(load_prompt("environment@v5").path).read().replace("cutoffs: [", "cutoffs: [0.3, 1.3]\n#was [")
    (user / "v5.yaml").write_text(text)
    monkeypatch.setenv("FILINGLENS_PROMPTS", str(tmp_path / "prompts"))
    refit = load_prompt("environment@v5")
    assert refit.cutoffs == [0.3, 1.3] and refit.hash != first.prompt_hash
    again = chain.rate(TARGET, "environment", "v5")
    assert again.prompt_hash == refit.hash and again.cached_calls == again.model_calls == 4
    assert len(script.questions) == 4 and again.expected_score == first.expected_score and again.score == 2


def test_rate_shows_score_interval_deciding_indicators_facts_and_quotes(tmp_path, monkeypatch):
    import json

    from rich.console import Console
    from typer.testing import CliRunner

    import filinglens.app as jobs
    from filinglens.agents.providers.fake import register_script
    from filinglens.display import ratings_table
    from filinglens.cli import app

    register_script("yesto", func=YesTo("confidence about future growth", "discuss", "dated environmental"))
    monkeypatch.setattr(jobs, "resolve_targets", lambda paths=(), ticker=None, year=None, progress=None: [TARGET])
    monkeypatch.setattr(jobs, "index_gatherer", lambda agent=None: (lambda prompt, target: list(EVIDENCE)))
    monkeypatch.setattr(jobs, "index_facts", lambda: (lambda target: _financials()))
    args = ["rate", str(tmp_path / "x.html"), "-c", "confidence", "-c", "environment", "-p", "v5", "-m", "fake:yesto"]
    got = CliRunner().invoke(app, args + ["--json"])
    assert got.exit_code == 0, got.output
    conf, env = json.loads(got.output)["ratings"]
    assert conf["score"] == 1 and conf["interval"] == [conf["expected_score"]] * 2 and conf["borderline"] is False
    assert {f["fact"] for f in conf["facts"]} == {"revenue", "net_income"}
    assert [i["id"] for i in conf["indicators"]][:2] == ["revenue_growth", "earnings_growth"]
    assert env["quotes"][0]["verified"] and env["indicators"][0]["gate"]

    got = CliRunner().invoke(app, args)
    assert got.exit_code == 0, got.output
    _, ratings = jobs.run_ratings([TARGET], ["confidence"], model_id="fake:yesto", prompt_version="v5",
                                  store=Store(tmp_path / "t.db"))
    console = Console(record=True, width=220)
    console.print(ratings_table(ratings))
    text = console.export_text()
    assert "decided by" in text and "revenue_growth fact=0.20 → +0.12" in text
    assert "Revenue 391,035 million" in text and "E=1.32 [1.32–1.32]" in text
    assert "expect continued growth" in text
