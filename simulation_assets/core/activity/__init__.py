"""Real-time customer activity: the customer model, the per-tick behaviours and the proactive monitor."""
