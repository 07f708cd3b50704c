"""The operator: reconciles HTTPScaledObjects; wakes and scales workloads."""
