from .base_solver import BaseSolver, best_trial, fail_reasons
from .gradient_solver import GradientSolver
from .optuna_solver import CmaEsSolver, GPSolver, OptunaSolver, RandomSolver, TPESolver

__all__ = ['BaseSolver', 'CmaEsSolver', 'GPSolver', 'GradientSolver', 'OptunaSolver',
           'RandomSolver', 'TPESolver', 'best_trial', 'fail_reasons']
