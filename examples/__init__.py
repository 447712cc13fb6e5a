"""Examples of programs that use Beeldbel from outside (see each folder's README)."""
