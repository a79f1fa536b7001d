"""Versioned prompt files: find, validate, resolve and hash them.

A rating prompt is one YAML file per category and version
(``prompts/rating/<category>/<version>.yaml``). A version may ``extends:``
another version of the same category and override fields; the shared
wording of each rating method lives in ``prompts/rating/templates/<method>.yaml``.
The content hash covers the fully resolved prompt (template included), so
any change to what the model sees changes the hash recorded with a rating.

User prompt directories (``FILINGLENS_PROMPTS``, ``os.pathsep``-separated, or
``extra_dirs``) are searched before the built-in one: drop
``<dir>/rating/<category>/<version>.yaml`` there to add a category or version.
A category named without a version (``load_prompt("governance")``) uses
``DEFAULT_RATING_VERSION`` when it has that version, else its newest one, so a
new category with only ``v1.yaml`` is rated by ``filinglens rate`` beside the
others.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from filinglens import settings
from filinglens.errors import ConfigError

BUILTIN_DIR = Path(__file__).parent
#: The rating prompt version used when none is given (`rate`, suites, the app); a category without it
#: is rated with its newest version (:func:`default_version`).
DEFAULT_RATING_VERSION = "v5"
#: Facts an indicator can read from the filing's own numbers (``filinglens.retrieval.facts``):
#: relative changes vs the prior year (mapped to [0, 1] by the indicator's ``scale``), and flags (0 or 1).
FACT_CHANGES = ("revenue_change", "net_income_change", "operating_cash_flow_change")
FACT_FLAGS = ("net_loss", "operating_cash_negative", "rnd_reported", "going_concern", "downgrade", "impairment")
FACTS = FACT_CHANGES + FACT_FLAGS


class Questions(BaseModel):
    """Yes/no questions of the ``yesno`` method."""

    level1: str
    level2: list[str] = Field(min_length=1)


class Indicator(BaseModel):
    """One check of the ``indicators`` method: a yes/no question answered from P(yes), a fact from the
    filing's numbers, or both (the fact when the filing has it, else the question)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    question: str | None = None
    queries: list[str] = Field(default_factory=list)  # this indicator's retrieval queries
    fact: str | None = None
    scale: list[float] | None = None  # change facts: value mapped linearly, 0 at scale[0], 1 at scale[1]
    weight: float = 0.0
    gate: bool = False  # the expected score is multiplied by this indicator's value

    @model_validator(mode="after")
    def _valid(self) -> "Indicator":
        if not self.question and not self.fact:
            raise ValueError(f"indicator {self.id}: needs a `question` or a `fact`")
        if self.fact is not None and self.fact not in FACTS:
            raise ValueError(f"indicator {self.id}: unknown fact {self.fact!r} (known: {', '.join(FACTS)})")
        if self.fact in FACT_CHANGES and (self.scale is None or len(self.scale) != 2
                                          or self.scale[0] >= self.scale[1]):
            raise ValueError(f"indicator {self.id}: fact {self.fact} needs `scale: [low, high]` with low < high")
        if not self.gate and self.weight == 0:
            raise ValueError(f"indicator {self.id}: needs a non-zero `weight` (or `gate: true`)")
        return self


class Retrieval(BaseModel):
    """How evidence for this category is gathered."""

    items: list[str] = Field(default_factory=list)
    queries: list[str] = Field(min_length=1)
    evidence_chunks: int = Field(default=8, ge=1, le=50)


class _PromptFile(BaseModel):
    """What every prompt file has: metadata, and a hash of its resolved content."""

    created: str | None = None
    note: str | None = None
    path: str | None = Field(default=None, exclude=True)

    @field_validator("created", mode="before")
    @classmethod
    def _date_to_str(cls, value):
        return value.isoformat() if isinstance(value, date) else value

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the resolved prompt content."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class RatingPrompt(_PromptFile):
    """A resolved rating prompt: rubric, method, wording and metadata."""

    category: str
    version: str
    title: str
    method: Literal["direct", "yesno", "cot", "indicators"]
    description: str
    rubric: dict[int, str]
    retrieval: Retrieval
    system: str
    user: str
    strictness: str = ""
    questions: Questions | None = None
    cutoffs: list[float] = Field(default_factory=lambda: [0.5, 1.5])
    examples: list[dict] = Field(default_factory=list)
    indicators: list[Indicator] = Field(default_factory=list)
    bias: float = 0.0  # indicators: E = gate × (bias + Σ weight × value), clipped to [0, 2]
    borderline_bands: list[list[float]] = Field(default_factory=list)  # E inside one: the score is borderline
    calibration: dict = Field(default_factory=dict)  # how the cut-offs were fitted (data, CV figures)

    @field_validator("rubric")
    @classmethod
    def _three_levels(cls, rubric: dict[int, str]) -> dict[int, str]:
        if sorted(rubric) != [0, 1, 2] or not all(v.strip() for v in rubric.values()):
            raise ValueError("rubric must define levels 0, 1 and 2")
        return rubric

    @model_validator(mode="after")
    def _method_needs(self) -> "RatingPrompt":
        if self.method == "yesno" and self.questions is None:
            raise ValueError("method yesno needs `questions` (level1, level2)")
        if self.method == "indicators":
            if not self.indicators:
                raise ValueError("method indicators needs `indicators`")
            ids = [i.id for i in self.indicators]
            if len(set(ids)) != len(ids):
                raise ValueError(f"indicator ids must be unique: {ids}")
            if sum(i.gate for i in self.indicators) > 1:
                raise ValueError("at most one indicator can be the `gate`")
        if len(self.cutoffs) != 2 or not 0 <= self.cutoffs[0] < self.cutoffs[1] <= 2:
            raise ValueError("cutoffs must be two increasing numbers within [0, 2]")
        for band in self.borderline_bands:
            if len(band) != 2 or not 0 <= band[0] <= band[1] <= 2:
                raise ValueError("borderline_bands must be [low, high] pairs within [0, 2]")
        for field_name in ("system", "user"):
            try:
                getattr(self, field_name).format_map(_Probe())
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{field_name} template does not format: {exc}") from exc
        return self

    @property
    def ref(self) -> str:
        """``category@version``."""
        return f"{self.category}@{self.version}"

    def render_yaml(self) -> str:
        """The resolved prompt as YAML (what ``prompts show`` prints and ``diff`` compares)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)


class _Probe(dict):
    def __missing__(self, key):
        return ""


def prompt_dirs(extra_dirs: list[Path] | None = None) -> list[Path]:
    """Directories searched for prompts, user ones first."""
    dirs = [Path(p) for p in (extra_dirs or [])]
    env = settings.get().prompts
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    return dirs + [BUILTIN_DIR]


def version_key(version: str) -> tuple:
    """Sort key for prompt versions: ``v2`` < ``v10``."""
    return tuple(int(n) if n.isdigit() else n for n in re.findall(r"\d+|\D+", version))


def _files(dirs: list[Path]) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], Path] = {}
    for base in reversed(dirs):  # built-in first, user dirs override
        root = base / "rating"
        if not root.is_dir():
            continue
        for path in root.glob("*/*.yaml"):
            if path.parent.name == "templates":
                continue
            found[(path.parent.name, path.stem)] = path
    return found


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a prompt file must be a YAML mapping")
    return data


def _template(method: str, dirs: list[Path]) -> dict:
    for base in dirs:
        path = base / "rating" / "templates" / f"{method}.yaml"
        if path.is_file():
            return _read(path)
    raise ConfigError(f"no template for rating method {method!r} (expected rating/templates/{method}.yaml)")


def _resolve(category: str, version: str, files: dict, dirs: list[Path], seen: tuple = ()) -> dict:
    path = files.get((category, version))
    if path is None:
        known = sorted(v for c, v in files if c == category)
        hint = f"versions: {', '.join(known)}" if known else f"categories: {', '.join(sorted({c for c, _ in files}))}"
        raise ConfigError(f"no prompt {category}@{version} ({hint})")
    data = _read(path)
    parent = data.pop("extends", None)
    if parent:
        if parent in seen:
            raise ConfigError(f"{path}: `extends` loops back to {parent}")
        base = _resolve(category, str(parent), files, dirs, seen + (version,))
        base.update(data)
        data = base
    data.setdefault("category", category)
    data["version"] = version
    data["path"] = str(path)
    return data


def preferred_version(versions) -> str:
    """Of a category's versions, the one used when none is asked for: ``DEFAULT_RATING_VERSION`` if
    present, else the newest (``v10`` after ``v9``)."""
    versions = list(versions)
    return DEFAULT_RATING_VERSION if DEFAULT_RATING_VERSION in versions else max(versions, key=version_key)


def _version_for(category: str, files: dict) -> str:
    versions = [v for c, v in files if c == category]
    if not versions:
        raise ConfigError(f"no prompt category {category!r} (known: {', '.join(sorted({c for c, _ in files}))})")
    return preferred_version(versions)


def default_version(category: str, extra_dirs: list[Path] | None = None) -> str:
    """The version ``category`` is rated with when none is asked for: ``DEFAULT_RATING_VERSION`` when the
    category has it, else its newest version."""
    return _version_for(category, _files(prompt_dirs(extra_dirs)))


def load_prompt(ref: str, extra_dirs: list[Path] | None = None) -> RatingPrompt:
    """Load ``category@version`` and validate it; ``category`` alone: its :func:`default_version`."""
    category, _, version = ref.partition("@")
    dirs = prompt_dirs(extra_dirs)
    files = _files(dirs)
    version = version or _version_for(category, files)
    data = _resolve(category, version, files, dirs)
    template = _template(data.get("method", "direct"), dirs)
    for key, value in template.items():
        data.setdefault(key, value)
    try:
        return RatingPrompt.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{data['path']}: invalid prompt ({problems})") from exc


def list_prompts(extra_dirs: list[Path] | None = None) -> list[RatingPrompt]:
    """All valid prompts, by category and version."""
    dirs = prompt_dirs(extra_dirs)
    files = _files(dirs)
    keys = sorted(files, key=lambda cv: (cv[0], version_key(cv[1])))
    return [load_prompt(f"{c}@{v}", extra_dirs) for c, v in keys]


def categories(extra_dirs: list[Path] | None = None) -> list[str]:
    """Category names that have at least one prompt."""
    return sorted({c for c, _ in _files(prompt_dirs(extra_dirs))})


def diff_prompts(ref_a: str, ref_b: str, extra_dirs: list[Path] | None = None) -> str:
    """Unified diff of two resolved prompts."""
    a, b = load_prompt(ref_a, extra_dirs), load_prompt(ref_b, extra_dirs)
    return "".join(
        difflib.unified_diff(
            a.render_yaml().splitlines(keepends=True),
            b.render_yaml().splitlines(keepends=True),
            fromfile=f"{a.ref} ({a.hash})",
            tofile=f"{b.ref} ({b.hash})",
        )
    )


class QAPrompt(_PromptFile):
    """The question-answering prompt (``prompts/qa/<version>.yaml``)."""

    version: str
    system: str
    user: str
    #: the longest reply the prompt asks for, in tokens (None: the model's default)
    max_tokens: int | None = Field(default=None, ge=16, le=4096)

    @property
    def ref(self) -> str:
        return f"qa@{self.version}"


#: The QA prompt version used when none is given (`ask`, `eval qa`).
DEFAULT_QA_VERSION = "v2"


def load_qa_prompt(version: str | None = None, extra_dirs: list[Path] | None = None) -> QAPrompt:
    """Load the QA prompt of ``version`` (default ``DEFAULT_QA_VERSION``; user directories first)."""
    return _load_single(QAPrompt, "qa", "QA prompt", version or DEFAULT_QA_VERSION, extra_dirs)


def _load_single(cls, folder: str, what: str, version: str, extra_dirs: list[Path] | None):
    """``<prompts dir>/<folder>/<version>.yaml`` (user directories first) validated as ``cls``."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", version) or version.startswith("."):
        raise ConfigError(f"invalid {what} version {version!r}")
    for base in prompt_dirs(extra_dirs):
        path = base / folder / f"{version}.yaml"
        if path.is_file():
            data = _read(path)
            data["version"] = version
            data["path"] = str(path)
            try:
                return cls.model_validate(data)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise ConfigError(f"{path}: invalid {what} ({problems})") from exc
    known = sorted({p.stem for base in prompt_dirs(extra_dirs) for p in (base / folder).glob("*.yaml")})
    raise ConfigError(f"no {what} {version} (versions: {', '.join(known) or 'none'})")


class ComparePrompt(_PromptFile):
    """The pairwise company-comparison prompt (``prompts/compare/<version>.yaml``)."""

    version: str
    system: str
    user: str
    evidence_chars: int = Field(default=3000, ge=500, le=20000)  # per company

    @model_validator(mode="after")
    def _formats(self) -> "ComparePrompt":
        for field_name in ("system", "user"):
            try:
                getattr(self, field_name).format_map(_Probe())
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{field_name} template does not format: {exc}") from exc
        if "{evidence_a}" not in self.user or "{evidence_b}" not in self.user:
            raise ValueError("user must contain {evidence_a} and {evidence_b}")
        return self

    @property
    def ref(self) -> str:
        return f"compare@{self.version}"


#: The comparison prompt version used when none is given (`compare`, the workbench).
DEFAULT_COMPARE_VERSION = "v1"


def load_compare_prompt(version: str | None = None, extra_dirs: list[Path] | None = None) -> ComparePrompt:
    """Load the pairwise comparison prompt of ``version`` (default ``DEFAULT_COMPARE_VERSION``; user dirs first)."""
    return _load_single(ComparePrompt, "compare", "comparison prompt", version or DEFAULT_COMPARE_VERSION, extra_dirs)


class LineItem(BaseModel):
    """A statement line item a metric formula names (``prompts/metrics/<version>.yaml``)."""

    label: str  # what the model is told to look for
    statement: str  # where it is printed: income statement, balance sheet, cash flow statement
    aliases: list[str] = Field(default_factory=list)  # regexes that name it in a question (a look-up)
    rows: list[str] = Field(default_factory=list)  # regexes for its whole row label in a statement, preferred first
    balance: bool = False  # a balance at year end (its average needs the year before), not a flow over the year
    sign: Literal["as printed", "abs"] = "as printed"  # abs: a cost printed "(4,625)" counts as 4,625
    optional: bool = False  # absent from the statements means 0 (short-term investments)
    parts: list[str] = Field(default_factory=list)  # items whose sum it is when its own row is not printed

    @field_validator("aliases", "rows")
    @classmethod
    def _regexes(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            try:
                re.compile(alias)
            except re.error as exc:
                raise ValueError(f"alias {alias!r} is not a valid regex ({exc})") from exc
        return aliases


class MetricDefinition(BaseModel):
    """A metric as a formula over line items: ``name``, the regexes that name it, its formula and unit."""

    name: str
    aliases: list[str] = Field(min_length=1)
    formula: str
    unit: str = "ratio"

    _check_aliases = field_validator("aliases")(LineItem._regexes.__func__)


class ChoiceDefinition(BaseModel):
    """"Which of these line items is largest?": the regexes that name the set, and its options (label -> item)."""

    name: str
    aliases: list[str] = Field(min_length=1)
    options: dict[str, str] = Field(min_length=2)

    _check_aliases = field_validator("aliases")(LineItem._regexes.__func__)


class MetricLibrary(_PromptFile):
    """Financial metrics as formulas over line items (``prompts/metrics/<version>.yaml``)."""

    version: str
    items: dict[str, LineItem]
    metrics: list[MetricDefinition]
    choices: list[ChoiceDefinition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _formulas_name_items(self) -> "MetricLibrary":
        for choice in self.choices:
            for item in choice.options.values():
                if item not in self.items:
                    raise ValueError(f"choice {choice.name!r}: {item!r} is not a line item")
        for name, item in self.items.items():
            for part in item.parts:
                if part not in self.items or self.items[part].statement != item.statement or self.items[part].parts:
                    raise ValueError(f"line item {name!r}: part {part!r} is not a line item of its statement "
                                     f"without parts of its own")
        for metric in self.metrics:
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", metric.formula):
                if name not in self.items and name not in ("avg", "prev", "abs", "round"):
                    raise ValueError(f"metric {metric.name!r}: {name!r} is not a line item")
        return self

    @property
    def ref(self) -> str:
        return f"metrics@{self.version}"


#: The metric library used when none is given (metric questions in `ask` and `eval qa`).
DEFAULT_METRICS_VERSION = "v1"


def load_metric_library(version: str | None = None, extra_dirs: list[Path] | None = None) -> MetricLibrary:
    """Load the metric library of ``version`` (default ``DEFAULT_METRICS_VERSION``; user directories first)."""
    return _load_single(MetricLibrary, "metrics", "metric library", version or DEFAULT_METRICS_VERSION, extra_dirs)
