import gc
import os
import os.path as osp
import tempfile
from datetime import timedelta
from typing import Optional

import torch
from mmengine.config import Config

from .checkpoint_files import UnreadableCheckpointError, load_from_problem
from .config_check import check_config
from .config_error import ConfigError
from .launcher import die_with_launcher


def load_run_config(config: str, *, cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None, launcher: str = 'none') -> Config:
    """A config as tools/train.py and tools/test.py use it: ``--cfg-options``
    merged, the launcher set, and the work dir from ``--work-dir``, the config,
    or ``work_dirs/<config name>``. A key that no class takes stops it
    (:func:`check_config`), before the Runner dumps the config."""
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        try:
            cfg.merge_from_dict(cfg_options)
        except TypeError as err:  # e.g. a key set under a value that is None in the config
            raise ConfigError(f'--cfg-options: {err} (e.g. KEY._delete_=True KEY.type=...)'
                              ) from None
    check_config(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


AMP_ONLY_KEYS = ('dtype', 'loss_scale', 'use_fsdp')  # AmpOptimWrapper's own arguments


def switch_amp_off(cfg: Config) -> None:
    """``--no-amp``: ``optim_wrapper`` as a plain ``OptimWrapper`` (float32),
    without ``AmpOptimWrapper``'s own keys; nothing when AMP is off."""
    wrapper = cfg.get('optim_wrapper')
    if isinstance(wrapper, dict) and wrapper.get('type') == 'AmpOptimWrapper':
        wrapper.type = 'OptimWrapper'
        for key in AMP_ONLY_KEYS:
            wrapper.pop(key, None)


def check_run_inputs(cfg: Config, *, training: bool) -> None:
    """What a run needs from this machine, checked before anything is built:
    a work dir it can write and, to train, a readable ``load_from`` (else
    :class:`UnreadableCheckpointError`) and a GPU for ``AmpOptimWrapper``
    (else :class:`ConfigError`). Each error is one line."""
    work_dir = cfg.work_dir
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir):
            pass
    except OSError as err:
        raise ConfigError(f'work dir {work_dir} cannot be written ({err.strerror}): choose '
                          'another with --work-dir') from None
    if not training:
        return
    problem = load_from_problem(cfg.get('load_from'), cfg.get('resume', False))
    if problem is not None:
        raise UnreadableCheckpointError(problem)
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        raise ConfigError("optim_wrapper.type='AmpOptimWrapper' (mixed precision) needs a GPU "
                          'and this machine has none: pass --no-amp to train in float32')


def setup_cuda_allocator(cfg: Config) -> Optional[str]:
    """Configure PyTorch's CUDA caching allocator from ``env_cfg.cuda_alloc_conf``
    (the syntax of ``PYTORCH_CUDA_ALLOC_CONF``, e.g. ``expandable_segments:True``)
    before CUDA is initialised; a ``PYTORCH_CUDA_ALLOC_CONF`` in the environment
    wins. Returns the setting in effect."""
    conf = cfg.get('env_cfg', {}).get('cuda_alloc_conf')
    if conf and 'PYTORCH_CUDA_ALLOC_CONF' not in os.environ:
        if torch.cuda.is_initialized():
            raise RuntimeError(f'env_cfg.cuda_alloc_conf={conf!r} must be applied before CUDA '
                               'is initialised; call setup_cuda_allocator first')
        os.environ['PYTORCH_CUDA_ALLOC_CONF'] = conf
    return os.environ.get('PYTORCH_CUDA_ALLOC_CONF')


def setup_launcher(cfg: Config) -> None:
    """Let ``--launcher pytorch`` (torchrun, ``tools/dist_train.sh``) run without
    GPUs.

    mmengine 0.10.7's pytorch launcher always calls ``torch.cuda.set_device``
    and its default DDP wrapper passes ``device_ids``. Without CUDA this
    initialises the process group itself (``env://`` from torchrun) with gloo,
    which mmengine then uses as it is, and configures
    ``MMDistributedDataParallel`` without device ids and, unless the config
    says otherwise, with ``find_unused_parameters=True``: DDP then keeps its
    first gradient buckets instead of rebuilding them after the first
    iteration in the order the gradients arrived. A resumed run's first
    iteration is a new DDP's first, so with the rebuild it would reduce with
    other buckets than the uninterrupted run; where a gradient sits in a
    bucket decides the order in which gloo's ring all-reduce adds the ranks'
    values, which with 3 or more processes changes the sum's last bits (with
    2, a + b = b + a). With GPUs nothing changes (NCCL, one device per
    process).

    Under torchrun the process also ends with torchrun's agent
    (:func:`die_with_launcher`), however that is stopped.
    """
    if cfg.launcher == 'pytorch':
        die_with_launcher()
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise ConfigError(f'--launcher {cfg.launcher} without GPUs is not supported; use '
                          'torchrun (--launcher pytorch), e.g. bash tools/dist_train.sh')
    dist_cfg = cfg.env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', True))
    cfg.model_wrapper_cfg = wrapper
    if not torch.distributed.is_initialized():
        timeout = dist_cfg.get('timeout')
        torch.distributed.init_process_group(
            backend='gloo', **({} if timeout is None else dict(timeout=timedelta(seconds=timeout))))


def shutdown_distributed() -> None:
    """End a distributed run (``--launcher pytorch``) on this rank: a barrier,
    then ``torch.distributed.destroy_process_group()``, which joins the
    backend's threads; nothing when no process group is initialised. Call it
    after the run succeeded, with the Runner dropped: its DDP wrapper holds
    the process group, and a group still referenced is not destroyed.

    Without it a rank's interpreter can begin to exit while a gloo worker
    thread still holds the work of the last collective (e.g. the final
    ``broadcast_object_list`` of an evaluation) and, with it, tensors whose
    Python objects it must release under the GIL. A thread asking for the GIL
    during finalisation is ended by Python, and ending it inside that C++
    destructor aborts the rank ("terminate called without an active
    exception", SIGABRT) after its work is done. While this rank waits in
    the barrier without the GIL such a thread finishes, and the process
    group's destructor joins the threads before the interpreter exits.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    gc.collect()  # the finished Runner's reference cycles hold the process group
    dist.destroy_process_group()
