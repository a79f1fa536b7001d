"""Keyword rewrite of a question for the lexical (BM25) side of search.

Instruction phrases ("round to two decimal places", "in USD millions") and
question words are dropped, and standard metric names are expanded with the
line items they are computed from ("quick ratio" -> cash, receivables,
current liabilities).  Used by ``HybridSearcher.search`` (default) and by the
retrieval agent's planner.
"""

from __future__ import annotations

import re
from typing import Iterable

#: Standard metrics -> the line items they are computed from (lexical expansion).
METRIC_TERMS: dict[str, str] = {
    "working capital": "total current assets total current liabilities",
    "quick ratio": "cash equivalents short-term investments accounts receivable total current liabilities",
    "current ratio": "total current assets total current liabilities",
    "cash ratio": "cash equivalents total current liabilities",
    "free cash flow": "net cash provided by operating activities capital expenditures purchases of property",
    "capex": "capital expenditures purchases of property plant equipment",
    "capital expenditure": "capital expenditures purchases of property plant equipment",
    "gross margin": "gross profit net sales revenue cost of sales",
    "gross profit": "gross profit net sales revenue cost of sales",
    "operating margin": "operating income net sales revenue",
    "operating income": "operating income",
    "net margin": "net income net sales revenue",
    "profit margin": "net income net sales revenue",
    "ebitda": "operating income depreciation amortization",
    "ebit": "operating income earnings before interest taxes",
    "dividend payout": "dividends paid cash dividends net income",
    "payout ratio": "dividends paid net income",
    "inventory turnover": "cost of sales inventories",
    "days inventory": "inventories cost of sales",
    "days payable": "accounts payable cost of sales",
    "days sales outstanding": "accounts receivable revenue",
    "receivable turnover": "accounts receivable revenue",
    "asset turnover": "total assets revenue",
    "fixed asset turnover": "property plant equipment net revenue",
    "return on assets": "net income total assets",
    "return on equity": "net income total shareholders equity",
    "roa": "net income total assets",
    "roe": "net income shareholders equity",
    "debt to equity": "total debt long-term debt shareholders equity",
    "leverage": "total debt long-term debt equity",
    "interest coverage": "interest expense operating income",
    "effective tax rate": "effective tax rate provision for income taxes income before income taxes",
    "eps": "earnings per share diluted basic",
    "earnings per share": "earnings per share diluted basic",
    "cash conversion": "net cash provided by operating activities net income",
    "debt": "long-term debt borrowings notes payable current portion",
    "revenue": "revenue net sales total",
    "net income": "net income",
    "cash flow": "cash flows operating activities investing financing",
    "liquidity": "liquidity cash equivalents credit facility",
    "share repurchase": "repurchases of common stock treasury",
    "buyback": "repurchases of common stock",
    "unadjusted": "",
}

INSTRUCTION_PATTERNS = [
    r"\bif [^.?!]*?(?:not (?:a )?(?:useful|relevant|applicable|meaningful)|cannot be|can not be)[^.?!]*[.?!]?",
    r"\b(?:please\s+)?(?:state that and )?explain why\.?",
    r"\b(?:please\s+)?(?:round(?:ed)?|rounding)\b[^.?!,;]*",
    r"\b(?:answer|respond|reply)\s+in\b[^.?!,;]*",
    r"\b(?:in|using|as)\s+(?:usd|us\s*\$|u\.s\.\s*dollars|\$)\s*(?:millions?|billions?|thousands?)?\b",
    r"\(?\b(?:in|at)\s+(?:usd\s+)?(?:millions?|billions?|thousands?)\b\)?",
    r"\bexpressed\s+(?:as|in)\b[^.?!,;]*",
    r"\b(?:to|with)\s+(?:one|two|three|\d+)\s+decimal\s+places?\b",
    r"\b(?:using|based on|according to|from)\s+(?:the\s+)?(?:line items?|details?|information|data|figures?)\s+"
    r"(?:clearly\s+)?(?:shown|provided|outlined|reported|mentioned|depicted|presented)\s+(?:in|within|on)\b",
    r"\b(?:please|kindly|briefly|approximately|roughly)\b",
    r"\bgive (?:a |an )?(?:response|answer) to the question by relying on the details shown in\b",
]
QUESTION_WORDS = {
    "what", "whats", "which", "who", "whom", "how", "why", "when", "where", "does", "did", "do", "is", "are",
    "was", "were", "has", "have", "had", "can", "could", "would", "should", "will", "the", "a", "an", "of",
    "for", "in", "on", "to", "and", "or", "its", "it", "this", "that", "these", "those", "based", "company",
    "company's", "fy", "fiscal", "year", "period", "data", "as", "at", "by", "with", "from", "between", "much",
    "many", "much", "there", "any", "be", "been", "being", "than", "into", "per", "vs", "versus", "compared",
    "calculate", "compute", "answer", "question", "metric", "state", "explain", "shown", "statement",
    "statements", "if", "then", "not", "useful", "relevant", "reasonably", "healthy", "overall",
    # generic instruction vocabulary of question prompts
    "you", "your", "we", "us", "our", "i", "me", "want", "help", "here's", "heres", "following", "best",
    "abilities", "ability", "resource", "resources", "s", "perspective", "assume", "assuming", "analyst",
    "banker", "investor", "only", "use", "using", "utilize", "utilizing", "information", "provided",
    "primarily", "details", "detail", "within", "stated", "draw", "drawing", "conclusions", "define",
    "defined", "definition", "judgment", "judgments", "base", "basing", "off", "respond", "response",
    "reply", "given", "give", "rely", "relying", "mainly", "solely", "tell",
}
YEAR_RE = re.compile(r"(?<![\d$.,])(?:FY\s*'?|fiscal(?:\s+year)?\s*)?((?:19|20)\d\d)(?![\d,.]\d)", re.I)
FY_SHORT_RE = re.compile(r"\bFY\s*'?(\d\d)\b", re.I)


def keyword_rewrite(question: str, drop: Iterable[str] = ()) -> str:
    """The question as search keywords: instruction phrases and question words removed,
    metric names expanded with their line items, ``drop`` words (company, years) removed."""
    text = question
    for pattern in INSTRUCTION_PATTERNS:
        text = re.sub(pattern, " ", text, flags=re.I)
    lowered = text.lower()
    expansions = [terms for metric, terms in METRIC_TERMS.items()
                  if terms and re.search(rf"\b{re.escape(metric)}\b", lowered)]
    dropped = {w.lower() for phrase in drop for w in re.findall(r"[\w&']+", phrase or "")}
    words = []
    for w in re.findall(r"[\w&$%'-]+", text):
        lw = w.lower().strip("'")
        if lw in QUESTION_WORDS or lw in dropped or lw.endswith("'s") and lw[:-2] in dropped:
            continue
        if YEAR_RE.fullmatch(w) or FY_SHORT_RE.fullmatch(w):
            continue
        words.append(w)
    out = " ".join(words + expansions)
    return re.sub(r"\s+", " ", out).strip() or question.strip()
