"""Solver searches: the differentiable solver search (NeuralSolver/DSS) and the AutoDiffusion-style evolutionary
search, both producing :class:`~genlab.samplers.searched.SolverPreset` files run by the ``"searched"`` sampler."""

from genlab.samplers.search.api import METHODS, SearchResult, search_solver
from genlab.samplers.search.evolution import EvolutionResult, evolutionary_search
from genlab.samplers.search.neural import BASES, NeuralSolver, NeuralSolverFit, base_table, fit_neural_solver
from genlab.samplers.search.problem import SearchProblem, candidate_times, data_form_rows, make_problem

__all__ = [
    "BASES",
    "METHODS",
    "EvolutionResult",
    "NeuralSolver",
    "NeuralSolverFit",
    "SearchProblem",
    "SearchResult",
    "base_table",
    "candidate_times",
    "data_form_rows",
    "evolutionary_search",
    "fit_neural_solver",
    "make_problem",
    "search_solver",
]
