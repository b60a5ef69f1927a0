"""params.yaml: one section per stage, plus shared ``source`` and ``models`` sections."""

from __future__ import annotations

from pathlib import Path

import yaml

from ldmdata.errors import LdmdataError


def load_params(path: Path | str = "params.yaml") -> dict:
    """The whole params file as a dict; LdmdataError on a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise LdmdataError(f"params file not found: {path}")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise LdmdataError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise LdmdataError(f"{path} must hold a mapping of sections")
    return params


def merge_known(defaults: dict, given: dict, where: str) -> dict:
    """``defaults`` updated by ``given``; an unknown key is a user error naming ``where``."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise LdmdataError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **given}


def parse_prompts(text: str) -> str | list[int]:
    """``all`` or comma-separated prompt indices (``0,2``)."""
    if text.strip() == "all":
        return "all"
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise LdmdataError(f"--prompts takes 'all' or indices like 0,2; got {text!r}") from None


def is_int(value) -> bool:
    """An integer that is not a bool (YAML's ``true`` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)
