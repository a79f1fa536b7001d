"""Eval suites: one YAML file says what to rate, how often, and what counts as good enough.

A suite lists filings (paths, or a ticker with years), categories, models,
prompt versions, samples per cell (repeats), the sampling temperature and
thresholds; ``filinglens eval run SUITE`` (:mod:`filinglens.evals.run`) rates
every cell and checks the thresholds::

    name: smoke
    filings:
      - paths: ["${FILINGLENS_SHARED}/data/filings/html/aapl-10-k-2024-11-01.html"]
      - ticker: AAPL            # label the files (PDFs carry no ticker) …
        years: 2015-2022        # … and keep these fiscal years
        paths: ["${FILINGLENS_SHARED}/data/filings/pdf/APPLE_{year}_10K.pdf"]
      - ticker: MSFT            # no paths: the ticker's indexed (or fetched) 10-Ks
        years: [2021, 2023]
    categories: [environment, people]     # default: every category
    models: [local]
    prompt_versions: [v1, v2]
    samples: 2
    temperature: 0.7
    paper: true                 # agreement with the paper's Command-R+ ratings
    metamorphic: {checks: [...]}  # optional, run by evals/metamorphic.py
    reference: ${FILINGLENS_SHARED}/data/labels/ratings_dev.json   # optional: criterion validity
    thresholds:
      min_test_retest_alpha: 0.5

Paths: ``${FILINGLENS_SHARED}`` (or ``${shared}``) is the shared data folder
(:func:`filinglens.settings.shared_dir`), other ``${VAR}`` are environment
variables; ``{year}`` repeats a path for each of ``years``; globs are
expanded; a relative path is looked up beside the suite file, then in the
repository. Every problem is reported as ``suite.yaml: filings[1].years: …``.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from filinglens.errors import ConfigError, InputError
from filinglens.settings import shared_dir
from filinglens.store import json_hash

SUITES_DIR = Path(__file__).parent / "suites"
REPO_DIR = Path(__file__).resolve().parent.parent
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SHARED_NAMES = {"FILINGLENS_SHARED", "shared", "SHARED"}


class SuiteError(InputError):
    """The suite file cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_years(value: Any) -> list[int] | None:
    """Suite ``years:`` values, parsed by the one year parser (``ValueError`` for pydantic)."""
    from filinglens.errors import InputError
    from filinglens.retrieval.filing import parse_years as parse

    try:
        return parse(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None

class FilingSpec(_Strict):
    """Filings to rate: ``paths`` (files, globs, ``{year}`` templates) and/or ``ticker`` + ``years``."""

    paths: list[str] = Field(default_factory=list)
    ticker: str | None = None
    years: list[int] | None = None

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("years", mode="before")
    @classmethod
    def _years(cls, value):
        return parse_years(value)

    @field_validator("ticker")
    @classmethod
    def _upper(cls, value):
        return value.strip().upper() if value else value

    @model_validator(mode="after")
    def _something(self) -> "FilingSpec":
        if not self.paths and not self.ticker:
            raise ValueError("give `paths` or a `ticker` (with `years`)")
        if any("{year}" in p for p in self.paths) and not self.years:
            raise ValueError("a path with {year} needs `years`")
        return self

    @property
    def year_range(self) -> str | None:
        """``"2015-2022"`` for :func:`filinglens.app.resolve_targets` (None: all years)."""
        return f"{self.years[0]}-{self.years[-1]}" if self.years else None


class PaperSpec(_Strict):
    """Agreement with the paper's Command-R+ ratings (``../shared/data/paper``)."""

    enabled: bool = True
    prompt: Literal["normal", "strict"] = "normal"


class MetamorphicSpec(_Strict):
    """Metamorphic validity checks (``filinglens.evals.metamorphic.run_metamorphic``)."""

    checks: list[str] = Field(default_factory=list)  # empty: the module's default checks
    models: list[str] | None = None  # default: the suite's
    prompt_versions: list[str] | None = None
    categories: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # passed through as keyword arguments


class Thresholds(_Strict):
    """Gates: ``eval run`` exits non-zero when one is not met.

    ``min_*`` statistics must be at least, ``max_*`` at most, the value.
    Test-retest gates apply to every rater, cross gates to every pair, the
    paper gate to every rater, the reference gates (agreement with the suite's
    ``reference`` labels, all cells) to every rater. A statistic that cannot be
    computed (e.g. α when all samples agree on every cell) fails only with
    ``on_missing: fail``.
    """

    max_failed_share: float | None = Field(default=None, ge=0, le=1)
    min_test_retest_alpha: float | None = Field(default=None, ge=-1, le=1)
    min_test_retest_exact: float | None = Field(default=None, ge=0, le=1)
    min_test_retest_within_one: float | None = Field(default=None, ge=0, le=1)
    max_test_retest_mean_spread: float | None = Field(default=None, ge=0, le=2)
    min_cross_prompt_alpha: float | None = Field(default=None, ge=-1, le=1)
    min_cross_model_alpha: float | None = Field(default=None, ge=-1, le=1)
    max_cross_mean_abs_diff: float | None = Field(default=None, ge=0, le=2)
    min_paper_alpha: float | None = Field(default=None, ge=-1, le=1)
    max_paper_mean_abs_diff: float | None = Field(default=None, ge=0, le=2)
    min_metamorphic_pass_rate: float | None = Field(default=None, ge=0, le=1)
    min_reference_exact: float | None = Field(default=None, ge=0, le=1)
    min_reference_within_one: float | None = Field(default=None, ge=0, le=1)
    min_reference_kappa: float | None = Field(default=None, ge=-1, le=1)  # quadratic-weighted
    min_reference_alpha: float | None = Field(default=None, ge=-1, le=1)  # Krippendorff's α, ordinal
    min_evidence_recall: float | None = Field(default=None, ge=0, le=1)  # reference quotes in the shown evidence
    alpha_level: Literal["interval", "ordinal"] = "interval"
    on_missing: Literal["skip", "fail"] = "skip"


def _default_version() -> str:
    from filinglens.prompts.loader import DEFAULT_RATING_VERSION

    return DEFAULT_RATING_VERSION


class Suite(_Strict):
    """A validated eval suite (see the module docstring for the file format)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    filings: list[FilingSpec] = Field(default_factory=list)  # empty: the files the reference labels name
    categories: list[str] = Field(default_factory=list)  # empty: all categories
    models: list[str] = Field(default_factory=lambda: ["local"], min_length=1)
    prompt_versions: list[str] = Field(default_factory=lambda: [_default_version()], min_length=1)
    samples: int = Field(default=1, ge=1, le=100)
    temperature: float = Field(default=0.0, ge=0, le=2)
    evidence_chars: int | None = Field(default=None, ge=500)
    paper: PaperSpec = Field(default_factory=lambda: PaperSpec(enabled=False))
    metamorphic: MetamorphicSpec | None = None
    reference: str | None = None  # reference labels (JSON or CSV; evals/reference.py)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    n_boot: int = Field(default=1000, ge=0, le=100_000)
    n_boot_slow: int = Field(default=200, ge=0, le=10_000)
    seed: int = 0
    path: str | None = Field(default=None, exclude=True)

    @field_validator("models", "prompt_versions", "categories", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("models", "prompt_versions", "categories")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen = [v for i, v in enumerate(value) if v in value[:i]]
        if seen:
            raise ValueError(f"listed twice: {', '.join(dict.fromkeys(seen))}")
        return value

    @field_validator("paper", mode="before")
    @classmethod
    def _paper(cls, value):
        if value is None or isinstance(value, bool):
            return {"enabled": bool(value)}
        return value

    @field_validator("metamorphic", mode="before")
    @classmethod
    def _metamorphic(cls, value):
        if value is True:
            return {}
        if value is False:
            return None
        if isinstance(value, list):
            return {"checks": value}
        return value

    @model_validator(mode="after")
    def _filings_or_reference(self) -> "Suite":
        if not self.filings and not self.reference:
            raise ValueError("give `filings` (or `reference` labels that name the filings)")
        return self

    @model_validator(mode="after")
    def _prompts_exist(self) -> "Suite":
        from filinglens.prompts.loader import categories as known_categories, load_prompt

        known = known_categories()
        unknown = [c for c in self.categories if c not in known]
        if unknown:
            raise ValueError(f"unknown categories {unknown} (known: {', '.join(known)})")
        for category in self.categories or known:
            for version in self.prompt_versions:
                try:
                    load_prompt(f"{category}@{version}")
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
        return self

    # ------------------------------------------------------------------ derived

    @property
    def category_list(self) -> list[str]:
        from filinglens.prompts.loader import categories as known_categories

        return list(self.categories) or known_categories()

    @property
    def raters(self) -> list[tuple[str, str]]:
        """(model, prompt version) pairs, models first: each is one rater ``model@version``."""
        return [(m, v) for m in self.models for v in self.prompt_versions]

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    def content_hash(self) -> str:
        """Hash of everything that decides the ratings (not the thresholds or the report)."""
        return json_hash(self.model_dump(include={"filings", "categories", "models", "prompt_versions",
                                                  "samples", "temperature", "evidence_chars"}))

    def resolve_paths(self, spec: FilingSpec) -> list[Path]:
        """The files of one filings entry (see the module docstring); missing files are an error."""
        out: list[Path] = []
        for raw in spec.paths:
            templates = [raw.replace("{year}", str(y)) for y in spec.years] if "{year}" in raw else [raw]
            for text in templates:
                expanded = expand_vars(text, self.path)
                matches = _find(expanded, self.base_dir)
                if not matches:
                    raise SuiteError(f"{self.path or self.name}: no file matches `{raw}`"
                                     + (f" (as {expanded})" if expanded != raw else ""))
                out.extend(m for m in matches if m not in out)
        return out


    def reference_path(self) -> Path | None:
        """The reference labels file: ``${FILINGLENS_SHARED}``/``${VAR}`` expanded; a relative path is looked
        up beside the suite file, in the repository, then in the shared data folder."""
        if not self.reference:
            return None
        expanded = expand_vars(self.reference, self.path)
        path = Path(expanded)
        bases = [Path("/")] if path.is_absolute() else [self.base_dir, REPO_DIR, shared_dir()]
        for base in bases:
            if (base / path).is_file():
                return (base / path).resolve()
        raise SuiteError(f"{self.path or self.name}: reference: no file `{self.reference}`"
                         + (f" (as {expanded})" if expanded != self.reference else ""))

    def load_reference(self):
        """The suite's reference labels (:class:`filinglens.evals.reference.ReferenceSet`), or None."""
        from filinglens.evals.reference import load_reference

        path = self.reference_path()
        return load_reference(path, self.base_dir) if path else None


def expand_vars(text: str, where: str | None = None) -> str:
    """``${FILINGLENS_SHARED}`` / ``${shared}`` → the shared data dir; ``${VAR}`` → the environment; ``~``."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name in _SHARED_NAMES:
            return str(shared_dir())
        if name in os.environ:
            return os.environ[name]
        raise SuiteError(f"{where or 'suite'}: `${{{name}}}` in `{text}` is not set")

    return os.path.expanduser(_VAR.sub(replace, text))


def _find(text: str, base: Path) -> list[Path]:
    """Files for a path or glob: absolute, else beside the suite file, then in the repository."""
    path = Path(text)
    bases = [Path("/")] if path.is_absolute() else [base, REPO_DIR]
    for root in bases:
        candidate = root / path
        if glob.has_magic(text):
            found = sorted(Path(p) for p in glob.glob(str(candidate)) if Path(p).is_file())
        else:
            found = [candidate] if candidate.exists() else []
        if found:
            return [p.resolve() for p in found]
    return []


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after", "function-before") and not str(part).startswith("function-"):
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _problems(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif error["type"] == "missing":
            message = "required"
        lines.append(f"{_where(error['loc'])}: {message}")
    return "; ".join(lines)


def suite_path(ref: str | Path) -> Path:
    """A suite file path, or the name of a built-in suite (``smoke`` → ``evals/suites/smoke.yaml``)."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.exists():
        raise SuiteError(f"{path}: not a file")
    builtin = SUITES_DIR / f"{ref}.yaml"
    if path.suffix == "" and "/" not in str(ref) and builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
    raise SuiteError(f"no suite file {ref} (built-in suites: {names})")


def parse_suite(data: Any, path: str | Path | None = None) -> Suite:
    """Validate suite data (a mapping); errors become one ``SuiteError`` naming each field."""
    where = str(path) if path else "suite"
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: a suite must be a YAML mapping")
    data = dict(data)
    if "name" not in data and path:
        data["name"] = Path(path).stem
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(f"{where}: {_problems(exc)}") from None
    suite.path = str(Path(path).resolve()) if path else None
    return suite


OVERRIDABLE = ("models", "prompt_versions", "categories", "samples", "temperature")


def load_suite(ref: str | Path, overrides: dict[str, Any] | None = None) -> Suite:
    """Read and validate a suite file (or a built-in suite by name).

    ``overrides`` replace top-level keys (``models``, ``prompt_versions``,
    ``categories``, ``samples``, ``temperature``; ``None`` or empty values are
    ignored) before validation, so ``eval run SUITE -p v5`` tries a new
    prompt version on a suite's filings.  The result is a different suite
    content (new run ids), but identical model calls still come from the cache.
    """
    path = suite_path(ref)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot be read ({exc})") from None
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE:
            raise SuiteError(f"cannot override `{key}` (only {', '.join(OVERRIDABLE)})")
        if value is not None and value != [] and isinstance(data, dict):
            data[key] = list(value) if isinstance(value, tuple) else value
    return parse_suite(data, path)


def list_suites() -> list[Path]:
    """The built-in suite files."""
    return sorted(SUITES_DIR.glob("*.yaml"))
