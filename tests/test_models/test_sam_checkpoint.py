"""Official SAM checkpoints (and converted HF ones) load into BiPA."""
import re

import pytest
import torch
from mmdet.registry import MODELS
from segment_anything.build_sam import _build_sam

from bipa.models import SAMCheckpointError
from tests.conftest import load_tool

# a 4-block 32-d SAM from segment_anything's own builder (1024 px, 256-d decoder)
SAM_ARCH = dict(embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(1, 3), img_size=1024,
                window_size=14, out_chans=256, patch_size=16)


def bipa_for_small_sam(tiny_model_cfg, path, **extra):
    cfg = tiny_model_cfg(**{
        'sam_checkpoint': str(path),
        'backbone.arch': SAM_ARCH,
        'neck.vit_stride': 16,
        'roi_head.mask_head.embed_dim': 256,
        'roi_head.mask_head.decoder_mlp_dim': 2048,
        'roi_head.mask_head.decoder_num_heads': 8,
        **extra})
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def small_sam():
    torch.manual_seed(0)
    sam = _build_sam(32, 4, 2, [1, 3])
    for p in sam.parameters():  # make every tensor distinguishable from init
        torch.nn.init.normal_(p, std=0.02)
    return sam


def assert_loaded(model, sam):
    for ours, theirs in ((model.backbone.encoder, sam.image_encoder),
                         (model.roi_head.mask_head.mask_decoder, sam.mask_decoder),
                         (model.roi_head.mask_head.pe_layer, sam.prompt_encoder.pe_layer)):
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), name
    assert torch.equal(model.dense_prompt.embedding.detach(),
                       sam.prompt_encoder.no_mask_embed.weight.reshape(-1))


def test_official_checkpoint_loads_without_missing_keys(tmp_path, tiny_model_cfg, small_sam):
    path = tmp_path / 'sam_small.pth'
    torch.save(small_sam.state_dict(), path)
    model = bipa_for_small_sam(tiny_model_cfg, path)
    model.init_weights()
    assert_loaded(model, small_sam)
    from bipa.models import load_sam_checkpoint
    assert load_sam_checkpoint(model, str(path)) == dict(missing=[], unexpected=[], mismatched=[])


def test_missing_checkpoint_names_the_path(tmp_path, tiny_model_cfg):
    model = bipa_for_small_sam(tiny_model_cfg, tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        model.init_weights()


def test_wrong_arch_is_refused_with_the_keys(tmp_path, tiny_model_cfg):
    path = tmp_path / 'sam_48d.pth'
    torch.save(_build_sam(48, 2, 2, [1]).state_dict(), path)
    model = bipa_for_small_sam(tiny_model_cfg, path)
    with pytest.raises(SAMCheckpointError) as err:
        model.init_weights()
    msg = str(err.value)
    assert '48-d, 2 blocks' in msg and 'mismatched' in msg and 'missing' in msg
    assert 'image_encoder.pos_embed' in msg and 'sam_checkpoint_strict=False' in msg


def test_partial_load_when_the_user_opts_in(tmp_path, tiny_model_cfg, small_sam):
    state = dict(small_sam.state_dict())
    state.pop('mask_decoder.iou_token.weight')
    state['image_encoder.extra'] = torch.zeros(1)
    path = tmp_path / 'partial.pth'
    torch.save(state, path)
    with pytest.raises(SAMCheckpointError, match='mask_decoder.iou_token'):
        bipa_for_small_sam(tiny_model_cfg, path).init_weights()
    model = bipa_for_small_sam(tiny_model_cfg, path, sam_checkpoint_strict=False)
    model.init_weights()
    assert torch.equal(model.backbone.encoder.pos_embed, small_sam.image_encoder.pos_embed)


def test_not_a_sam_checkpoint(tmp_path, tiny_model_cfg):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, path)
    with pytest.raises(SAMCheckpointError, match='not a SAM checkpoint'):
        bipa_for_small_sam(tiny_model_cfg, path).init_weights()


# --- Hugging Face layout ---------------------------------------------------

def to_hf_layout(state):
    """Official -> HF key names, written from the HF SamModel module tree."""
    out = {}
    for key, value in state.items():
        k = key.replace('image_encoder.', 'vision_encoder.')
        k = k.replace('vision_encoder.blocks.', 'vision_encoder.layers.')
        k = k.replace('patch_embed.proj.', 'patch_embed.projection.')
        for i, name in enumerate(['conv1', 'layer_norm1', 'conv2', 'layer_norm2']):
            k = k.replace(f'neck.{i}.', f'neck.{name}.')
        for i, name in [(0, 'conv1'), (1, 'layer_norm1'), (3, 'conv2'), (4, 'layer_norm2'),
                        (6, 'conv3')]:
            k = k.replace(f'mask_downscaling.{i}.', f'mask_embed.{name}.')
        for i, name in [(0, 'upscale_conv1'), (1, 'upscale_layer_norm'), (3, 'upscale_conv2')]:
            k = k.replace(f'output_upscaling.{i}.', f'{name}.')
        k = k.replace('point_embeddings.', 'point_embed.')
        m = re.search(r'(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.(\d)\.', k)
        if m:
            new = {'0': 'proj_in', '1': 'layers.0', '2': 'proj_out'}[m.group(2)]
            k = k.replace(f'{m.group(1)}.layers.{m.group(2)}.', f'{m.group(1)}.{new}.')
        k = re.sub(r'\.norm(\d|_final_attn)\.', r'.layer_norm\1.', k)
        if k == 'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix':
            out['shared_image_embedding.positional_embedding'] = value
            k = 'prompt_encoder.shared_embedding.positional_embedding'
        out[k] = value
    return out


def load_converter():
    return load_tool('model_converters/hf_sam_to_official')


def test_hf_state_dict_converts_to_the_official_layout(tmp_path, tiny_model_cfg, small_sam):
    official = small_sam.state_dict()
    hf = to_hf_layout(official)
    assert 'vision_encoder.layers.0.layer_norm1.weight' in hf
    assert 'mask_decoder.transformer.layer_norm_final_attn.weight' in hf
    assert 'mask_decoder.iou_prediction_head.proj_out.weight' in hf
    converter = load_converter()
    converted = converter.convert_hf_sam_state_dict(hf)
    assert set(converted) == set(official)
    assert all(torch.equal(converted[k], official[k]) for k in official)

    src, dst = tmp_path / 'hf.bin', tmp_path / 'official.pth'
    torch.save(hf, src)
    import sys
    from unittest import mock
    with mock.patch.object(sys, 'argv', ['x', str(src), str(dst)]):
        converter.main()
    model = bipa_for_small_sam(tiny_model_cfg, dst)
    model.init_weights()
    assert_loaded(model, small_sam)


def test_converter_rejects_other_layouts():
    with pytest.raises(ValueError, match='vision_encoder'):
        load_converter().convert_hf_sam_state_dict({'image_encoder.pos_embed': torch.zeros(1)})
