"""Quarantine: data-driven selective isolation for concurrent C servers.

The package is laid out as the pipeline it implements:

    analyzer/   C sources -> program model (libclang)
    model.py    the shared, frozen data model every stage reads and writes
    marshal.py  which signatures can cross a process boundary, and how
    plan.py     plan.yaml: reading, validating, checking against a model
    output.py   diagnostics and models as text, JSON and SARIF
    cli.py      the qtool command, wiring the stages together (commands/ holds one module each)
"""

__version__ = "0.1.0"
