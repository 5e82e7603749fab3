"""The Django example shop's project package (settings, URLs, WSGI and ASGI entry points)."""
