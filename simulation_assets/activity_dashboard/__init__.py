"""A small live web dashboard for the activity simulator: customers, metrics, interventions, a monitor button."""
