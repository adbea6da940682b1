"""Resumable uploads over tus 1.0.0: progress in PostgreSQL, bytes in storage."""
