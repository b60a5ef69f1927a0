"""Assembles the command groups into the ``ldmdata`` console command."""

from __future__ import annotations

import typer

from ldmdata.cli import build, models
from ldmdata.cli.attack import attack_command
from ldmdata.cli.defend import defend_command
from ldmdata.cli.edit import edit_command
from ldmdata.cli.evaluate import evaluate_command
from ldmdata.cli.publish import publish_command
from ldmdata.cli.report import report_command
from ldmdata.cli.trace import trace_command
from ldmdata.cli.verify import verify_command

app = typer.Typer(
    name="ldmdata",
    help="Build, version and attack benchmark datasets for latent-diffusion image editing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(build.app, name="build")
app.add_typer(models.app, name="models")
app.command("verify")(verify_command)
app.command("attack")(attack_command)
app.command("defend")(defend_command)
app.command("edit")(edit_command)
app.command("evaluate")(evaluate_command)
app.command("trace")(trace_command)
app.command("report")(report_command)
app.command("publish")(publish_command)


def main() -> None:
    app()
