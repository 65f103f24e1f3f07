# Paper Table 3: the dense prompt kept at its initial value (USIS-SAM),
# over the same T * K_a + K_c epochs on the same D_tr.
_base_ = ['../bipa_uiis.py']

model = dict(roi_head=dict(mask_head=dict(dense_prompt=dict(mode='frozen'))))
