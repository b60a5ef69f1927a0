"""What attack, defend and edit share: run options (checked once, the same way) and batching.

A job reads an input set and writes a new sharded set through :class:`ShardedWriter`. The
writer decides "same settings: resume; other settings: replace (``overwrite``) or refuse", so
a job only passes ``overwrite`` on. Work is cut into batches that never straddle a shard end, so
an interrupted job resumes at its last committed shard and sees exactly the batches an
uninterrupted one sees.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

from ldmdata.engine import Engine
from ldmdata.errors import LdmdataError
from ldmdata.params import is_int


@dataclass
class JobOptions:
    """How a job runs. ``batch_size`` and ``dtype`` can change the last bits of the floats, so
    outputs record them; ``threads`` (torch CPU threads, None: torch's choice) too.

    ``overwrite``: replace an output made with other settings (one made with the same settings
    is resumed, or found up to date). The DVC stages always pass True.
    """

    limit: int | None = None
    batch_size: int = 4
    device: str = "auto"
    dtype: str = "float32"
    shard_size: int = 1000
    threads: int | None = None
    overwrite: bool = False
    engine: Engine = Engine()  # where the batches run; never part of the output's config

    def check(self) -> None:
        """One line for the first bad value (the same rules for every job)."""
        self.engine.check()
        for name in ("batch_size", "shard_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise LdmdataError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("limit", "threads"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 1):
                raise LdmdataError(f"{name} must be an integer >= 1 or null, got {value!r}")
        if not isinstance(self.overwrite, bool):
            raise LdmdataError(f"overwrite must be true or false, got {self.overwrite!r}")


def check_prompts(prompts) -> None:
    """``all`` or a non-empty list of prompt indices >= 0."""
    if prompts != "all" and (
        not isinstance(prompts, list) or not prompts
        or any(not is_int(k) or k < 0 for k in prompts)
    ):
        raise LdmdataError(f"prompts must be 'all' or a list of indices >= 0, got {prompts!r}")


def batches(n: int, start: int, batch_size: int, shard_size: int,
            size_of: Callable[[int], Hashable] = lambda i: None) -> Iterator[tuple[int, int]]:
    """``(begin, end)`` over items ``start..n``: at most ``batch_size`` items of one
    ``size_of(item)`` (images of one size go through a model together), never across a shard
    end (so a resumed job sees the same batches)."""
    pos = start
    while pos < n:
        end = min(pos + batch_size, n, (pos // shard_size + 1) * shard_size)
        size = size_of(pos)
        stop = pos + 1
        while stop < end and size_of(stop) == size:
            stop += 1
        yield pos, stop
        pos = stop
