"""The KEDA external scaler: aggregates pushed counts, serves externalscaler.proto."""
