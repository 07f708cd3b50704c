"""``wakeway status|wake|sleep|explain``: see and drive scale-to-zero, in a cluster (through
:mod:`wakeway.kube`) or in local mode (through its admin port)."""
