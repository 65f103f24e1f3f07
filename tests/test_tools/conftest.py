"""A tiny bilevel config on generated data, run end to end through the tools."""
import textwrap

import pytest

from bipa.datasets.synthetic import generate_synthetic_dataset
from tests.conftest import ROOT


@pytest.fixture(scope='session')
def e2e_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('e2e')
    data = tmp / 'data'
    generate_synthetic_dataset(data, splits=dict(train=10, val=2, test=2), image_size=(64, 64),
                               seed=1, progress=False)
    cfg = tmp / 'tiny_bilevel.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{ROOT}/configs/bipa_demo_synthetic.py']
        data_root = '{data}/'
        model = dict(sam_checkpoint=None, data_preprocessor=dict(pad_size_divisor=64))
        train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
        test_dataloader = dict(dataset=dict(data_root=data_root))
        test_evaluator = dict(ann_file=data_root + 'annotations/test.json')
        val_dataloader = None
        val_cfg = None
        val_evaluator = None
        train_cfg = dict(T=2, K_a=2, K_b=3, K_c=2, unit='iter',
                         holdout=dict(_delete_=True, count=3, seed=0),
                         search=dict(batch_size=2))
        default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000),
                             visualization=dict(draw=False))
    '''))
    return dict(config=str(cfg), data=str(data))


