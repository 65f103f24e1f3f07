"""BiPA's own registries (mmdet's hold its models, datasets and loops)."""
from mmengine.registry import Registry

#: upper-level solvers of the bilevel loop (``train_cfg.search.solver``)
SOLVERS = Registry('upper-level solver', locations=['bipa.engine.solvers'])
