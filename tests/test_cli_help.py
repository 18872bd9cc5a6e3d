"""`fovea --help` names every command and group, each with a one-line summary."""

import re

from typer.testing import CliRunner

from fovea.cli import app

COMMANDS = {"predict", "export", "serve-model", "serve", "worker", "evaluate", "explain", "zoo", "db", "users"}


def test_top_level_help_lists_every_command_on_one_line_each():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    panel = result.output.split("Commands", 1)[1]
    rows = [line.strip("│ ").rstrip() for line in panel.splitlines() if line.startswith("│")]
    named = {re.match(r"(\S+)\s{2,}\S", row).group(1): row for row in rows if re.match(r"\S+\s{2,}\S", row)}
    assert set(named) >= COMMANDS, rows
    assert len(rows) == len(named), rows  # no summary wraps onto a second line
