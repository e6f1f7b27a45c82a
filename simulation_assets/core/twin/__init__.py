"""A behavioural twin of a product's users, fitted to an event export.

The pipeline, one module per stage, every function pure and vectorized:

- ``sessions``: stitch identities into users and rebuild sessions (30 minutes of
  inactivity, at most 24 hours) where the export has no ``$session_id``.
- ``features``: per-user and per-session figures shared by the fit, the fidelity
  report, the churn classifier and the privacy test.
- ``classes``, ``arrivals``, ``activity``, ``flows``, ``properties``, ``identity``:
  the estimators, each documented where it is defined.
- ``fit``: runs them on the training users and returns a :class:`~.spec.TwinSpec`.
- ``spec``: the readable, editable, versioned model (a YAML document plus tables).
- ``generate``: look-alike users and their events, one UTC day at a time.
- ``fidelity``, ``privacy``, ``checks``: how close and how private the twin is.
"""
