"""Scripted fake models that answer FilingLens prompts deterministically from the evidence they are shown.

Importing this module registers (see ``filinglens.agents.providers.fake``):

* ``fake:analyst`` — rates by counting the category's topic words in the
  evidence: a direct rating quotes the first sentence of excerpt E1 verbatim;
  a yes/no question is answered "yes" when the evidence has three topic words
  or more; a pair comparison picks the company whose excerpts have more; a
  question is answered with E1's first sentence, cited;
* ``fake:first`` — a comparison judge with total position bias (always "A");
* ``fake:boom`` — a model whose every call fails (a provider error).

The workbench imports it in a browser test through ``FILINGLENS_WORKBENCH_PLUGINS``.
"""

from __future__ import annotations

import json
import re

from filinglens.agents.providers.fake import register_script

WORDS = {
    "innovation": r"innovat\w*|research|technolog\w*|patent\w*|new products?",
    "environment": r"environment\w*|emission\w*|renewable|carbon|climate|sustainab\w*|energy",
    "people": r"employees?|talent|diversity|training|benefits|people",
    "confidence": r"growth|increase[ds]?|strong|record|opportunit\w*",
}
_CATEGORY = re.compile(r"Category: (\w+)")
_BLOCK = re.compile(r"<evidence>\s*(.*?)\s*</evidence>", re.S)
_FIRST = re.compile(r"\[E1\] \(Item [^)]*\) (.+?[.!?])(?=\s|$)", re.S)


def _user(messages) -> str:
    return str(messages[-1].content)


def category_of(user: str) -> str:
    """The category a prompt is about: its ``Category:`` line, else the topic the yes/no question names."""
    m = _CATEGORY.search(user)
    if m and m.group(1).lower() in WORDS:
        return m.group(1).lower()
    question = user.rsplit("Question about", 1)[-1]
    return max(WORDS, key=lambda c: len(re.findall(WORDS[c], question, re.I)))


def topic_words(text: str, category: str) -> int:
    """How many of the category's topic words the text has."""
    return len(re.findall(rf"\b(?:{WORDS[category]})\b", text, re.I))


def analyst(messages) -> str:
    """The ``fake:analyst`` answer to one prompt."""
    user = _user(messages)
    blocks = _BLOCK.findall(user)
    category = category_of(user)
    if '"winner"' in user and len(blocks) >= 2:
        a, b = topic_words(blocks[0], category), topic_words(blocks[1], category)
        winner = "A" if a > b else "B" if b > a else "tie"
        return json.dumps({"winner": winner, "rationale": f"A shows {a} {category} words, B {b}."})
    evidence = blocks[0] if blocks else ""
    if '"citations"' in user:  # question answering: answer with excerpt E1's first sentence, cited
        first = _FIRST.search(evidence)
        if not first:
            return json.dumps({"answer": "", "sufficient": False, "citations": []})
        sentence = re.sub(r"\s+", " ", first.group(1)).strip()
        return json.dumps({"answer": sentence, "sufficient": True,
                           "citations": [{"evidence": 1, "quote": " ".join(sentence.split()[:20])}]})
    count = topic_words(evidence, category)
    if '"score"' in user:
        first = _FIRST.search(evidence)
        quote = re.sub(r"\s+", " ", first.group(1)).strip() if first else ""
        score = 2 if count >= 10 else 1 if count >= 3 else 0
        return json.dumps({"score": score, "rationale": f"The evidence has {count} {category} words.",
                           "quotes": [quote] if quote else []})
    if "yes or no" in user:
        return "yes" if count >= 3 else "no"
    return "I cannot answer that."


def first(messages) -> str:
    """``fake:first``: always prefers the company shown first."""
    return json.dumps({"winner": "A", "rationale": "The first company."})


def boom(messages) -> str:
    """``fake:boom``: every call fails like a provider that is down."""
    raise ConnectionError("model server unreachable (fake:boom)")


register_script("analyst", func=analyst)
register_script("first", func=first)
register_script("boom", func=boom)
