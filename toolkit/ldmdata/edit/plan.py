"""The DVC ``edit`` stage: the default white-box run plus transfer and defence runs, per task.

For one task it edits, into ``OUT/<run>/<input>``:

- ``default``: the clean dataset (``clean``) and every attack of ``attack.targets``,
  ``attack.photoguard``, ``attack.protections`` and (inpainting) ``attack.inpaint_protections``
  with the model each attack targeted and the attacked prompt;
- every run of ``edit.runs`` (``name: {editor, model, revision, prompt_index, defence,
  attacks, tasks, <edit param>...}``): a model transfer (another editor or model), a prompt
  transfer (``prompt_index``) or a defence, on the attacks it lists (default: all). A run
  whose edits of clean images would differ from the default's (another editor, model or edit
  param) edits the clean dataset too (``OUT/<run>/clean``).

``OUT/plan.json`` names each edited set and the clean edits it is compared with.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from ldmdata.dataset.inputs import EDIT_PLAN, open_input
from ldmdata.dataset.writer import write_json_atomic
from ldmdata.edit.params import OVERRIDABLE, check_editor, default_editor, resolve_edit_params
from ldmdata.edit.runner import EditOptions, edit_dataset, parse_prompt_index
from ldmdata.engine import ENGINE_DEFAULTS, Engine, connect
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import editor_ref
from ldmdata.params import merge_known, parse_prompts
from ldmdata.purify import parse_defence

DEFAULT_RUN = "default"
CLEAN = "clean"

STAGE_DEFAULTS: dict = {
    "preset": "paper",
    **{name: None for name in OVERRIDABLE},
    "prompts": "all",
    "limit": None,
    "batch_size": 4,
    "device": "auto",
    "dtype": "float32",
    "shard_size": 1000,
    "threads": 1,
    **ENGINE_DEFAULTS,
    "runs": {},
}
RUN_DEFAULTS: dict = {
    "editor": None, "model": None, "revision": None, "prompt_index": "same", "defence": None,
    "attacks": None, "tasks": None, **{name: None for name in OVERRIDABLE},
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def attack_names(attack: dict, task: str) -> list[str]:
    """The attack stages of ``task`` that params.yaml's ``attack`` section asks for.

    img2img and inpaint: the study's targets, PhotoGuard, the protections (inpaint: also the
    inpainting-only ones) and the budget points; sr: the upscaler's list ``attack.sr``.
    """
    if task == "sr":
        return list(attack.get("sr") or [])
    lists = ["targets", "photoguard", "protections", "budgets"]
    if task == "inpaint":
        lists.append("inpaint_protections")
    return [name for key in lists for name in attack.get(key) or []]


def _runs(task: str, section: dict, targets: list[str]) -> list[dict]:
    """The default run and the configured runs that apply to ``task``, validated."""
    base = {name: section[name] for name in OVERRIDABLE}
    runs = [{"name": DEFAULT_RUN, "editor": default_editor(task), "model": None,
             "revision": None, "prompt_index": "same", "defence": None, "attacks": targets,
             "overrides": base}]
    if not isinstance(section["runs"], dict):
        raise LdmdataError("params.yaml edit.runs must map run names to settings")
    for name, given in section["runs"].items():
        where = f"params.yaml edit.runs.{name}"
        if not isinstance(name, str) or not _NAME.match(name) or name in (DEFAULT_RUN, CLEAN):
            raise LdmdataError(f"{where}: a run name is letters, digits and . _ + - "
                               f"(not {DEFAULT_RUN} or {CLEAN})")
        spec = merge_known(RUN_DEFAULTS, given or {}, where)
        if spec["tasks"] is not None and task not in spec["tasks"]:
            continue
        attacks = spec["attacks"] if spec["attacks"] is not None else targets
        unknown = [a for a in attacks if a not in targets]
        if unknown:
            raise LdmdataError(f"{where}: attacks {', '.join(map(str, unknown))} are not in "
                               "attack.targets, .photoguard, .protections or "
                               ".inpaint_protections")
        editor = spec["editor"] or default_editor(task)
        check_editor(editor, task)
        runs.append({
            "name": name, "editor": editor, "model": spec["model"], "revision": spec["revision"],
            "prompt_index": parse_prompt_index(spec["prompt_index"]),
            "defence": spec["defence"], "attacks": list(attacks),
            "overrides": {**base, **{k: spec[k] for k in OVERRIDABLE if spec[k] is not None}},
        })
    return runs


def edit_from_params(
    task: str,
    dataset_dir: Path,
    attacks_dir: Path,
    out_dir: Path,
    params: dict,
    tiny_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run every edit of ``task`` that params.yaml asks for; returns (and writes) the plan."""
    section = merge_known(STAGE_DEFAULTS, params.get("edit") or {}, "params.yaml edit")
    targets = attack_names(params.get("attack") or {}, task)
    models = dict(params.get("models") or {})
    profile = models.pop("profile", "tiny")
    dataset_dir, attacks_dir, out_dir = Path(dataset_dir), Path(attacks_dir), Path(out_dir)
    dataset = open_input(dataset_dir, "dataset")
    if dataset.task != task:
        raise LdmdataError(f"{dataset_dir} is a {dataset.task} dataset, not {task}")
    prompts = section["prompts"]
    prompts = parse_prompts(prompts) if isinstance(prompts, str) else prompts
    runs = _runs(task, section, targets)
    jobs = []  # (run name, input name, images dir, reference, run)
    default_key = None
    plan: dict = {"task": task, "dataset": str(dataset_dir), "runs": {}}
    for run in runs:
        params_ = resolve_edit_params(run["editor"], section["preset"], run["overrides"])
        defence = parse_defence(run["defence"])
        key = (run["editor"], run["model"], run["revision"], params_)
        if run["name"] == DEFAULT_RUN:
            default_key = key
        reference = f"{DEFAULT_RUN}/{CLEAN}" if key == default_key else f"{run['name']}/{CLEAN}"
        if reference == f"{run['name']}/{CLEAN}":
            jobs.append((run, CLEAN, None, params_, None, "same"))
        entry = {"reference": reference, "sets": {}}
        for attack in run["attacks"]:
            images = attacks_dir / attack
            if not (images / "manifest.json").is_file():
                raise LdmdataError(f"no adversarial set at {images}; run the attack stage first")
            jobs.append((run, attack, images, params_, defence, run["prompt_index"]))
            entry["sets"][attack] = f"{run['name']}/{attack}"
        plan["runs"][run["name"]] = entry
    _remove_stale(out_dir, {f"{run['name']}/{name}" for run, name, *_ in jobs})
    engine = Engine.from_params(section)
    engine.check()
    with connect(engine):  # one Ray for every set of the stage
        for run, name, images, params_, defence, prompt_index in jobs:
            if progress is not None:
                progress(f"{run['name']}/{name}")
            ref = editor_ref(run["editor"], profile, models, tiny_dir, run["model"],
                             run["revision"])
            defence_model = (editor_ref(defence.model_kind, profile, models, tiny_dir)
                             if defence is not None and defence.model_kind is not None else None)
            options = EditOptions(
                prompts=prompts, prompt_index=prompt_index, limit=section["limit"],
                batch_size=section["batch_size"], device=section["device"],
                dtype=section["dtype"], shard_size=section["shard_size"],
                threads=section["threads"], overwrite=True, engine=engine,
            )
            edit_dataset(dataset_dir, out_dir / run["name"] / name, params_, ref, run["editor"],
                         images, defence, defence_model, options)
    write_json_atomic(out_dir / EDIT_PLAN, plan)
    return plan


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Drop run folders and set folders that the current params no longer ask for."""
    if not out_dir.is_dir():
        return
    for run in out_dir.iterdir():
        if not run.is_dir():
            continue
        if not any(k.startswith(f"{run.name}/") for k in keep):
            shutil.rmtree(run)
            continue
        for child in run.iterdir():
            if f"{run.name}/{child.name}" not in keep:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
