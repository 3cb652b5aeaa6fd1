"""Uploads when the disk is full: a clear error for the user, nothing imported, no partial file left behind.

Django keeps a small upload in memory and spools a larger one to a temporary file in
``FILE_UPLOAD_TEMP_DIR`` (the upload folder) while it reads the request. ``SpoolingUploadHandler`` turns a failed
write there (no space left, file too large, an I/O error) into ``UploadNotStored`` after removing the partial
file, and ``UploadStorageErrorMiddleware`` reads the upload before any view runs, so that error becomes a message
on the page the user came from (or a 507 answer on the API) instead of a server error. Code that copies an
upload into the upload folder itself reports its own write errors with ``storage_error_message``.
"""

import contextlib
import errno
import os

from django.conf import settings
from django.contrib import messages
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import HttpResponseRedirect, JsonResponse
from django.http.multipartparser import MultiPartParserError

API_PREFIX = "/api/"
STORAGE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EDQUOT, errno.EROFS}


def storage_error_message(exc: OSError, filename: str | None = None) -> str:
    """``could not store the upload: no space left on device`` (naming the file when known)."""
    reason = (exc.strerror or str(exc) or "write failed").rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    named = f" {filename}" if filename else ""
    return f"could not store the upload{named}: {reason}; nothing was imported"


class UploadNotStored(OSError):
    """An upload could not be written to the upload folder; the partial file is already gone."""


class SpoolingUploadHandler(TemporaryFileUploadHandler):
    """Django's temporary-file handler, with a failed write cleaned up and reported as UploadNotStored."""

    def new_file(self, *args, **kwargs):
        super(TemporaryFileUploadHandler, self).new_file(*args, **kwargs)
        try:
            os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, exist_ok=True)
            self.file = TemporaryUploadedFile(
                self.file_name, self.content_type, 0, self.charset, self.content_type_extra
            )
        except OSError as exc:
            raise self._failed(exc) from None

    def receive_data_chunk(self, raw_data, start):
        try:
            self.file.write(raw_data)
        except OSError as exc:
            raise self._failed(exc) from None

    def file_complete(self, file_size):
        try:
            self.file.flush()
            os.fsync(self.file.fileno())  # a delayed write error shows here, not later in an import
            self.file.seek(0)
        except OSError as exc:
            raise self._failed(exc) from None
        self.file.size = file_size
        return self.file

    def _failed(self, exc: OSError) -> UploadNotStored:
        self._discard()
        return UploadNotStored(exc.errno, storage_error_message(exc, self.file_name))

    def _discard(self) -> None:
        file = getattr(self, "file", None)
        if file is None:
            return
        path = file.temporary_file_path()
        with contextlib.suppress(OSError):  # flushing what is buffered fails again on a full disk
            file.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        self.file = None


class UploadStorageErrorMiddleware:
    """Read a multipart request's files before the view; a storage failure answers with a clear error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.content_type == "multipart/form-data":
            try:
                request.POST  # noqa: B018 (parses the body, spooling files through SpoolingUploadHandler)
            except UploadNotStored as exc:
                return self._refused(request, exc)
            except MultiPartParserError:
                pass  # a malformed body (no boundary, broken parts): the view finds no data and answers 400
            except OSError as exc:
                if exc.errno not in STORAGE_ERRNOS:
                    raise
                return self._refused(request, UploadNotStored(exc.errno, storage_error_message(exc)))
        return self.get_response(request)

    @staticmethod
    def _refused(request, exc: UploadNotStored):
        message = exc.strerror
        if request.path.startswith(API_PREFIX):
            return JsonResponse({"detail": message}, status=507)  # 507 Insufficient Storage
        messages.error(request, message[:1].upper() + message[1:] + ".")
        response = HttpResponseRedirect(request.get_full_path())
        response.status_code = 303  # the browser comes back with GET: the form again, with the message
        return response
