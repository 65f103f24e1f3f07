from .bilevel_loop import BilevelLoop
from .prompt_objective import MaskObjective
from .prompt_search import PromptSearch

__all__ = ['BilevelLoop', 'MaskObjective', 'PromptSearch']
