"""``ldmdata publish DIR --repo-id OWNER/NAME``: upload a built dataset to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import console, user_errors
from ldmdata.publish.defaults import DEFAULT_LICENSE


@user_errors
def publish_command(
    dataset_dir: Annotated[Path, typer.Argument(help="A dataset folder written by ldmdata.")],
    repo_id: Annotated[
        str, typer.Option("--repo-id", help="Hub dataset repo, OWNER/NAME (created if missing).")
    ],
    private: Annotated[
        bool,
        typer.Option("--private", help="Create the repo private; never upload to a public one."),
    ] = False,
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="Branch to commit to (created from main if missing)."),
    ] = None,
    dry_run: Annotated[
        Path | None,
        typer.Option(
            "--dry-run",
            metavar="OUT_DIR",
            help="Write exactly the files that would be uploaded into OUT_DIR; upload nothing.",
        ),
    ] = None,
    license: Annotated[
        str, typer.Option("--license", help="License id for the card's YAML (Hub license ids).")
    ] = DEFAULT_LICENSE,
    pretty_name: Annotated[
        str | None, typer.Option("--pretty-name", help="Title of the dataset card.")
    ] = None,
) -> None:
    """Verify DATASET_DIR, then upload its shards, manifest, preview and a dataset card.

    The token comes from HF_TOKEN or `hf auth login`; it is never printed or written.
    """
    from ldmdata.publish import publish

    result = publish(
        dataset_dir,
        repo_id,
        private=private,
        revision=revision,
        dry_run=dry_run,
        license=license,
        pretty_name=pretty_name,
    )
    if result.dry_run:
        console.print(
            f"dry run: wrote {len(result.files)} files for {result.repo_id}@{result.revision} "
            f"to {dry_run} (nothing uploaded)",
            markup=False, soft_wrap=True,
        )
        for name in result.files:
            console.print(f"  {name}", markup=False, soft_wrap=True)
    else:
        console.print(
            f"published {len(result.files)} files to {result.repo_id}@{result.revision}: "
            f"{result.commit_url}",
            markup=False, soft_wrap=True,
        )
