"""Write a self-contained BiPA checkpoint for publishing.

    python tools/model_converters/publish_checkpoint.py CONFIG CHECKPOINT OUT.pth [--half]

Training checkpoints are lean: they leave out the frozen weights that the
config's files supply (``model.sam_checkpoint``, the local backbone's
pre-trained file) and need those files to load. This writes the model's
weights whole (no optimizer, scheduler or loop state), loadable by
``tools/test.py`` and ``tools/infer.py`` with any config of the same model,
as ``OUT-<first 8 hex digits of its SHA-256>.pth`` (mmengine's convention for
published files); ``--half`` stores floating-point weights in float16.
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import torch
from mmdet.registry import MODELS
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint

import bipa  # noqa: F401  (registers BiPA; lets torch load mmengine checkpoints)
from bipa.apis import run_cli
from bipa.models import complete_checkpoint
from bipa.models.frozen_weights import FROZEN_META


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write a self-contained BiPA checkpoint')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='a checkpoint written by tools/train.py')
    parser.add_argument('out', help='output file (.pth); its SHA-256 prefix is appended')
    parser.add_argument('--half', action='store_true',
                        help='store floating-point weights in float16 (half the size)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.sam_checkpoint=PATH')
    return parser.parse_args(argv)


def publish(config: Config, checkpoint: str, out: str, *, half: bool = False) -> str:
    """The path written: ``checkpoint``'s model weights, whole."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    init_default_scope(config.get('default_scope', 'mmdet'))
    model = MODELS.build(config.model)
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    complete_checkpoint(model, loaded, name=checkpoint)
    state = loaded['state_dict']
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {k: v for k, v in loaded.get('meta', {}).items() if k != FROZEN_META}
    meta.update(published_from=osp.abspath(checkpoint), half=half)
    stem = osp.splitext(out)[0]
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=state), out)
    with open(out, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    final = f'{stem}-{sha[:8]}.pth'
    os.replace(out, final)
    return final


def main(argv=None) -> str:
    args = parse_args(argv)
    config = Config.fromfile(args.config)
    if args.cfg_options:
        config.merge_from_dict(args.cfg_options)
    path = publish(config, args.checkpoint, args.out, half=args.half)
    size = osp.getsize(path)
    print(f'{path}: {size / 2**20:.1f} MiB ({osp.getsize(args.checkpoint) / 2**20:.1f} MiB '
          f'training checkpoint{", float16" if args.half else ""})')
    return path


if __name__ == '__main__':
    sys.exit(run_cli(main))
