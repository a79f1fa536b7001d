"""From pairwise judgments to a ranking: position bias, the win matrix, a Bradley–Terry fit with intervals.

Judgments are ordered (the first company was shown as A). Here:

* **position bias** — P(first wins): the share of decided judgments (not
  ties) won by the company shown first, with a Wilson 95% interval (0.5 means
  no bias); the **flip rate**: among pairs judged in both orders (same
  sample), the share whose winning company changes with the order — what a
  one-order design (the paper's) would have got wrong by order alone;
* **win matrix** — wins of the row company over the column company (a tie
  counts half to each);
* **Bradley–Terry** — log-strengths fitted by ``choix.ilsr_pairwise`` (a tie
  enters as one win each way; a small L2 ``alpha`` keeps a company that won
  or lost everything finite), centred to mean 0; 95% percentile intervals
  for strengths and ranks by bootstrap over judgments (resampled with
  replacement, refitted).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

import numpy as np
import pandas as pd

DEFAULT_ALPHA = 0.1
DEFAULT_BOOT = 1000


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (None, None when n = 0)."""
    if n == 0:
        return None, None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def _ok(judgments: Sequence) -> list:
    return [j for j in judgments if j.status == "ok"]


def position_bias(judgments: Sequence) -> dict:
    """P(first wins) with its interval, the flip rate over pairs judged in both orders, and counts."""
    ok = _ok(judgments)
    decided = [j for j in ok if j.verdict in ("A", "B")]
    first_wins = sum(1 for j in decided if j.verdict == "A")
    low, high = wilson(first_wins, len(decided))
    by_pair: dict[tuple, dict] = defaultdict(dict)
    for j in ok:
        key = (frozenset((j.first, j.second)), j.sample_index)
        by_pair[key][(j.first, j.second)] = j.winner
    both = [outcomes for outcomes in by_pair.values() if len(outcomes) == 2]
    flips = sum(1 for outcomes in both if len(set(outcomes.values())) > 1)
    return {
        "judgments": len(judgments),
        "failed": len(judgments) - len(ok),
        "ties": sum(1 for j in ok if j.verdict == "tie"),
        "decided": len(decided),
        "first_wins": first_wins,
        "p_first_wins": round(first_wins / len(decided), 4) if decided else None,
        "p_first_wins_ci": [low, high],
        "pairs_both_orders": len(both),
        "flipped": flips,
        "flip_rate": round(flips / len(both), 4) if both else None,
        "consistent": len(both) - flips,
    }


def win_matrix(items: Sequence[str], judgments: Sequence) -> pd.DataFrame:
    """Wins of the row company over the column company (ties count ½ each)."""
    index = {name: i for i, name in enumerate(items)}
    grid = np.zeros((len(items), len(items)))
    for j in _ok(judgments):
        a, b = index[j.first], index[j.second]
        if j.verdict == "A":
            grid[a, b] += 1
        elif j.verdict == "B":
            grid[b, a] += 1
        else:
            grid[a, b] += 0.5
            grid[b, a] += 0.5
    return pd.DataFrame(grid, index=list(items), columns=list(items))


def _pairs(items: Sequence[str], judgments: Sequence) -> list[tuple[int, int]]:
    index = {name: i for i, name in enumerate(items)}
    data = []
    for j in judgments:
        a, b = index[j.first], index[j.second]
        if j.verdict == "A":
            data.append((a, b))
        elif j.verdict == "B":
            data.append((b, a))
        else:  # tie: one win each way
            data += [(a, b), (b, a)]
    return data


def fit_strengths(n_items: int, data: Sequence[tuple[int, int]], alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Bradley–Terry log-strengths (mean 0) from (winner, loser) index pairs, by ``choix.ilsr_pairwise``."""
    import choix

    if not data:
        return np.zeros(n_items)
    params = np.asarray(choix.ilsr_pairwise(n_items, list(data), alpha=alpha), dtype=float)
    return params - params.mean()


def _ranks(params: np.ndarray) -> np.ndarray:
    """Rank 1 = strongest; ties share the better rank."""
    return np.array([1 + int(np.sum(params > p + 1e-12)) for p in params])


def bradley_terry(
    items: Sequence[str],
    judgments: Sequence,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
) -> list[dict]:
    """Ranking rows (best first): strength with 95% CI, rank with 95% interval, wins/losses/ties, P(beats average)."""
    items = list(items)
    ok = _ok(judgments)
    params = fit_strengths(len(items), _pairs(items, ok), alpha)
    boot = np.empty((0, len(items)))
    if ok and n_boot > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(n_boot):
            sample = [ok[i] for i in rng.integers(0, len(ok), len(ok))]
            draws.append(fit_strengths(len(items), _pairs(items, sample), alpha))
        boot = np.vstack(draws)
    ranks = _ranks(params)
    boot_ranks = np.vstack([_ranks(b) for b in boot]) if len(boot) else None
    rows = []
    for i, name in enumerate(items):
        wins = sum(1 for j in ok if j.winner == name)
        involved = [j for j in ok if name in (j.first, j.second)]
        ties = sum(1 for j in involved if j.verdict == "tie")
        row = {
            "company": name, "strength": round(float(params[i]), 4), "rank": int(ranks[i]),
            "p_beats_average": round(float(1 / (1 + math.exp(-params[i]))), 4),
            "wins": wins, "losses": len(involved) - wins - ties, "ties": ties,
            "strength_ci": [None, None], "rank_ci": [None, None],
        }
        if boot_ranks is not None:
            lo, hi = np.percentile(boot[:, i], [2.5, 97.5])
            row["strength_ci"] = [round(float(lo), 4), round(float(hi), 4)]
            rlo, rhi = np.percentile(boot_ranks[:, i], [2.5, 97.5])
            row["rank_ci"] = [int(math.floor(rlo)), int(math.ceil(rhi))]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["rank"], -r["strength"], r["company"]))


def analyse(items: Sequence[str], judgments: Sequence, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> dict:
    """Everything a comparison reports: ranking, win matrix, position bias."""
    matrix = win_matrix(items, judgments)
    return {
        "companies": list(items),
        "ranking": bradley_terry(items, judgments, n_boot=n_boot, seed=seed),
        "win_matrix": {str(a): {str(b): float(v) for b, v in row.items()} for a, row in matrix.iterrows()},
        "position_bias": position_bias(judgments),
        "bootstrap": {"resamples": n_boot, "seed": seed, "alpha": DEFAULT_ALPHA},
    }
