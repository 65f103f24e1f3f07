"""A tiny bilevel config on the shared synthetic data, for the tools run end
to end."""
import pytest

from tests.conftest import tiny_bilevel_cfg


@pytest.fixture(scope='session')
def e2e_data(tiny_data, tmp_path_factory):
    cfg = tmp_path_factory.mktemp('e2e') / 'tiny_bilevel.py'
    tiny_bilevel_cfg(tiny_data).dump(str(cfg))
    return dict(config=str(cfg), data=str(tiny_data))
