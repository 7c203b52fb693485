"""genlab: a PyTorch workbench for generative modeling and sampling."""

__version__ = "0.1.0"

__all__ = ["__version__"]
