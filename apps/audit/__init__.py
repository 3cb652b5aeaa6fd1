"""The portal-wide audit trail of configuration changes. ``record`` writes an entry by hand."""


def record(**kwargs):
    from .recording import record as _record

    return _record(**kwargs)
