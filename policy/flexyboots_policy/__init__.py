"""flexyboots' CrossGuard policies (imported by ``policy/__main__.py`` inside ``policy/venv``)."""
