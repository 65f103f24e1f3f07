"""BiPA on SAM 2.1: the Hiera encoder with adapters, SAM 2's decoder and box
prompt, and the official checkpoint layout, checked against ``sam2`` itself."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from sam2.build_sam import build_sam2

from bipa.models import SAMCheckpointError, load_sam_checkpoint
from bipa.models.sam2_parts import host_linspace
from bipa.models.sam_checkpoint import SAM2_LAYOUT, match_sam_state

SAM2_CONFIGS = {'hiera_t': 'sam2.1_hiera_t', 'hiera_s': 'sam2.1_hiera_s',
                'hiera_b+': 'sam2.1_hiera_b+', 'hiera_l': 'sam2.1_hiera_l'}
# a 16-d Hiera (stages 1/1/3/1), 32-d FPN and decoder at 128 px, as sam2 builds it
TINY_OVERRIDES = [
    'model.image_encoder.trunk.embed_dim=16', 'model.image_encoder.trunk.stages=[1,1,3,1]',
    'model.image_encoder.trunk.global_att_blocks=[4]',
    '++model.image_encoder.trunk.window_spec=[8,4,4,4]',
    'model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]',
    'model.image_encoder.neck.backbone_channel_list=[128,64,32,16]',
    'model.image_encoder.neck.d_model=32',
    'model.image_encoder.neck.position_encoding.num_pos_feats=32', 'model.image_size=128']
TINY_ARCH = dict(embed_dim=16, num_heads=1, stages=(1, 1, 3, 1), global_att_blocks=(4, ),
                 window_spec=(8, 4, 4, 4), window_pos_embed_bkg_spatial_size=(4, 4),
                 img_size=128, d_model=32, patch_stride=4)


def sam2_model_cfg(**overrides):
    """BiPA on SAM 2 (the demo's SAM 2 config), ``overrides`` under ``model.``."""
    cfg = Config.fromfile('configs/bipa_demo_synthetic_sam2.py')
    cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
    return cfg.model


def bipa_for_official(path, **extra):
    """BiPA whose SAM 2 parts have the sizes of the tiny official model."""
    return MODELS.build(sam2_model_cfg(**{
        'sam_checkpoint': str(path), 'backbone.arch': TINY_ARCH,
        'roi_head.mask_head.decoder_mlp_dim': 2048, 'roi_head.mask_head.decoder_num_heads': 8,
        **extra}))


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """A tiny SAM 2.1 from ``sam2.build_sam.build_sam2`` (random weights, every
    tensor distinguishable from an initialisation) and its file, in the
    layout of ``sam2.1_hiera_*.pt``."""
    torch.manual_seed(0)
    sam = build_sam2(f'configs/sam2.1/{SAM2_CONFIGS["hiera_t"]}.yaml', None, device='cpu',
                     hydra_overrides_extra=TINY_OVERRIDES, apply_postprocessing=False)
    with torch.no_grad():
        for p in sam.parameters():
            p.normal_(0, 0.25)
    path = tmp_path_factory.mktemp('sam2') / 'sam2.1_hiera_tiny.pt'
    torch.save({'model': sam.state_dict()}, path)
    return sam, path


def sam2_image_features(sam, images):
    """The image embedding and high-resolution features that sam2's
    ``SAM2ImagePredictor.set_image_batch`` computes."""
    _, feats, _, sizes = sam._prepare_backbone_features(sam.forward_image(images))
    feats[-1] = feats[-1] + sam.no_mem_embed
    b = images.shape[0]
    feats = [f.permute(1, 2, 0).view(b, -1, *s) for f, s in zip(feats, sizes)]
    return feats[-1], feats[:-1]


def test_official_layout_loads_strictly_and_matches_sam2(official, demo_batch):
    """The file loads with no missing, unexpected or mis-shaped key; at step 0
    (identity adapters) BiPA's encoder, SAM 2 box prompt and decoder give
    sam2's own image embedding, high-resolution features, masks and IoU."""
    sam, path = official
    model = bipa_for_official(path).eval()
    model.init_weights()
    with torch.no_grad():
        model.roi_head.mask_head.residual_scale.normal_()  # the generator's part is checked apart
    batch = model.data_preprocessor(demo_batch(), False)
    inputs, samples = batch['inputs'], batch['data_samples']
    boxes = [s.gt_instances.bboxes for s in samples]
    with torch.no_grad():
        encoded = model.backbone(inputs)
        embed, high_res = sam2_image_features(sam, inputs)
        torch.testing.assert_close(encoded.image_embedding, embed)
        head = model.roi_head.mask_head
        for ours, theirs in zip(head.mask_decoder.project_features(encoded.decoder_features),
                                high_res):
            torch.testing.assert_close(ours, theirs)

        head.residual_scale.zero_()  # the tokens are SAM 2's box prompt
        prompts = model.mask_prompts(inputs, samples, boxes)
        masks, iou = head.decode(prompts, with_iou=True)
        for i, b in enumerate(boxes):
            labels = torch.tensor([[2, 3]]).expand(len(b), 2)
            sparse, dense = sam.sam_prompt_encoder(points=(b.reshape(-1, 2, 2), labels),
                                                   boxes=None, masks=None)
            expected, expected_iou, _, _ = sam.sam_mask_decoder(
                image_embeddings=embed[i:i + 1], image_pe=sam.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=False, repeat_image=True,
                high_res_features=[f[i:i + 1] for f in high_res])
            torch.testing.assert_close(masks[prompts.img_inds == i], expected,
                                       rtol=1e-5, atol=2e-5)
            torch.testing.assert_close(iou[prompts.img_inds == i], expected_iou[:, 0],
                                       rtol=1e-5, atol=2e-5)


def test_a_mismatched_sam2_file_is_refused_in_one_message(official, tmp_path):
    sam, _ = official
    state = sam.state_dict()
    state.pop('sam_mask_decoder.conv_s0.weight')
    state['image_encoder.neck.convs.0.conv.weight'] = torch.zeros(32, 64, 1, 1)
    path = tmp_path / 'broken.pt'
    torch.save({'model': state}, path)
    model = bipa_for_official(path)
    with pytest.raises(SAMCheckpointError) as err:
        model.init_weights()
    text = str(err.value)
    assert 'missing (1): roi_head.mask_head.mask_decoder.conv_s0.weight' in text
    assert 'image_encoder.neck.convs.0.conv.weight: checkpoint (32, 64, 1, 1)' in text
    assert '16-d, 6 blocks' in text
    report = load_sam_checkpoint(model, str(path), strict=False)
    assert len(report['missing']) == 1 and len(report['mismatched']) == 1


@pytest.mark.parametrize('arch', sorted(SAM2_CONFIGS))
def test_every_official_size_matches_its_config_on_the_meta_device(arch):
    """sam2.1_hiera_{t,s,b+,l}.pt as build_sam2 lays them out: every tensor
    has its place in BiPA of that arch (keys and shapes, no memory used)."""
    with torch.device('meta'), host_linspace():
        sam = build_sam2(f'configs/sam2.1/{SAM2_CONFIGS[arch]}.yaml', None, device='meta',
                         apply_postprocessing=False)
        cfg = Config.fromfile('configs/bipa_uiis_sam2.1-hiera-l.py').model
        cfg.backbone.arch = arch
        cfg.local_backbone.init_cfg = None
        model = MODELS.build(cfg)
    loaded, report = match_sam_state(model, sam.state_dict(), SAM2_LAYOUT)
    assert report == dict(missing=[], unexpected=[], mismatched=[])
    assert len(loaded) == len([k for k in model.state_dict()
                               if k.startswith(('backbone.encoder.', 'roi_head.mask_head.'
                                                'mask_decoder.'))]) + 3


def test_a_sam1_decoder_on_a_sam2_encoder_is_one_config_error():
    with pytest.raises(Exception, match="mask_decoder is a SAM 1 decoder but model.backbone "
                       r"\(SAM2HieraAdapter\) a SAM 2 encoder: use type='SAM2MaskDecoder'"):
        MODELS.build(sam2_model_cfg(**{'roi_head.mask_head.mask_decoder.type': 'SAMMaskDecoder',
                                       'sam_checkpoint': None}))


def test_the_shipped_tiny_sam2_is_box_prompted_sam2_in_sam2_layout():
    """checkpoints/sam2_hiera-tiny_inair.pth is BoxPromptedSAM2's state dict
    (configs/sam2_hiera-tiny_inair.py) and loads into the demo's SAM 2 BiPA
    with no missing, unexpected or mis-shaped key."""
    path = 'checkpoints/sam2_hiera-tiny_inair.pth'
    state = torch.load(path, map_location='cpu', weights_only=True)
    sam = MODELS.build(Config.fromfile('configs/sam2_hiera-tiny_inair.py').model)
    sam.load_state_dict(state)  # strict
    model = MODELS.build(sam2_model_cfg())
    assert not any(load_sam_checkpoint(model, path).values())
    torch.testing.assert_close(model.backbone.no_mem_embed, state['no_mem_embed'])
