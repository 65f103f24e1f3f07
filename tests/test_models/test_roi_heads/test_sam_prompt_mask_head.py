import torch

from bipa.models import MaskPrompts
from bipa.models.roi_heads import SAMPromptMaskHead


def test_batched_single_mask_decode_equals_segment_anything():
    torch.manual_seed(0)
    head = SAMPromptMaskHead(embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2,
                             prompt_generator=dict(type='SparsePromptGenerator', in_channels=8,
                                                   hidden_dim=16))
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
    head = SAMPromptMaskHead(embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2,
                             prompt_generator=dict(type='SparsePromptGenerator', in_channels=8,
                                                   hidden_dim=16))
    out = head(torch.zeros(0, 8, 14, 14), torch.zeros(0, 5), torch.randn(2, 32, 4, 4))
    assert out.shape == (0, 1, 16, 16)
