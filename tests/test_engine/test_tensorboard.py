"""What a run shows in TensorBoard: the default runtime's TensorboardVisBackend
receives the losses, the learning rate, COCO mAP per validation, and the
BilevelLoop's search (f per trial, the best f and rho per round)."""
import copy
from types import SimpleNamespace

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

from bipa.apis import use_data_root
from tests.conftest import DEMO_CFG, event_scalars
from tests.test_engine.conftest import run_loop


def test_a_bilevel_run_writes_its_scalars_with_their_steps(loop_cfg):
    """T=2 rounds of K_a=1 iteration and K_b=2 trials, K_c=1, validated every
    2 iterations (at 2 and at the last, 3)."""
    cfg = loop_cfg(T=2, K_a=1, K_b=2, K_c=1, val_interval=2)
    demo = Config.fromfile(str(DEMO_CFG))
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = demo[key]
    use_data_root(cfg, cfg.train_dataloader.dataset.data_root)
    runner = run_loop(cfg)
    scalars = event_scalars(runner.log_dir)

    for tag in ('loss', 'loss_mask', 'loss_rpn_cls', 'lr'):
        assert [step for step, _ in scalars[tag]] == [1, 2, 3], tag
    # the finetune phase's own learning rate (loop_cfg: 1e-3) from iteration 3
    assert scalars['lr'][-1][1] == float_32(1e-3) != scalars['lr'][0][1]
    for tag in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert [step for step, _ in scalars[tag]] == [2, 3], tag
    search = runner.train_loop.search
    f = [(r - 1) * 2 + t.number for r in (1, 2) for t in search.study(r).trials]
    assert [step for step, _ in scalars['search/f']] == f == [0, 1, 2, 3]
    for r in (1, 2):
        best, value = search.best(r)
        assert scalars['search/best_f'][r - 1] == (r, float_32(value))
        for g, weight in enumerate(best):
            assert scalars[f'rho/group_{g:02d}'][r - 1] == (r, float_32(weight))
    assert scalars['search/round'] == [(1, 1.0), (2, 2.0)]  # after iterations 1 and 2


def test_each_runner_of_a_process_writes_to_its_own_log_dir(tmp_path):
    """The default runtime's visualizer has no fixed name: mmengine's instance
    manager would hand a second Runner of the process the first one's
    visualizer, writing into the first run's log dir."""
    cfg = Config.fromfile(str(DEMO_CFG))
    dirs = []
    for run in ('first', 'second'):
        runner = SimpleNamespace(_experiment_name=f'{tmp_path.name}_{run}',
                                 _log_dir=str(tmp_path / run))
        visualizer = Runner.build_visualizer(runner, copy.deepcopy(cfg.visualizer))
        dirs.append({type(b).__name__: b._save_dir for b in visualizer._vis_backends.values()})
    assert [d['TensorboardVisBackend'] for d in dirs] == [
        str(tmp_path / 'first' / 'vis_data'), str(tmp_path / 'second' / 'vis_data')]


def float_32(value: float) -> float:
    """``value`` as TensorBoard stores it (float32)."""
    return float(np.float32(value))
