"""The run skeleton every job shares: one set of option checks, one batching rule."""

import pytest

from ldmdata.attacks.runner import RunOptions
from ldmdata.dataset.jobs import batches
from ldmdata.defend.runner import DefendOptions
from ldmdata.edit.runner import EditOptions
from ldmdata.errors import LdmdataError

OPTIONS = (RunOptions, EditOptions, DefendOptions)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("field,value,message", [
    ("threads", True, "threads must be an integer >= 1 or null"),
    ("threads", 0, "threads must be an integer >= 1 or null"),
    ("shard_size", 0, "shard_size must be an integer >= 1"),
    ("batch_size", 2.5, "batch_size must be an integer >= 1"),
    ("limit", 0, "limit must be an integer >= 1 or null"),
    ("overwrite", "yes", "overwrite must be true or false"),
])
def test_every_job_checks_its_options_the_same_way(options, field, value, message):
    with pytest.raises(LdmdataError, match=message):
        options(**{field: value}).check()
    options().check()  # the defaults are valid


@pytest.mark.parametrize("options", (RunOptions, EditOptions))
def test_prompt_selections_are_checked(options):
    for bad in ([], [-1], "some", [True]):
        with pytest.raises(LdmdataError, match="prompts must be 'all' or a list"):
            options(prompts=bad).check()


def test_batches_keep_one_size_and_never_straddle_a_shard():
    sizes = [64, 64, 64, 32, 32, 64, 64, 64]
    got = list(batches(len(sizes), 0, 3, 4, lambda i: sizes[i]))
    assert got == [(0, 3), (3, 4), (4, 5), (5, 8)]
    assert list(batches(len(sizes), 4, 3, 4, lambda i: sizes[i])) == got[2:]  # a resume
    assert list(batches(5, 0, 2, 100)) == [(0, 2), (2, 4), (4, 5)]
