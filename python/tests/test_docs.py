"""The examples in the package's docstrings run."""

import doctest
import os

import pytest

import inflight
import inflight.aio
import inflight.checkpoint
import inflight.errors


@pytest.mark.parametrize("module", [inflight, inflight.checkpoint, inflight.aio, inflight.errors])
def test_docstring_examples(module):
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0


def test_the_package_ships_its_type_information():
    here = os.path.dirname(inflight.__file__)
    assert os.path.exists(os.path.join(here, "py.typed"))
    assert os.path.exists(os.path.join(here, "_inflight.pyi"))
