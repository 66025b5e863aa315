"""A storage backend that fails the way a misconfigured bucket does, for tests."""

from django.core.files.storage import InMemoryStorage


class BrokenStorage(InMemoryStorage):
    def _save(self, name, content):
        raise PermissionError("AccessDenied on s3://bucket-secret/voice/audio (key AKIA-EXAMPLE)")
