"""The three protocols a session speaks; each only translates to and from `ModelSession`."""
