import pytest
import torch
from segment_anything.modeling.image_encoder import Attention

from bipa.models.layers import rel_pos_attention


@pytest.mark.parametrize('size,fold', [((4, 4), False), ((4, 4), True), ((6, 5), True),
                                       ((6, 5), False)])
def test_sdpa_rel_pos_equals_segment_anything(size, fold):
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, use_rel_pos=True, input_size=size)
    for p in (attn.rel_pos_h, attn.rel_pos_w):
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, *size, 32)
    expected = attn(x)

    b, h, w, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, h * w, 3, 4, -1).permute(2, 0, 3, 1, 4).unbind(0)
    out = rel_pos_attention(q, k, v, attn.rel_pos_h, attn.rel_pos_w, (h, w),
                            scale=attn.scale, fold_bias=fold)
    out = attn.proj(out.transpose(1, 2).reshape(b, h, w, -1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_rel_pos_resized_for_other_grid():
    """rel-pos tables trained for one grid are interpolated for another, as SAM does."""
    torch.manual_seed(1)
    attn = Attention(16, num_heads=2, use_rel_pos=True, input_size=(4, 4))
    torch.nn.init.normal_(attn.rel_pos_h)
    torch.nn.init.normal_(attn.rel_pos_w)
    x = torch.randn(1, 6, 6, 16)
    expected = attn(x)
    q, k, v = attn.qkv(x).reshape(1, 36, 3, 2, -1).permute(2, 0, 3, 1, 4).unbind(0)
    out = rel_pos_attention(q, k, v, attn.rel_pos_h, attn.rel_pos_w, (6, 6),
                            scale=attn.scale, fold_bias=True)
    out = attn.proj(out.transpose(1, 2).reshape(1, 6, 6, -1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
