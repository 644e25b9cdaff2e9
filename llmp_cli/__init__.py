"""The ``llmp`` command line: ``llmp serve`` (the whole platform locally) and ``llmp keys``."""
