"""Built-in components, each module a plugin registered through the public hooks."""
