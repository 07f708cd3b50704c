"""The routing table built from HTTPScaledObjects and HTTPRoutes (pure)."""
