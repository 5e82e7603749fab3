"""A minimal Django project for the known-answer tests, served by gunicorn and uvicorn.

Each view answers with the wall time of its own database work as it measured it (the
connect, when the request opened a connection, and the query), the ground truth the
tests compare the booked ledger with.
"""
