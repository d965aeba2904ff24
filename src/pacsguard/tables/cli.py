"""CLI commands of pacsguard.tables (registered by pacsguard.cli): a thin shell over the API."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from pacsguard.core.keys import load_key
from pacsguard.core.progress import Bar
from pacsguard.core.texttable import TextTable
from pacsguard.tables.deid import DeidTablesReport, deidentify_table
from pacsguard.tables.draft import write_draft
from pacsguard.tables.encoding import ENCODINGS
from pacsguard.tables.errors import PolicyError
from pacsguard.tables.inspect import SAMPLE_ROWS, inspect_table
from pacsguard.tables.policy import Unknown, load_policy
from pacsguard.tables.risk import RiskReport, risk_report
from pacsguard.tables.tableio import open_table

tables_app = typer.Typer(
    help="De-identify clinical tables (CSV/TSV, Parquet, Excel) in step with the images.",
    no_args_is_help=True,
)
console = Console(stderr=True)
_ENCODING = typer.Option(
    "auto",
    "--encoding",
    metavar="NAME",
    help=f"CSV text encoding: auto (detected), {', '.join(ENCODINGS)}.",
)
_SEPARATOR = typer.Option(
    None, "--separator", metavar="SEP", help="CSV separator (default: detected)."
)


@tables_app.command("inspect")
def inspect_command(
    file: Path = typer.Argument(..., help="The table to classify."),
    policy_out: Path = typer.Option(..., "--policy-out", help="Where to write the draft policy."),
    sample_rows: int = typer.Option(SAMPLE_ROWS, help="Rows sampled from the start."),
    encoding: str = _ENCODING,
    separator: str | None = _SEPARATOR,
) -> None:
    """Classify every column and write a draft policy for a person to review."""
    with Bar(f"inspecting {file.name} (first {sample_rows} rows)", unit="tables", console=console):
        inspection = inspect_table(
            file, sample_rows=sample_rows, encoding=encoding, separator=separator
        )
    write_draft(inspection, policy_out)
    table = TextTable(title=Text(file.name))
    for heading in ("column", "kind", "proposed action", "why"):
        table.add_column(heading, overflow="fold")  # wrapped at any width, never cut with …
    for column in inspection.columns:
        table.add_row(column.name, column.kind, column.action, column.note)
    Console().print(table)
    typer.echo(f"wrote draft policy to {policy_out}: review it before `pacsguard tables deid`")


def _summary(report: DeidTablesReport) -> None:
    for table in report.tables:
        for sheet in table.sheets:
            where = table.output.name + (f" [{sheet.sheet}]" if sheet.sheet else "")
            actions: dict[str, int] = {}
            for column in sheet.columns:
                actions[column.action] = actions.get(column.action, 0) + 1
            done = ", ".join(f"{n} {a}" for a, n in sorted(actions.items()))
            removed = sum(c.values_removed for c in sheet.columns)
            typer.echo(f"{where}: {sheet.rows_out}/{sheet.rows_in} rows; columns: {done}")
            if removed:
                typer.echo(f"  {removed} values could not be transformed and were emptied")
            if sheet.unclassified_dropped:
                typer.echo(f"  dropped unclassified: {', '.join(sheet.unclassified_dropped)}")
            if sheet.risk:
                _print_risk(sheet.risk, "  risk")
            if sheet.risk_after_suppression:
                typer.echo(f"  suppressed {sheet.rows_suppressed} rows below k")
                _print_risk(sheet.risk_after_suppression, "  risk after suppression")
    typer.echo(f"manifest: {report.manifest}")


def _print_risk(risk: RiskReport, label: str) -> None:
    line = (
        f"{label}: k={risk.k}, classes={risk.classes}, records at risk (>{risk.threshold:g})="
        f"{risk.records_at_risk:.2%}, highest={risk.highest_risk:.3f}, "
        f"average={risk.average_risk:.3f}"
    )
    if risk.l_distinct is not None:
        line += f", l-diversity={risk.l_distinct} (entropy {risk.l_entropy:.2f})"
    typer.echo(line)


@tables_app.command("deid")
def deid_command(
    paths: list[Path] = typer.Argument(
        ..., metavar="FILE... OUTPUT", help="Input tables, then the output folder."
    ),
    key: Path | None = typer.Option(
        None, "--key", help="Project key file (or PACSGUARD_KEY_FILE / PACSGUARD_KEY)."
    ),
    policy: Path = typer.Option(..., "--policy", help="Reviewed policy (YAML or TOML)."),
    unknown: str | None = typer.Option(
        None,
        "--unknown",
        metavar="refuse|drop",
        help="Columns the policy does not name: refuse (default) or drop.",
    ),
    encoding: str = _ENCODING,
    separator: str | None = _SEPARATOR,
) -> None:
    """Apply a policy: outputs in OUTPUT/, same formats, plus pacsguard-tables.json."""
    if len(paths) < 2:
        raise typer.BadParameter("give at least one input table and the output folder")
    if unknown not in (None, "refuse", "drop"):
        raise PolicyError("--unknown must be refuse or drop")
    *inputs, output = paths
    project_key = load_key(key)
    loaded = load_policy(policy)
    chosen: Unknown | None = "drop" if unknown == "drop" else "refuse" if unknown else None
    bar = Bar(
        "starting",
        total=len(inputs),
        unit="tables",
        console=console,
        stopping="outputs are written whole or not at all; nothing half-written is left",
    )
    with bar:
        report = deidentify_table(
            inputs,
            output,
            key=project_key,
            policy=loaded,
            unknown=chosen,
            encoding=encoding,
            separator=separator,
            progress=lambda step: bar.update(description=step),
            on_table=lambda done, total: bar.update(completed=done, total=total),
        )
    _summary(report)
    rows = sum(sheet.rows_out for table in report.tables for sheet in table.sheets)
    typer.echo(f"done: {bar.end_line([f'{rows} rows written to {output}'])}")


@tables_app.command("risk")
def risk_command(
    file: Path = typer.Argument(..., help="A table, typically a de-identified one."),
    qi: list[str] = typer.Option(
        [], "--qi", metavar="COLUMN", help="A quasi-identifier column (repeat)."
    ),
    sensitive: str | None = typer.Option(
        None, "--sensitive", metavar="COLUMN", help="Sensitive column for l-diversity."
    ),
    threshold: float = typer.Option(
        0.2,
        "--threshold",
        metavar="P",
        help="Prosecutor risk (0 < P <= 1) above which a record is at risk.",
    ),
    policy: Path | None = typer.Option(None, help="Take the risk section from this policy."),
    encoding: str = _ENCODING,
    separator: str | None = _SEPARATOR,
) -> None:
    """k-anonymity, l-diversity and prosecutor risk of a table, as ARX reports them."""
    if policy is not None:
        spec = load_policy(policy).risk
        if spec is None:
            raise PolicyError(f"policy {policy} has no risk section")
        qi, sensitive, threshold = list(spec.quasi_identifiers), spec.sensitive, spec.threshold
    qi = list(dict.fromkeys(qi))  # --qi X --qi X: the column once
    if not qi:
        raise PolicyError(
            "give the quasi-identifiers: --qi COLUMN (repeat), or --policy FILE with a risk "
            "section; with none, the whole table is one class and k means nothing"
        )
    with open_table(file, encoding=encoding, separator=separator) as table:
        reports = []
        bar = Bar("computing risk", total=len(table.sheets), unit="sheets", console=console)
        with bar:
            for sheet in table.sheets:
                label = f"{file.name}" + (f" [{sheet.name}]" if sheet.name else "")
                bar.update(description=f"computing risk of {label}")
                reports.append((label, risk_report(sheet.frame, qi, sensitive, threshold)))
                bar.advance()
    for label, report in reports:
        _print_risk(report, label)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(tables_app, name="tables")
