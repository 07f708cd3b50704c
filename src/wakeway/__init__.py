"""wakeway: HTTP scale-to-zero for Kubernetes."""

__version__ = "0.1.0"
