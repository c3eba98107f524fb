"""GMOS instrument knowledge: lookup tables, tags and descriptors."""
