"""Built-in attacks, one file each. Every module here registers itself on import."""
