"""The CLI's one-line errors print messages as they are: square brackets are text, not Rich markup.

Messages quote shell commands (`pip install 'fovea[train]'`) and user input (`--set [cat]`); read as markup,
`[train]` and `[cat]` would silently vanish from what the user is told to type.
"""

import typer
from typer.testing import CliRunner

from fovea.cli import app, friendly_errors
from fovea.errors import FoveaError


def test_a_real_command_quotes_bracketed_input_intact():
    result = CliRunner().invoke(app, ["predict", "no-such-model.onnx", "page.png", "--set", "[cat]"])
    assert result.exit_code == 2
    assert "error: --set expects key=value, got '[cat]'" in result.stderr, result.stderr


def failing_app(exc: Exception) -> typer.Typer:
    """A one-command CLI whose command, wrapped like fovea's, raises `exc`."""
    shell = typer.Typer()

    @shell.command()
    @friendly_errors
    def fail() -> None:
        raise exc

    return shell


def test_brackets_survive_in_every_kind_of_expected_error():
    for exc in (FoveaError("install it: pip install 'fovea[train]'"), ValueError("[bold]not bold[/bold] [/]")):
        result = CliRunner().invoke(failing_app(exc), [])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == f"error: {exc}", result.stderr
