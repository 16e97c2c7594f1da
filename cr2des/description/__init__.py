"""Architecture descriptions: units, the schema-driven loader, the frozen dataclasses of chip
-> tile -> PE -> crossbar, and the generated key reference.
"""
