"""The latency-ledger example shop (see app.py): serve with
``uvicorn --app-dir examples shop.app:app``; set ``LATENCY_LEDGER=1`` to instrument it."""
