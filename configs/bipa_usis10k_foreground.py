# BiPA on USIS10K, class-agnostic (one 'foreground' class).
_base_ = ['./bipa_usis10k.py', './_base_/datasets/usis10k_foreground.py']

model = dict(roi_head=dict(bbox_head=dict(num_classes=1)))
