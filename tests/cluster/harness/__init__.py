"""The cluster test tier's harness. Kept import-free: pod servers start from this package and
should not pay for the Kubernetes client. Import from the submodules (cluster, podrunner...)."""
