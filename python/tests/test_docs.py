"""The examples in the package's docstrings run."""

import doctest
import os

import pytest

import inflight
import inflight.aio
import inflight.checkpoint
import inflight.errors
import inflight.turns

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")


def readme_examples():
    """The README's runnable examples: its ```python blocks (```py blocks show a gateway's
    code around the calls, and are not run)."""
    blocks, block = [], None
    with open(README) as f:
        for line in f:
            if block is None and line.strip() == "```python":
                block = []
            elif block is not None and line.strip() == "```":
                blocks.append("".join(block))
                block = None
            elif block is not None:
                block.append(line)
    return blocks


@pytest.mark.parametrize("example", readme_examples())
def test_readme_examples_run(example):
    exec(compile(example, README, "exec"), {"__name__": "readme"})


def test_the_readme_has_runnable_examples():
    assert len(readme_examples()) >= 2


@pytest.mark.parametrize("module", [inflight, inflight.checkpoint, inflight.turns, inflight.aio, inflight.errors])
def test_docstring_examples(module):
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0


def test_the_package_ships_its_type_information():
    here = os.path.dirname(inflight.__file__)
    assert os.path.exists(os.path.join(here, "py.typed"))
    assert os.path.exists(os.path.join(here, "_inflight.pyi"))
