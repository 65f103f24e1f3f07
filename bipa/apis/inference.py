"""Evaluate and predict with built models: SAM's oracle-box quality on a data
root, and predictions for chosen items of a dataset."""
import contextlib
import io
from typing import List, Optional, Sequence

import torch
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from .runner import load_config


def test_checkpoint(config: str, checkpoint: Optional[str], *, work_dir: str,
                    data_root: Optional[str] = None, cfg_options: Optional[dict] = None,
                    init_weights: bool = False, quiet: bool = False) -> dict:
    """COCO metrics of ``checkpoint`` on the config's test split, as
    ``tools/test.py`` computes them. With ``checkpoint=None`` and
    ``init_weights``, the model as training starts (pre-trained parts loaded,
    the rest initialised). ``quiet`` drops what the test prints on stdout
    (pycocotools' progress and tables, mmengine's checkpoint path); the
    runner's log, built before, keeps its stream and level."""
    cfg = load_config(config, work_dir=work_dir, data_root=data_root,
                      cfg_options=cfg_options, load_from=checkpoint)
    runner = Runner.from_cfg(cfg)
    if checkpoint is None and init_weights:
        runner.model.init_weights()
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        return runner.test()


def oracle_box_metrics(sam_config: str, checkpoint: str, data_root: str, *,
                       work_dir: str, cfg_options: Optional[dict] = None,
                       quiet: bool = False) -> dict:
    """A ``BoxPromptedSAM`` config's segm metrics on ``data_root``'s test
    split: SAM's masks for the ground-truth boxes (``quiet``: see
    :func:`test_checkpoint`)."""
    return test_checkpoint(sam_config, checkpoint, work_dir=work_dir, data_root=data_root,
                           cfg_options=cfg_options, quiet=quiet)


@torch.no_grad()
def predict_items(model: torch.nn.Module, dataset, indices: Sequence[int]) -> List:
    """``model.test_step`` on ``dataset[i]`` for ``indices``: the packed data
    samples, each with ``pred_instances`` at the original image scale and the
    pipeline's ``gt_instances`` when it loads annotations."""
    model.eval()
    return model.test_step(pseudo_collate([dataset[i] for i in indices]))
