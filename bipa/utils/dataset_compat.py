"""Make mmengine 0.10.7's ``BaseDataset.get_subset`` copy the dataset afresh.

``BaseDataset._copy_without_annotation(self, memo=dict())`` deep-copies the
dataset's attributes with a *default* memo, one dict shared by every call of
the process. Each later subset therefore gets, for any attribute whose ``id``
is in that memo, the copy made for an earlier call: a stale pipeline or
metainfo when the object was mutated since, and an unrelated object when a
freed object's ``id`` was reused (seen as a held-out split whose ``pipeline``
was a dataset). Each call here gets its own memo.
"""
from mmengine.dataset import BaseDataset

_copy_without_annotation = BaseDataset._copy_without_annotation


def _fresh_memo_copy(self, memo=None) -> BaseDataset:
    return _copy_without_annotation(self, {} if memo is None else memo)


def fix_dataset_subset_memo() -> None:
    """Patch ``BaseDataset._copy_without_annotation`` (idempotent)."""
    BaseDataset._copy_without_annotation = _fresh_memo_copy
