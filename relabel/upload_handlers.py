"""The upload size limit, applied while Django receives the file.

Django's own handlers store an upload (in memory, then in a temporary file) before any view
runs, and the CSRF check reads the whole body first. This handler, first in
FILE_UPLOAD_HANDLERS, passes chunks on only up to AGENTHER_UPLOAD_MAX_MB; past it nothing more is
stored and the form receives a ``RefusedUpload`` that says how large the file was.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler


class RefusedUpload(UploadedFile):
    """What the form gets instead of a file over the limit: its name and size, no content."""

    refused = True

    def __init__(self, name: str, size: int) -> None:
        super().__init__(file=None, name=name, size=size)


class UploadLimitHandler(FileUploadHandler):
    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.over_limit = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > settings.AGENTHER_UPLOAD_MAX_BYTES:
            self.over_limit = True
        # None: the handlers after this one (which store the file) get nothing more.
        return None if self.over_limit else raw_data

    def file_complete(self, file_size: int) -> UploadedFile | None:
        return RefusedUpload(self.file_name, file_size) if self.over_limit else None
