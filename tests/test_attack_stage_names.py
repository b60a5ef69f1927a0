"""Stage attack names: a method, a bim target, or either at a budget point (``-epsE``)."""

import pytest

from ldmdata.attacks.runner import parse_attack_name
from ldmdata.edit.plan import attack_names
from ldmdata.errors import LdmdataError


def test_names_parse_to_method_target_and_budget():
    assert parse_attack_name("vae.encoder") == ("bim", "vae.encoder", None)
    assert parse_attack_name("mist") == ("mist", None, None)
    assert parse_attack_name("sds-minus-eps0.03") == ("sds-minus", None, 0.03)
    assert parse_attack_name("unet.resnet-eps0.05") == ("bim", "unet.resnet", 0.05)
    with pytest.raises(LdmdataError, match="budget must be > 0"):
        parse_attack_name("mist-eps0")


def test_each_task_edits_the_attacks_params_yaml_lists():
    attack = {"targets": ["vae.encoder"], "photoguard": ["photoguard-encoder"],
              "protections": ["mist"], "inpaint_protections": ["diffusionguard"],
              "budgets": ["mist-eps0.02"], "sr": ["unet.resnet", "photoguard-diffusion"]}
    assert attack_names(attack, "img2img") == ["vae.encoder", "photoguard-encoder", "mist",
                                               "mist-eps0.02"]
    assert attack_names(attack, "inpaint")[-1] == "diffusionguard"
    assert attack_names(attack, "sr") == ["unet.resnet", "photoguard-diffusion"]
