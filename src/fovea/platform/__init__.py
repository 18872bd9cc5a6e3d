"""The platform: state in a database (users, tokens, projects, catalog, processes) and the services that own it.

Permission checks live here, in the services, never only in a router.
"""
