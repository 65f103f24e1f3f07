import pytest
import torch
from mmdet.registry import MODELS
from mmengine.logging import MessageHub


def test_nonfinite_loss_stops_before_the_step(tiny_model_cfg, demo_batch):
    model = MODELS.build(tiny_model_cfg())
    model.init_weights()
    model.train()
    packed = demo_batch()
    for i, sample in enumerate(packed['data_samples']):
        sample.set_metainfo(dict(img_path=f'img_{i}.jpg'))
    MessageHub.get_current_instance().update_info('iter', 41)
    from mmengine.optim import OptimWrapper
    wrapper = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                           lr=0.1))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    original = model.roi_head.mask_head.loss_and_target

    def nan_mask_loss(*args, **kwargs):
        out = original(*args, **kwargs)
        out['loss_mask']['loss_mask'] = out['loss_mask']['loss_mask'] * float('nan')
        return out

    model.roi_head.mask_head.loss_and_target = nan_mask_loss
    with pytest.raises(FloatingPointError) as err:
        model.train_step(packed, wrapper)
    msg = str(err.value)
    assert 'iteration 41' in msg and 'loss_mask=nan' in msg
    assert 'img_0.jpg' in msg and 'img_1.jpg' in msg and 'loss_cls' not in msg
    # the weights were not touched
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k]), k
