"""Human-readable views of parsed filings (rich tables)."""

from __future__ import annotations

from rich.table import Table

from filinglens.retrieval.filing import Filing


def approx_tokens(text: str) -> int:
    """Rough token count (~4 characters per token for English prose)."""
    return (len(text) + 3) // 4


def sections_table(filing: Filing) -> Table:
    """A table of the filing's items: item, title, status, characters, tokens; warnings (truncation) below it."""
    meta = filing.metadata()
    caption = " · ".join(
        str(v)
        for v in (meta["company"], f"CIK {meta['cik']}" if meta["cik"] else None, meta["form"],
                  f"FY{meta['fiscal_year']}" if meta["fiscal_year"] else None, meta["period_end"])
        if v
    )
    table = Table(title=caption, title_justify="left")
    if filing.warnings:
        what = "looks truncated" if filing.truncated else "warning"
        table.caption = f"{what}: " + "; ".join(filing.warnings)
        table.caption_style = "yellow"
        table.caption_justify = "left"
    table.add_column("item", style="bold")
    table.add_column("title")
    table.add_column("status")
    table.add_column("chars", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("tables", justify="right")
    colors = {"body": "green", "stub": "yellow", "absent": "dim"}
    for item in filing.items.values():
        note = f" → {item.reference}" if item.reference else ""
        table.add_row(
            item.item,
            (item.title or "")[:70],
            f"[{colors[item.status]}]{item.status}[/]{note}",
            f"{len(item.text):,}",
            f"{approx_tokens(item.text):,}",
            str(len(item.tables)),
        )
    return table
