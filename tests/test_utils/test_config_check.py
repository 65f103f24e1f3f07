"""check_config: an unknown key anywhere names its full key and the keys its
class takes; keys a class may take are never refused."""
import copy
import functools

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from bipa.utils import ConfigError, check_config
from tests.conftest import DEMO_CFG


@functools.lru_cache(maxsize=1)
def _demo() -> Config:
    return Config.fromfile(str(DEMO_CFG))


def demo(**options) -> Config:
    cfg = copy.deepcopy(_demo())
    cfg.merge_from_dict(options)
    return cfg


def test_the_demo_config_passes():
    check_config(demo())


@pytest.mark.parametrize('key, takes', [
    ('train_cfg.K_x', 'train_cfg has unknown key(s)'),
    ('train_cfg.finetune.learning_rate', 'train_cfg.finetune has unknown key(s)'),
    ('model.backbone.adpter_init', 'SAMViTAdapter takes: arch,'),
    ('model.roi_head.mask_head.dense_prompt.num_group', 'DensePrompt takes:'),
    ('model.roi_head.mask_head.prompt_generator.hiden_dim', 'SparsePromptGenerator takes:'),
    # **kwargs passed on to super().__init__: the base classes' keys count
    ('model.roi_head.bbox_head.num_clases', 'Shared2FCBBoxHead takes:'),
    # less what the subclass's super().__init__ call passes itself (the encoder)
    ('model.backbone.adapter_rato', 'SAMViTAdapter takes: arch, out_indices, adapter_indices,'),
    ('model.rpn_head.anchor_generator.sclaes', 'AnchorGenerator takes:'),
    ('model.train_cfg.rcnn.assigner.pos_iou_thres', 'MaxIoUAssigner takes:'),
    ('train_dataloader.dataset.ann_fle', 'SyntheticUnderwaterDataset takes:'),
    ('train_dataloader.dataset.pipeline.1.with_bbx', 'LoadAnnotations takes:'),
    ('train_dataloader.dataset.pipeline.2.prob2', 'RandomFlip takes: prob, direction'),
    ('test_dataloader.dataset.pipeline.3.meta_key', 'PackDetInputs takes: meta_keys'),
    ('train_dataloader.sampler.shufle', 'InfiniteSampler takes:'),
    # the optimizer wrapper and its optimizer (torch's AdamW)
    ('optim_wrapper.clip_gradd', 'OptimWrapper takes: optimizer, accumulative_counts, clip_grad'),
    ('optim_wrapper.optimizer.lrr', 'AdamW takes: params, lr, betas,'),
])
def test_unknown_key_is_named_with_its_path(key, takes):
    with pytest.raises(ConfigError) as err:
        check_config(demo(**{key: 1}))
    message = str(err.value)
    assert message.startswith(f'{key}: unknown key; ') and takes in message, message


def test_keys_the_class_takes_are_accepted():
    # a norm layer's requires_grad (build_norm_layer's), a key its parent
    # also passes (the generator's embed_dim), a scope, a base class's key
    check_config(demo(**{
        'model.local_backbone.norm_cfg.requires_grad': False,
        'model.roi_head.mask_head.prompt_generator.embed_dim': 32,
        'model.roi_head.mask_head.dense_prompt._scope_': 'mmdet',
        'train_dataloader.dataset.serialize_data': False,
        'train_cfg.search.pipeline': [dict(type='LoadImageFromFile')],
    }))


def test_what_cannot_be_known_is_not_checked():
    # a type no registry of its place has (RoIAlign: an mmcv op; nms: a name),
    # and a class whose **kwargs go elsewhere than super().__init__
    @MODELS.register_module(force=True)
    class _TakesAnything(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            self.kwargs = kwargs

    check_config(demo(**{
        'model.roi_head.bbox_roi_extractor.roi_layer.anything': 1,
        'model.test_cfg.rcnn.nms.anything': 1,
        'model.roi_head.mask_head.loss_dice': dict(_delete_=True, type='_TakesAnything', x=1),
    }))
    MODELS._module_dict.pop('_TakesAnything')


def test_values_of_the_loop_are_checked_before_the_runner():
    with pytest.raises(ConfigError, match=r'train_cfg\.T must be a positive integer, got True'):
        check_config(demo(**{'train_cfg.T': True}))


def test_an_unregistered_model_type_is_named_with_the_nearest():
    with pytest.raises(ConfigError, match=r"^model\.type: 'BiPAA' is not a registered model; "
                                          r"did you mean 'BiPA'\?$"):
        check_config(demo(**{'model.type': 'BiPAA'}))
    with pytest.raises(ConfigError, match=r"^model\.type: 'Xyzzy' is not a registered model$"):
        check_config(demo(**{'model.type': 'Xyzzy'}))


def test_keys_the_optimizer_wrapper_constructor_takes_are_accepted():
    check_config(demo(**{'optim_wrapper.paramwise_cfg': dict(norm_decay_mult=0.0),
                         'optim_wrapper.constructor': 'DefaultOptimWrapperConstructor'}))
