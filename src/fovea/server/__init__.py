"""HTTP apps: the session app (three dialects + ops) and, later, the platform back-end."""
