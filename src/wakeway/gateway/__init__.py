"""Gateway API HTTPRoute matching and precedence (pure)."""
