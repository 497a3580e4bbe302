"""Built-in unlearning methods, one file each. Every module here registers itself on import."""
