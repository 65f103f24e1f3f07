"""Official SAM checkpoints (and converted HF ones) load into BiPA."""
from functools import partial

import pytest
import torch
from mmdet.registry import MODELS
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from bipa.models import SAMCheckpointError
from tests.conftest import load_tool, run_tool

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


def test_box_anchor_loads_sams_corner_embeddings(tmp_path, tiny_model_cfg, small_sam):
    """anchor='box' needs SAM's box-corner embeddings: they load strictly."""
    path = tmp_path / 'sam_small.pth'
    torch.save(small_sam.state_dict(), path)
    model = bipa_for_small_sam(tiny_model_cfg, path, **{'roi_head.mask_head.anchor': 'box'})
    from bipa.models import load_sam_checkpoint
    assert load_sam_checkpoint(model, str(path)) == dict(missing=[], unexpected=[], mismatched=[])
    for i in range(4):
        assert torch.equal(model.roi_head.mask_head.point_embeddings[i].weight,
                           small_sam.prompt_encoder.point_embeddings[i].weight)


@pytest.mark.parametrize('init', ['zeros', 'normal'])
def test_scratch_dense_prompt_ignores_no_mask_embed(tmp_path, tiny_model_cfg, small_sam, init):
    """base='scratch' learns the dense embedding from its own initialisation:
    SAM's no_mask_embed is neither loaded nor reported missing."""
    path = tmp_path / 'sam_small.pth'
    torch.save(small_sam.state_dict(), path)
    key = 'roi_head.mask_head.dense_prompt'
    torch.manual_seed(0)
    model = bipa_for_small_sam(tiny_model_cfg, path, **{f'{key}.base': 'scratch',
                                                        f'{key}.scratch_init': init})
    before = model.dense_prompt.embedding.detach().clone()
    from bipa.models import load_sam_checkpoint
    assert load_sam_checkpoint(model, str(path)) == dict(missing=[], unexpected=[], mismatched=[])
    assert torch.equal(model.dense_prompt.embedding.detach(), before)
    assert before.abs().sum() == 0 if init == 'zeros' else before.std() > 0.5
    assert model.dense_prompt.embedding.requires_grad


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
# Ground truth, independent of the converter: key names of transformers'
# SamModel (its module tree, as its own convert_sam_to_hf.py writes them from
# an official checkpoint) and the official names they stand for.
HF_TO_OFFICIAL = {
    'vision_encoder.pos_embed': 'image_encoder.pos_embed',
    'vision_encoder.patch_embed.projection.weight': 'image_encoder.patch_embed.proj.weight',
    'vision_encoder.layers.0.layer_norm1.weight': 'image_encoder.blocks.0.norm1.weight',
    'vision_encoder.layers.0.attn.qkv.weight': 'image_encoder.blocks.0.attn.qkv.weight',
    'vision_encoder.layers.1.attn.rel_pos_h': 'image_encoder.blocks.1.attn.rel_pos_h',
    'vision_encoder.layers.1.layer_norm2.bias': 'image_encoder.blocks.1.norm2.bias',
    'vision_encoder.layers.1.mlp.lin2.weight': 'image_encoder.blocks.1.mlp.lin2.weight',
    'vision_encoder.neck.conv1.weight': 'image_encoder.neck.0.weight',
    'vision_encoder.neck.layer_norm1.bias': 'image_encoder.neck.1.bias',
    'vision_encoder.neck.conv2.weight': 'image_encoder.neck.2.weight',
    'vision_encoder.neck.layer_norm2.weight': 'image_encoder.neck.3.weight',
    'shared_image_embedding.positional_embedding':
        'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix',
    'prompt_encoder.point_embed.3.weight': 'prompt_encoder.point_embeddings.3.weight',
    'prompt_encoder.not_a_point_embed.weight': 'prompt_encoder.not_a_point_embed.weight',
    'prompt_encoder.no_mask_embed.weight': 'prompt_encoder.no_mask_embed.weight',
    'prompt_encoder.mask_embed.conv1.weight': 'prompt_encoder.mask_downscaling.0.weight',
    'prompt_encoder.mask_embed.layer_norm1.weight': 'prompt_encoder.mask_downscaling.1.weight',
    'prompt_encoder.mask_embed.conv2.bias': 'prompt_encoder.mask_downscaling.3.bias',
    'prompt_encoder.mask_embed.layer_norm2.bias': 'prompt_encoder.mask_downscaling.4.bias',
    'prompt_encoder.mask_embed.conv3.weight': 'prompt_encoder.mask_downscaling.6.weight',
    'mask_decoder.iou_token.weight': 'mask_decoder.iou_token.weight',
    'mask_decoder.mask_tokens.weight': 'mask_decoder.mask_tokens.weight',
    'mask_decoder.transformer.layers.0.self_attn.q_proj.weight':
        'mask_decoder.transformer.layers.0.self_attn.q_proj.weight',
    'mask_decoder.transformer.layers.0.layer_norm1.weight':
        'mask_decoder.transformer.layers.0.norm1.weight',
    'mask_decoder.transformer.layers.1.layer_norm4.bias':
        'mask_decoder.transformer.layers.1.norm4.bias',
    'mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.bias':
        'mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.bias',
    'mask_decoder.transformer.layers.0.mlp.lin1.weight':
        'mask_decoder.transformer.layers.0.mlp.lin1.weight',
    'mask_decoder.transformer.final_attn_token_to_image.v_proj.weight':
        'mask_decoder.transformer.final_attn_token_to_image.v_proj.weight',
    'mask_decoder.transformer.layer_norm_final_attn.weight':
        'mask_decoder.transformer.norm_final_attn.weight',
    'mask_decoder.upscale_conv1.weight': 'mask_decoder.output_upscaling.0.weight',
    'mask_decoder.upscale_layer_norm.bias': 'mask_decoder.output_upscaling.1.bias',
    'mask_decoder.upscale_conv2.bias': 'mask_decoder.output_upscaling.3.bias',
    'mask_decoder.output_hypernetworks_mlps.0.proj_in.weight':
        'mask_decoder.output_hypernetworks_mlps.0.layers.0.weight',
    'mask_decoder.output_hypernetworks_mlps.3.layers.0.bias':
        'mask_decoder.output_hypernetworks_mlps.3.layers.1.bias',
    'mask_decoder.output_hypernetworks_mlps.2.proj_out.weight':
        'mask_decoder.output_hypernetworks_mlps.2.layers.2.weight',
    'mask_decoder.iou_prediction_head.proj_in.bias':
        'mask_decoder.iou_prediction_head.layers.0.bias',
    'mask_decoder.iou_prediction_head.layers.0.weight':
        'mask_decoder.iou_prediction_head.layers.1.weight',
    'mask_decoder.iou_prediction_head.proj_out.weight':
        'mask_decoder.iou_prediction_head.layers.2.weight',
}
# the HF prompt encoder's copy of the PE matrix (tied to shared_image_embedding)
HF_PE_COPY = 'prompt_encoder.shared_embedding.positional_embedding'
# a tiny SAM: 2-block 16-d ViT on 8-px patches of 32 px, 32-d decoder
TINY_SAM = dict(dim=16, depth=2, heads=2, global_attn=(1, ), img=32, patch=8, window=2, out=32,
                mlp=64, decoder_depth=2, iou_hidden=16)
SMALL_SAM = dict(dim=32, depth=4, heads=2, global_attn=(1, 3), img=1024, patch=16, window=14,
                 out=256, mlp=2048, decoder_depth=2, iou_hidden=256)  # = small_sam


def hf_state_dict(*, dim, depth, heads, global_attn, img, patch, window, out, mlp,
                  decoder_depth, iou_hidden, mask_channels=16, masks=4):
    """Random tensors named and shaped as HF's SamModel modules hold them."""
    grid = img // patch
    shapes = {'vision_encoder.pos_embed': (1, grid, grid, dim),
              'vision_encoder.patch_embed.projection.weight': (dim, 3, patch, patch),
              'vision_encoder.patch_embed.projection.bias': (dim, )}

    def linear(name, n_in, n_out):  # nn.Linear / nn.Conv2d 1x1 with bias
        shapes.update({f'{name}.weight': (n_out, n_in), f'{name}.bias': (n_out, )})

    def norm(name, n):
        shapes.update({f'{name}.weight': (n, ), f'{name}.bias': (n, )})

    def attention(name, n, rate):  # SamTwoWayTransformerAttention
        for proj in ('q_proj', 'k_proj', 'v_proj'):
            linear(f'{name}.{proj}', n, n // rate)
        linear(f'{name}.out_proj', n // rate, n)

    for i in range(depth):  # SamVisionLayer
        layer, size = f'vision_encoder.layers.{i}', grid if i in global_attn else window
        norm(f'{layer}.layer_norm1', dim)
        linear(f'{layer}.attn.qkv', dim, 3 * dim)
        linear(f'{layer}.attn.proj', dim, dim)
        for axis in 'hw':
            shapes[f'{layer}.attn.rel_pos_{axis}'] = (2 * size - 1, dim // heads)
        norm(f'{layer}.layer_norm2', dim)
        linear(f'{layer}.mlp.lin1', dim, 4 * dim)
        linear(f'{layer}.mlp.lin2', 4 * dim, dim)
    shapes['vision_encoder.neck.conv1.weight'] = (out, dim, 1, 1)
    norm('vision_encoder.neck.layer_norm1', out)
    shapes['vision_encoder.neck.conv2.weight'] = (out, out, 3, 3)
    norm('vision_encoder.neck.layer_norm2', out)
    shapes['shared_image_embedding.positional_embedding'] = (2, out // 2)
    shapes[HF_PE_COPY] = (2, out // 2)
    embed = 'prompt_encoder.mask_embed'
    shapes.update({f'{embed}.conv1.weight': (mask_channels // 4, 1, 2, 2),
                   f'{embed}.conv1.bias': (mask_channels // 4, ),
                   f'{embed}.conv2.weight': (mask_channels, mask_channels // 4, 2, 2),
                   f'{embed}.conv2.bias': (mask_channels, ),
                   f'{embed}.conv3.weight': (out, mask_channels, 1, 1),
                   f'{embed}.conv3.bias': (out, )})
    norm(f'{embed}.layer_norm1', mask_channels // 4)
    norm(f'{embed}.layer_norm2', mask_channels)
    for name in ['no_mask_embed', 'not_a_point_embed'] + [f'point_embed.{k}' for k in range(4)]:
        shapes[f'prompt_encoder.{name}.weight'] = (1, out)
    shapes.update({'mask_decoder.iou_token.weight': (1, out),
                   'mask_decoder.mask_tokens.weight': (masks, out)})
    for i in range(decoder_depth):  # SamTwoWayAttentionBlock
        layer = f'mask_decoder.transformer.layers.{i}'
        attention(f'{layer}.self_attn', out, 1)
        attention(f'{layer}.cross_attn_token_to_image', out, 2)
        attention(f'{layer}.cross_attn_image_to_token', out, 2)
        for k in range(1, 5):
            norm(f'{layer}.layer_norm{k}', out)
        linear(f'{layer}.mlp.lin1', out, mlp)
        linear(f'{layer}.mlp.lin2', mlp, out)
    attention('mask_decoder.transformer.final_attn_token_to_image', out, 2)
    norm('mask_decoder.transformer.layer_norm_final_attn', out)
    shapes.update({'mask_decoder.upscale_conv1.weight': (out, out // 4, 2, 2),
                   'mask_decoder.upscale_conv1.bias': (out // 4, ),
                   'mask_decoder.upscale_conv2.weight': (out // 4, out // 8, 2, 2),
                   'mask_decoder.upscale_conv2.bias': (out // 8, )})
    norm('mask_decoder.upscale_layer_norm', out // 4)
    for name, n_in, hidden, n_out in (
            [(f'output_hypernetworks_mlps.{k}', out, out, out // 8) for k in range(masks)]
            + [('iou_prediction_head', out, iou_hidden, masks)]):  # SamFeedForward, 3 layers
        linear(f'mask_decoder.{name}.proj_in', n_in, hidden)
        linear(f'mask_decoder.{name}.layers.0', hidden, hidden)
        linear(f'mask_decoder.{name}.proj_out', hidden, n_out)
    torch.manual_seed(0)
    state = {key: torch.randn(shape) for key, shape in shapes.items()}
    state[HF_PE_COPY] = state['shared_image_embedding.positional_embedding'].clone()
    return state


def official_sam(*, dim, depth, heads, global_attn, img, patch, window, out, mlp,
                 decoder_depth, iou_hidden):
    """segment_anything's Sam of that size, as its build_sam builds it."""
    grid = img // patch
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=img, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
            out_chans=out, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=window, global_attn_indexes=global_attn),
        prompt_encoder=PromptEncoder(embed_dim=out, image_embedding_size=(grid, grid),
                                     input_image_size=(img, img), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3, transformer_dim=out, iou_head_depth=3,
            iou_head_hidden_dim=iou_hidden,
            transformer=TwoWayTransformer(depth=decoder_depth, embedding_dim=out, mlp_dim=mlp,
                                          num_heads=heads)))


def load_converter():
    return load_tool('model_converters/hf_sam_to_official')


def test_hf_names_convert_to_the_official_ones():
    hf = {key: torch.tensor([float(i)]) for i, key in enumerate(HF_TO_OFFICIAL)}
    hf[HF_PE_COPY] = hf['shared_image_embedding.positional_embedding'].clone()
    converted = load_converter().convert_hf_sam_state_dict(hf)
    assert sorted(converted) == sorted(HF_TO_OFFICIAL.values())  # the copy is dropped
    for key, official in HF_TO_OFFICIAL.items():
        assert torch.equal(converted[official], hf[key]), key


def test_converted_hf_sam_loads_strictly_into_segment_anything():
    hf = hf_state_dict(**TINY_SAM)
    sam = official_sam(**TINY_SAM)
    sam.load_state_dict(load_converter().convert_hf_sam_state_dict(hf))  # keys and shapes
    state = sam.state_dict()
    assert len(state) == len(hf) - 1
    for key, official in HF_TO_OFFICIAL.items():
        assert torch.equal(state[official], hf[key]), key


def test_hf_safetensors_converts_to_a_checkpoint_bipa_loads(tmp_path, tiny_model_cfg):
    from safetensors.torch import save_file
    hf = hf_state_dict(**SMALL_SAM)
    src, dst = tmp_path / 'model.safetensors', tmp_path / 'official.pth'
    save_file(hf, str(src))
    run_tool(load_converter(), src, dst)
    sam = official_sam(**SMALL_SAM)
    sam.load_state_dict(torch.load(dst, weights_only=True))  # the file: strict too
    model = bipa_for_small_sam(tiny_model_cfg, dst)
    model.init_weights()
    assert_loaded(model, sam)
    assert torch.equal(model.backbone.encoder.pos_embed, hf['vision_encoder.pos_embed'])


@pytest.mark.parametrize('state, match', [
    ({'image_encoder.pos_embed': torch.zeros(1)}, 'vision_encoder'),
    ({'vision_encoder.pos_embed': torch.zeros(1), 'text_encoder.x': torch.zeros(1)},
     r"unexpected keys in the HF SAM state dict: \['text_encoder.x'\]"),
    ({'vision_encoder.pos_embed': torch.zeros(1),
      'shared_image_embedding.positional_embedding': torch.zeros(2, 2),
      HF_PE_COPY: torch.ones(2, 2)}, 'differs from shared_image_embedding'),
])
def test_converter_rejects_other_layouts(state, match):
    with pytest.raises(ValueError, match=match):
        load_converter().convert_hf_sam_state_dict(state)
