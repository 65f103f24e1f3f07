"""The bilevel loop on SAM 2.1 (the demo's tiny SAM 2): trains, searches, and
resumes bitwise after a kill in the search."""
from mmengine.config import Config

from bipa.models import SAM2HieraAdapter, SAM2MaskDecoder
from tests.test_engine.conftest import (
    assert_same_weights,
    killed_in_search_and_resumed,
    run_loop,
)
from tests.test_engine.test_bilevel_loop import studies


def test_tiny_sam2_trains_searches_and_resumes_bitwise_after_a_kill(loop_cfg, tmp_path,
                                                                      monkeypatch):
    sam2 = Config.fromfile('configs/bipa_demo_synthetic_sam2.py').model

    def sam2_cfg(work_dir=None, **train_cfg):
        cfg = loop_cfg(work_dir=work_dir, **train_cfg)
        cfg.model.backbone = sam2.backbone
        cfg.model.roi_head.mask_head.mask_decoder = sam2.roi_head.mask_head.mask_decoder
        return cfg

    short = dict(T=1, K_a=1, K_b=2, K_c=1)  # one round: an iteration, 2 trials; 1 of fine-tuning
    reference = run_loop(sam2_cfg(work_dir=tmp_path / 'reference', **short))
    assert isinstance(reference.model.backbone, SAM2HieraAdapter)
    assert isinstance(reference.model.roi_head.mask_head.mask_decoder, SAM2MaskDecoder)
    resumed = killed_in_search_and_resumed(sam2_cfg, monkeypatch, round_idx=1, trial=1,
                                           work_dir=tmp_path / 'killed', **short)
    assert_same_weights(reference, resumed)
    for ours, theirs in zip(studies(resumed.work_dir).values(),
                            studies(reference.work_dir).values()):
        assert [t.value for t in ours.trials] == [t.value for t in theirs.trials]
        assert len(ours.trials) == 2
