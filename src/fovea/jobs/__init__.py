"""Jobs: process functions and the executors that run them (a local pool; Celery later).

Job code talks to the platform only through the database and the storage folder, so the same function
runs in a server's process pool or on a remote worker.
"""
