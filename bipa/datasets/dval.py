"""D_tr and D_val of the bilevel prompt search, resolved from a run's config.

D_val is held out of the training dataset (``train_cfg.holdout``: the two
parts of ``HoldoutSplit``) or is the dataset of another dataloader of the
config (``train_cfg.val_split``, never the test split), and is read with the
search's pipeline: ``train_cfg.search.pipeline``, or the validation pipeline
with its annotations loaded before resizing (:func:`default_search_pipeline`).
"""
import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Union

from ..utils import ConfigError
from .holdout import HOLDOUT_SEED

if TYPE_CHECKING:
    from torch.utils.data import DataLoader


@dataclass(frozen=True)
class SearchSplit:
    """D_tr and D_val of the upper level, as :meth:`from_cfg` resolves them."""

    #: the training dataloader (a config reading D_tr, or a built DataLoader as given)
    train_dataloader: Union[dict, 'DataLoader']
    #: D_val's dataset config; None: no D_val
    val_dataset_cfg: Optional[dict] = None
    #: the pipeline D_val is read with
    val_pipeline: Optional[list] = None
    #: D_val and its pipeline, as error messages about f name them
    source: Optional[str] = None
    #: ``run``: the config's ``randomness.seed``; ``holdout``: the holdout's seed
    #: (None without a holdout); None where unset
    seeds: dict = field(default_factory=dict)

    @classmethod
    def from_cfg(cls, cfg, dataloader: Union[dict, 'DataLoader'], *,
                 holdout: Optional[dict], val_split: Optional[str],
                 pipeline: Optional[list]) -> 'SearchSplit':
        """Resolve D_tr and D_val for the run config ``cfg`` (``runner.cfg``)
        and its training ``dataloader``: with ``holdout`` they are the
        ``'train'`` and ``'holdout'`` parts of ``HoldoutSplit`` over the
        training dataset; with ``val_split`` D_tr is the whole training dataset
        and D_val that dataloader's dataset. D_val is read with ``pipeline``
        (``train_cfg.search.pipeline``), or :func:`default_search_pipeline`
        when None. A built DataLoader, or neither key, gives no D_val."""
        seeds = dict(run=(cfg.get('randomness') or {}).get('seed'), holdout=None)
        if not isinstance(dataloader, dict) or holdout is None and val_split is None:
            return cls(dataloader, seeds=seeds)
        source = ('D_val (pipeline train_cfg.search.pipeline)' if pipeline else
                  'D_val (pipeline of val_dataloader, annotations loaded before resizing)')
        pipeline = list(pipeline or default_search_pipeline(cfg))
        if val_split is not None:
            return cls(dataloader, dict(val_split_dataset(cfg, val_split), pipeline=pipeline),
                       pipeline, source, seeds)
        dataset = copy.deepcopy(dataloader['dataset'])
        val_dataset_cfg = dict(type='HoldoutSplit', part='holdout', **holdout,
                               dataset=dict(dataset, pipeline=pipeline))
        train = dict(dataloader, dataset=dict(type='HoldoutSplit', part='train', **holdout,
                                              dataset=dataset))
        seeds['holdout'] = holdout.get('seed', HOLDOUT_SEED)
        return cls(train, val_dataset_cfg, pipeline, source, seeds)

    def write(self, path: str, train_dataset, val_dataset=None) -> List[str]:
        """Write D_tr and D_val (their configs and image ids, D_val's pipeline)
        and the seeds to ``path`` (``splits.json``), given the datasets built
        from them; return the lines that say so in the log."""
        train_cfg = (self.train_dataloader['dataset'] if isinstance(self.train_dataloader, dict)
                     else train_dataset)
        splits = dict(seeds=self.seeds, D_tr=dict(dataset=_described(train_cfg),
                                                  image_ids=_image_ids(train_dataset)))
        lines = [f'D_tr: {splits["D_tr"]["dataset"]}, {len(train_dataset)} images']
        if val_dataset is None:
            lines.append('D_val: none')
        else:
            splits['D_val'] = dict(dataset=_described(self.val_dataset_cfg),
                                   pipeline=self.val_pipeline, image_ids=_image_ids(val_dataset))
            pipeline = [t.get('type') for t in self.val_pipeline]
            lines.append(f'D_val: {splits["D_val"]["dataset"]}, {len(val_dataset)} images, '
                         f'pipeline {pipeline}')
        with open(path, 'w') as f:
            json.dump(splits, f, indent=1, default=str)
        lines.append(f'seeds: run={self.seeds["run"]}, holdout={self.seeds["holdout"]}')
        lines.append(f'image ids of both: {path}')
        return lines


def _described(cfg):
    """A dataset config without its pipelines (a built dataset: its class name)."""
    if not isinstance(cfg, dict):
        return type(cfg).__name__
    return {k: _described(v) if k == 'dataset' else v for k, v in cfg.items()
            if k != 'pipeline'}


def _image_ids(dataset) -> list:
    infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    return [info.get('img_id', info.get('img_path')) for info in infos]


def default_search_pipeline(cfg) -> list:
    """D_val's pipeline: the validation (or test) pipeline of the config
    ``cfg`` with its ``LoadAnnotations`` moved right after the image is loaded,
    so that every later transform (``Resize``, ``Pad``) scales the GT boxes and
    masks with the image. (mmdet's test pipelines load annotations after
    ``Resize``: CocoMetric reads GT from the json, at the original scale.)"""
    for key in ('val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader:
            break
    pipeline = copy.deepcopy(loader['dataset'].get('pipeline') or []) if loader else []

    def image_loader():
        return next((i for i, t in enumerate(pipeline)
                     if 'LoadImage' in str(t.get('type'))), None)

    loads = [i for i, t in enumerate(pipeline) if t.get('type') == 'LoadAnnotations'
             and t.get('with_bbox', True) and t.get('with_mask')]
    if not loads or image_loader() is None:
        raise ConfigError('val_dataloader.dataset.pipeline: the prompt search reads D_val '
                          'with the pipeline of val_dataloader (or test_dataloader), which '
                          'must load the image and LoadAnnotations(with_bbox=True, '
                          'with_mask=True); or set train_cfg.search.pipeline')
    annotations = pipeline.pop(loads[0])
    pipeline.insert(image_loader() + 1, annotations)
    return pipeline


def val_split_dataset(cfg, name: str) -> dict:
    """The dataset config of the dataloader ``name`` of the config ``cfg`` (D_val
    from an existing split); never the test split."""
    loader = cfg.get(name) if isinstance(name, str) else None
    if not loader or 'dataset' not in loader:
        raise ConfigError(f'train_cfg.val_split={name!r} must name a dataloader of the '
                          "config that has a dataset, e.g. 'val_dataloader'")
    dataset = copy.deepcopy(loader['dataset'])
    test = (cfg.get('test_dataloader') or {}).get('dataset') or {}

    def source(d):
        return d.get('type'), d.get('data_root'), d.get('ann_file')

    if name != 'test_dataloader' and (not test or source(dataset) != source(test)):
        return dataset
    raise ConfigError(f'train_cfg.val_split={name!r}: that is the test split '
                      f'({dataset.get("data_root", "")}{dataset.get("ann_file")}); the '
                      'prompt search must not see it (use train_cfg.holdout instead)')
