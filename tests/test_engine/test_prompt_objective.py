"""f is scored at the model's input scale, through the training mask path."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, METRICS, MODELS
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner
from pycocotools import mask as mask_utils

from bipa.datasets import default_search_pipeline
from bipa.engine import GradientSolver, MaskObjective
from bipa.engine.prompt_objective import DIFFERENTIABLE, unpack_bits

HOLDOUT = dict(count=4, seed=0)
# mmdet's training order: annotations first, so that Resize scales them too
REFERENCE_PIPELINE = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]


@pytest.fixture
def mixed_loop(loop_cfg, mixed_size_data):
    cfg = loop_cfg()
    cfg.train_dataloader.dataset.data_root = str(mixed_size_data) + '/'
    cfg.train_cfg.holdout = HOLDOUT
    cfg.train_cfg.search.batch_size = 3  # batches of one and of several sizes
    cfg.model.data_preprocessor.pad_size_divisor = 64
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.model.init_weights()
    with torch.no_grad():  # logits far from 0, so that f depends on the targets
        runner.model.roi_head.mask_head.mask_decoder.output_hypernetworks_mlps[0] \
            .layers[-1].weight.mul_(30)
    return runner, runner.train_loop


def reference_batch(runner):
    """D_val's images and GT through mmdet's training-order pipeline, as one
    padded batch with the GT masks padded by the data preprocessor."""
    dataset_cfg = runner.cfg.train_dataloader.dataset
    dataset = DATASETS.build(dict(type='HoldoutSplit', part='holdout', **HOLDOUT,
                                  dataset=dict(dataset_cfg, pipeline=REFERENCE_PIPELINE)))
    data = pseudo_collate([dataset[i] for i in range(len(dataset))])
    return runner.model.data_preprocessor(data, True)


def test_dval_mixes_image_sizes(mixed_loop):
    runner, loop = mixed_loop
    dataset = loop.build_objective().dataloader.dataset
    shapes = {tuple(dataset[i]['data_samples'].ori_shape) for i in range(len(dataset))}
    assert shapes == {(64, 96), (150, 200)}


def test_f_at_identity_is_the_training_mask_loss(mixed_loop):
    """f(identity) equals loss_mask of the RoI head's training path, with the
    GT boxes as positive RoIs, in eval mode, on GT at the model's input scale."""
    runner, loop = mixed_loop
    model = runner.model
    f = loop.build_objective()([1.0] * model.dense_prompt.num_groups)

    data = reference_batch(runner)
    samples = data['data_samples']
    gts = [s.gt_instances for s in samples]
    sampling = [SimpleNamespace(pos_priors=gt.bboxes,
                                pos_assigned_gt_inds=torch.arange(len(gt))) for gt in gts]
    model.eval()
    with torch.no_grad():
        x = model.roi_head.add_positional_encoding(model.extract_feat(data['inputs']), samples)
        loss = model.roi_head.mask_loss(x, sampling, None, gts)['loss_mask']['loss_mask']
    assert f == pytest.approx(float(loss), rel=1e-5)


def test_targets_are_the_gt_masks_rescaled_to_the_input(mixed_loop):
    runner, loop = mixed_loop
    objective = loop.build_objective()
    objective.prepare()
    targets = torch.cat([unpack_bits(b.targets, b.size) for b in objective.batches]).bool()

    # independently: decode each GT mask of the json and resize it as the image was
    dataset = objective.dataloader.dataset
    expected = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        sample = dataset[i]['data_samples']
        img_h, img_w = sample.img_shape
        for inst in info['instances']:
            rle = inst['mask']
            ori_h, ori_w = sample.ori_shape
            if isinstance(rle['counts'], str):
                rle = dict(rle, counts=rle['counts'].encode())
            mask = mask_utils.decode(rle)
            assert mask.shape == (ori_h, ori_w)
            resized = cv2.resize(mask, (img_w, img_h), interpolation=cv2.INTER_NEAREST)
            expected.append(np.pad(resized, ((0, 128 - img_h), (0, 128 - img_w))))
    expected = torch.from_numpy(np.stack(expected)).bool()
    assert targets.shape == expected.shape
    inter = (targets & expected).flatten(1).sum(1).float()
    union = (targets | expected).flatten(1).sum(1).float()
    iou = inter / union
    assert iou.min() > 0.99, iou


def resize_first_runner(loop_cfg, mixed_size_data) -> Runner:
    """A run whose search pipeline resizes before loading the annotations
    (mmdet's test order), which leaves the GT at the original scale."""
    cfg = loop_cfg()
    cfg.train_dataloader.dataset.data_root = str(mixed_size_data) + '/'
    cfg.train_cfg.holdout = HOLDOUT
    cfg.train_cfg.search.pipeline = [REFERENCE_PIPELINE[0], REFERENCE_PIPELINE[2],
                                     REFERENCE_PIPELINE[1], REFERENCE_PIPELINE[3]]
    return Runner.from_cfg(cfg)


def test_gt_at_another_scale_is_refused(loop_cfg, mixed_size_data):
    runner = resize_first_runner(loop_cfg, mixed_size_data)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    with pytest.raises(ValueError, match=r'train_cfg\.search\.pipeline.*not at the model input '
                                         r'scale.*LoadAnnotations'):
        runner.train_loop.build_objective().prepare()


def test_default_search_pipeline_loads_annotations_before_resizing(mixed_loop):
    runner, _ = mixed_loop
    types = [t['type'] for t in default_search_pipeline(runner.cfg)]
    assert types.index('LoadAnnotations') < types.index('Resize')
    test_types = [t['type'] for t in runner.cfg.test_dataloader.dataset.pipeline]
    assert test_types.index('LoadAnnotations') > test_types.index('Resize')  # mmdet's order


def test_bce_with_logits_sum_equals_torch():
    from bipa.engine.prompt_objective import bce_with_logits_sum
    torch.manual_seed(0)
    logits = torch.randn(7, 33, 20) * torch.tensor([0.1, 1, 5, 30, 100, 3, 8]).view(-1, 1, 1)
    targets = (torch.rand_like(logits) > 0.7).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.double(), targets.double(), reduction='sum')
    assert float(bce_with_logits_sum(logits, targets)) == pytest.approx(float(expected), rel=1e-6)


def test_gt_at_another_scale_stops_the_run_at_the_first_search(loop_cfg, mixed_size_data,
                                                               tmp_path):
    """Not a failed trial per trial: the run stops with the pipeline named."""
    from bipa.utils import ConfigError
    runner = resize_first_runner(loop_cfg, mixed_size_data)
    with pytest.raises(ConfigError, match=r'train_cfg\.search\.pipeline.*not at the model '
                                          r'input scale'):
        runner.train()
    # stopped at the first search, in the after_train_iter hooks of the K_a-th
    # (2nd) iteration, before mmengine counts that iteration as done
    assert runner.iter == 1


@pytest.mark.parametrize('kind', DIFFERENTIABLE)
def test_every_objective_has_its_exact_gradient(mixed_loop, kind):
    """value_and_grad gives f (as the search scores it) and df/dw, checked by
    central differences, on D_val of mixed image sizes."""
    runner, loop = mixed_loop
    objective = MaskObjective(runner.model, loop.build_objective().dataloader, objective=kind)
    w = [1.0 + 0.05 * g for g in range(16)]
    value, grad = objective.value_and_grad(w)
    assert value == pytest.approx(objective(w), rel=1e-6)
    h = 0.05
    for g in (0, 9):
        up, down = list(w), list(w)
        up[g] += h
        down[g] -= h
        numeric = (objective(up) - objective(down)) / (2 * h)
        assert grad[g] == pytest.approx(numeric, rel=0.05, abs=1e-6)
    assert any(abs(v) > 1e-6 for v in grad)


def test_dice_objective_is_mmdets_dice_loss_per_instance(mixed_loop):
    runner, loop = mixed_loop
    objective = MaskObjective(runner.model, loop.build_objective().dataloader,
                              objective='dice')
    objective.prepare()
    logits, targets = [], []
    with objective._eval_context():
        for batch in objective.batches:
            logits.append(runner.model.mask_logits(batch.prompts, batch.size).flatten(1))
            targets.append(unpack_bits(batch.targets, batch.size).flatten(1))
    # mmdet's loss config as the demo trains with it, one row per instance
    dice = MODELS.build(dict(type='DiceLoss', use_sigmoid=True, naive_dice=True, eps=1.0))
    expected = torch.cat([dice(x, t, reduction_override='none') for x, t in zip(logits, targets)])
    assert objective([1.0] * 16) == pytest.approx(float(expected.mean()), rel=1e-5)
    both = MaskObjective(runner.model, objective.dataloader, objective='bce+dice')
    bce = MaskObjective(runner.model, objective.dataloader)
    assert both([1.0] * 16) == pytest.approx(bce([1.0] * 16) + float(expected.mean()), rel=1e-5)


@pytest.mark.parametrize('kind', DIFFERENTIABLE)
def test_the_gradient_search_moves_rho_for_every_objective(mixed_loop, kind, tmp_path):
    """The identity is not a stationary point of f: a few projected Adam steps
    from it lower every objective."""
    runner, loop = mixed_loop
    objective = MaskObjective(runner.model, loop.build_objective().dataloader, objective=kind)
    search = GradientSolver(storage=f'sqlite:///{tmp_path}/s.db', study_name='t',
                            num_groups=16, interval=(0.5, 2.0), lr=0.05)
    identity = [1.0] * 16
    best, value = search.run_round(1, 4, objective, warm_start=[identity])
    assert best != identity and value < objective(identity)


def oracle_box_segm_map(runner, loop, weights) -> float:
    """COCO segm mAP (0-1) of the detector's own oracle-box test
    (``test_cfg.oracle_boxes``, the test pipeline: GT in original pixels) on
    D_val's images, scored by mmdet's CocoMetric, at group weights ``weights``."""
    import copy

    from mmengine.evaluator import Evaluator
    cfg = copy.deepcopy(loop.val_dataset_cfg)
    cfg['dataset']['pipeline'] = copy.deepcopy(runner.cfg.test_dataloader.dataset.pipeline)
    dataset = DATASETS.build(cfg)
    metric = METRICS.build(dict(type='CocoMetric', metric='segm', ann_file=dataset.ann_file))
    evaluator = Evaluator([metric])
    evaluator.dataset_meta = dataset.metainfo
    model = runner.model
    model.dense_prompt.set_group_weights(weights)
    model.test_cfg['oracle_boxes'] = True
    model.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), 3):  # batches of several image sizes
            data = pseudo_collate([dataset[i] for i in range(start, min(start + 3,
                                                                       len(dataset)))])
            evaluator.process(data_samples=model.test_step(data), data_batch=data)
    metric.img_ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    return float(evaluator.evaluate(len(dataset))['coco/segm_mAP'])


@pytest.fixture
def sam_loop(loop_cfg, mixed_size_data):
    """:func:`mixed_loop` with the shipped tiny SAM: box-prompted masks that
    score well above 0 mAP."""
    from tests.conftest import ROOT
    cfg = loop_cfg()
    cfg.train_dataloader.dataset.data_root = str(mixed_size_data) + '/'
    cfg.train_cfg.holdout = HOLDOUT
    cfg.train_cfg.search.batch_size = 3
    cfg.model.data_preprocessor.pad_size_divisor = 64
    cfg.model.sam_checkpoint = str(ROOT / 'checkpoints' / 'sam_vit-tiny_inair.pth')
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.model.init_weights()
    return runner, runner.train_loop


def test_segm_map_f_is_coco_segm_map_of_the_oracle_box_test(sam_loop):
    """f='segm_map' is 1 - what CocoMetric gives the detector's oracle-box
    test on D_val (resized, non-square images of two sizes, batches of both),
    at the identity and elsewhere; it has no gradient."""
    runner, loop = sam_loop
    objective = loop.build_objective().using('segm_map')
    values = []
    for weights in ([1.0] * 16, [1.0 + 0.1 * g for g in range(16)]):
        f = objective(weights)
        expected = oracle_box_segm_map(runner, loop, weights)
        values.append(expected)
        assert f == pytest.approx(1 - expected, abs=1e-9)
    assert values[0] > 0 and values[0] != values[1]  # mAPs that tell the two apart
    with pytest.raises(ValueError, match="f='segm_map' has no gradient"):
        objective.value_and_grad([1.0] * 16)
