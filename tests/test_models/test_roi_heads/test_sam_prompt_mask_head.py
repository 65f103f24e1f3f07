import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures.mask import BitmapMasks
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from bipa.models import MaskPrompts
from bipa.models.roi_heads import SAMPromptMaskHead
from tests.conftest import sampling_result

TINY_HEAD = dict(embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2,
                 prompt_generator=dict(type='SparsePromptGenerator', in_channels=8,
                                       hidden_dim=16))


def test_batched_single_mask_decode_equals_segment_anything():
    torch.manual_seed(0)
    head = SAMPromptMaskHead(**TINY_HEAD)
    for p in head.mask_decoder.parameters():
        torch.nn.init.normal_(p, std=0.1)
    embeddings = torch.randn(3, 32, 6, 5)
    tokens = torch.randn(7, 5, 32)
    img_inds = torch.tensor([0, 2, 2, 1, 0, 2, 1])
    pe = head.image_pe((6, 5))
    rho = head.dense_prompt()
    ours = head.decode(MaskPrompts(image_embeddings=embeddings, image_pe=pe, tokens=tokens,
                                   img_inds=img_inds))
    for i in range(7):
        expected, _ = head.mask_decoder.predict_masks(
            image_embeddings=embeddings[img_inds[i]:img_inds[i] + 1], image_pe=pe,
            sparse_prompt_embeddings=tokens[i:i + 1],
            dense_prompt_embeddings=rho.view(1, -1, 1, 1).expand(1, -1, 6, 5))
        torch.testing.assert_close(ours[i], expected[0, :1], rtol=1e-5, atol=1e-5)
    assert ours.shape == (7, 1, 24, 20)


def test_forward_with_no_rois():
    head = SAMPromptMaskHead(**TINY_HEAD)
    out = head(torch.zeros(0, 8, 14, 14), torch.zeros(0, 5), torch.randn(2, 32, 4, 4))
    assert out.shape == (0, 1, 16, 16)


# --- training targets -------------------------------------------------------

H, W = 40, 56  # the padded batch input


def shapes_image():
    """Three GT instances of different shapes and places."""
    masks = np.zeros((3, H, W), bool)
    masks[0, 2:11, 3:21] = True  # a rectangle
    yy, xx = np.mgrid[:H, :W]
    masks[1] = (yy - 25) ** 2 + (xx - 40) ** 2 <= 64  # a disc
    masks[2] = (yy >= 20) & (xx >= 5) & (xx - 5 <= yy - 20)  # a triangle
    return masks


def one_gt_image():
    masks = np.zeros((1, H, W), bool)
    masks[0, 5:36, 30:51] = True
    return masks


def gt_instances(masks):
    gt = InstanceData()
    gt.masks = BitmapMasks(masks, H, W)
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    gt.bboxes = torch.tensor(boxes, dtype=torch.float32)
    gt.labels = torch.zeros(len(masks), dtype=torch.long)
    return gt


# per image: its GT masks and the GT (1-based, 0: negative) of each sampled prior
BATCHES = {
    'three GTs, then one GT': [(shapes_image(), [3, 0, 1, 3, 2]), (one_gt_image(), [0, 1, 1])],
    'one GT': [(one_gt_image(), [1, 0, 1])],
}


@pytest.mark.parametrize('batch', list(BATCHES))
def test_mask_targets_are_the_masks_of_the_assigned_gts(batch):
    """Target i is the full (padded) mask of the GT that positive i is assigned
    to: not GT 0, nor the GT at the positive's own position."""
    images = BATCHES[batch]
    gts = [gt_instances(masks) for masks, _ in images]
    sampling = [sampling_result(gt.bboxes, inds) for gt, (_, inds) in zip(gts, images)]
    expected = np.concatenate([masks[[i - 1 for i in inds if i]] for masks, inds in images])
    assert [res.pos_assigned_gt_inds.tolist() for res in sampling] == (
        [[2, 0, 2, 1], [0, 0]] if len(images) == 2 else [[0, 0]])

    head = SAMPromptMaskHead(**TINY_HEAD)
    targets = head.get_targets(sampling, gts, torch.device('cpu'))
    assert targets.dtype == torch.float32 and targets.shape == (len(expected), H, W)
    assert torch.equal(targets.bool(), torch.from_numpy(expected))

    # and the loss is taken against them
    torch.manual_seed(0)
    preds = torch.randn(len(expected), 1, H // 4, W // 4) * 3
    out = head.loss_and_target(preds, sampling, gts, ConfigDict())
    assert torch.equal(out['mask_targets'], targets)
    logits = F.interpolate(preds, size=(H, W), mode='bilinear', align_corners=False)[:, 0]
    expected_loss = F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(out['loss_mask']['loss_mask'], expected_loss)


# --- inference ---------------------------------------------------------------

# a 120x75 image resized by 16/15 to the model's 128x80 input, padded to 128x96
SCALE = 128 / 120
META = dict(ori_shape=(75, 120), img_shape=(80, 128), pad_shape=(96, 128),
            batch_input_shape=(96, 128), scale_factor=(SCALE, 80 / 75))
EMPTY_META = dict(ori_shape=(50, 40), img_shape=(96, 77), pad_shape=(96, 128),
                  batch_input_shape=(96, 128), scale_factor=(77 / 40, 96 / 50))


def low_res_logits():
    """Single-mask logits at 1/4 of the padded input (24x32), one per detection."""
    logits = torch.full((6, 1, 24, 32), -10.0)
    logits[0] = 10.0  # everywhere
    logits[2, ..., :16] = 10.0  # the left half of the input: input columns < 64
    logits[3, :, 20:] = 10.0  # only the padding rows below the image (input rows >= 80)
    logits[4] = 0.5  # sigmoid 0.62: above mask_thr_binary=0.6
    logits[5] = 0.3  # sigmoid 0.57: below it, although above 0 as a logit
    return logits


def detections():
    results = InstanceData()
    # boxes across and outside the image's borders, too
    results.bboxes = torch.tensor([[-20., -10., 200., 150.], [130., 90., 140., 95.],
                                   [0., 0., 64., 80.], [10., 70., 60., 96.],
                                   [5., 5., 50., 50.], [20., 20., 30., 30.]])
    results.scores = torch.linspace(0.9, 0.4, 6)
    results.labels = torch.arange(6)
    empty = InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                         labels=torch.zeros(0, dtype=torch.long))
    return [results, empty]


@pytest.mark.parametrize('rescale', [True, False])
def test_predict_by_feat_gives_one_binary_mask_per_detection(rescale):
    head = SAMPromptMaskHead(**TINY_HEAD, chunk_size=4)  # two chunks of detections
    results = detections()
    boxes = results[0].bboxes.clone()
    out = head.predict_by_feat([low_res_logits(), torch.zeros(0, 1, 24, 32)], results,
                               [META, EMPTY_META], ConfigDict(mask_thr_binary=0.6),
                               rescale=rescale)
    h, w = (75, 120) if rescale else (80, 128)  # the original image, or the input's
    masks = out[0].masks
    assert masks.dtype == torch.bool and masks.shape == (6, h, w)
    left = torch.zeros(h, w, dtype=torch.bool)
    left[:, :w // 2] = True  # the input's left half is the original's too
    expected = [torch.ones(h, w, dtype=torch.bool), torch.zeros(h, w, dtype=torch.bool),
                left, torch.zeros(h, w, dtype=torch.bool),  # the padding is cut off
                torch.ones(h, w, dtype=torch.bool), torch.zeros(h, w, dtype=torch.bool)]
    for i, (mask, want) in enumerate(zip(masks, expected)):  # in the detection order
        assert torch.equal(mask, want), i
    scale = torch.tensor([SCALE, 80 / 75] * 2) if rescale else torch.ones(4)
    torch.testing.assert_close(out[0].bboxes, boxes / scale)
    assert torch.equal(out[0].labels, torch.arange(6))
    # an image without detections: no mask, at its own original size
    assert out[1].masks.shape == (0, 50, 40) and len(out[1].bboxes) == 0


def test_authors_binarisation_thresholds_upsampled_probabilities():
    """mask_upsample='probs' (the authors): sigmoid at low resolution, then
    upsampling; near a mask's edge the two orders disagree."""
    logits = torch.full((1, 1, 24, 32), -8.0)
    logits[..., 8:16, 8:16] = 0.5  # a faint square: the edges binarise differently
    meta = dict(ori_shape=(96, 128), img_shape=(96, 128), pad_shape=(96, 128),
                batch_input_shape=(96, 128), scale_factor=(1.0, 1.0))
    masks = {}
    for mode in ('logits', 'probs'):
        head = SAMPromptMaskHead(**TINY_HEAD, mask_upsample=mode)
        results = InstanceData(bboxes=torch.tensor([[0., 0., 50., 50.]]),
                               scores=torch.ones(1), labels=torch.zeros(1, dtype=torch.long))
        out = head.predict_by_feat([logits], [results], [meta],
                                   ConfigDict(mask_thr_binary=0.5), rescale=False)
        masks[mode] = out[0].masks[0]
    expected = {}
    up = F.interpolate(logits, size=(96, 128), mode='bilinear', align_corners=False)[0, 0]
    expected['logits'] = up.sigmoid() >= 0.5
    expected['probs'] = F.interpolate(logits.sigmoid(), size=(96, 128), mode='bilinear',
                                      align_corners=False)[0, 0] >= 0.5
    for mode in masks:
        assert torch.equal(masks[mode], expected[mode]), mode
    assert masks['probs'].sum() != masks['logits'].sum()


@pytest.mark.parametrize('arch, params', [('authors', 4_525_824), ('ours', 14_092_160)])
def test_prompt_generator_sizes_at_vit_h(arch, params):
    """At ViT-H's sizes (256-channel 14x14 RoI features, 256-d tokens) the
    authors' generator has 4.5M parameters (their code: 4.5M), ours 14.1M."""
    from bipa.models.roi_heads import SparsePromptGenerator
    with torch.device('meta'):
        generator = SparsePromptGenerator(arch=arch)
    count = sum(p.numel() for p in generator.parameters())
    assert count == params
    if arch == 'authors':
        assert abs(count - 4.5e6) / 4.5e6 < 0.01


@pytest.mark.parametrize('arch', ['authors', 'ours'])
def test_prompt_generator_tokens(arch):
    """The token forms: sin(u) + v (authors, u/v interleaved) and [sin t, cos t]."""
    from bipa.models.roi_heads import SparsePromptGenerator
    torch.manual_seed(0)
    generator = SparsePromptGenerator(in_channels=8, roi_size=14, num_tokens=3, embed_dim=16,
                                      arch=arch, hidden_dim=32).eval()
    feats = torch.randn(4, 8, 14, 14)
    tokens = generator(feats)
    assert tokens.shape == (4, 3, 16)
    raw = generator.mlp(generator.conv(feats)).view(4, 3, -1)
    if arch == 'authors':
        assert raw.shape[-1] == 32
        torch.testing.assert_close(tokens, torch.sin(raw[..., 0::2]) + raw[..., 1::2])
        assert isinstance(generator.conv[1], torch.nn.BatchNorm2d)
    else:
        torch.testing.assert_close(tokens.norm(dim=-1), torch.full((4, 3), 8 ** 0.5))
    assert generator(torch.zeros(0, 8, 14, 14)).shape == (0, 3, 16)
