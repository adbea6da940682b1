"""Background jobs: SAQ's Postgres queue, the worker processes, and the API's handle on both.

Generic pieces only; each domain keeps its own jobs (``instashare.documents.jobs``) and hands
them over as a :class:`~instashare.worker.queue.JobSet`, which :mod:`.runner` composes.
"""
