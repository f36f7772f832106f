"""Streams a multipart upload straight to files in the job's folder, enforcing the size limit on the
whole request as the bytes arrive: an upload is never held in memory, and one over the limit is refused
(413) as soon as it passes it, not after it has filled a disk. Only the fields the API takes are
accepted, each once: any other part, or a repeated one, is refused (422) before a byte of it is stored.

File parts are stored under names the service chooses (`input.mp4`, `background.png`); the client's
file name is kept only as a display name and lends at most a sanitised extension.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 16
_SUFFIX = re.compile(r"\.[a-z0-9]{1,10}")


class UploadError(Exception):
    """Refused upload: `status` (413, 422, 507) and a one-line message."""

    def __init__(self, status: int, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.extra = status, extra


@dataclass
class SavedFile:
    name: str  # the client's file name (display only), without any folder part
    path: Path
    size: int = 0


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, SavedFile] = field(default_factory=dict)


def display_name(raw: str) -> str:
    """The last component of a client's file name, for showing ('../../x.mp4' -> 'x.mp4')."""
    name = re.split(r"[\\/]", raw.replace("\x00", ""))[-1].strip()
    return name[:255] or "upload"


def safe_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if _SUFFIX.fullmatch(suffix) else ""


class _Receiver:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, folder: Path, stored_as: dict[str, str], text_fields: tuple[str, ...]) -> None:
        self.folder, self.stored_as, self.text_fields = folder, stored_as, text_fields
        self.seen: set[str] = set()
        self.upload = Upload()
        self.parts = 0
        self._header_field, self._header_value = b"", b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._file: SavedFile | None = None
        self._handle: IO[bytes] | None = None
        self._text = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError(422, f"too many form fields (at most {MAX_PARTS})")
        self._headers, self._name, self._file, self._text = {}, None, None, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self._check_part(self._name, filename is not None)
        if filename is None:
            return
        shown = display_name(filename.decode("utf-8", "replace"))
        path = self.folder / (self.stored_as[self._name] + safe_suffix(shown))
        self._file = SavedFile(shown, path)
        try:
            self._handle = open(path, "wb")
        except OSError as exc:
            raise _disk_error(exc) from None

    def _check_part(self, name: str, is_file: bool) -> None:
        """422 for a part the API does not take as sent: unknown, repeated, a file where text is
        expected or text where a file is."""
        video = next(iter(self.stored_as))
        if name in self.seen:
            raise UploadError(422, f"form field {name!r} is given more than once")
        self.seen.add(name)
        if name in self.stored_as and not is_file:
            raise UploadError(422, f"form field {name!r} must be a file (multipart with a filename), "
                                   "not text")
        if name in self.text_fields and is_file:
            raise UploadError(422, f"form field {name!r} must be text, not a file")
        if name not in self.stored_as and name not in self.text_fields:
            hint = f"send the video as the multipart file field {video!r}" if is_file else \
                f"the fields are {', '.join([*self.stored_as, *self.text_fields])}"
            raise UploadError(422, f"unexpected {'file' if is_file else 'form'} field {name!r}: {hint}")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.size += end - start
            try:
                self._handle.write(data[start:end])
            except OSError as exc:
                raise _disk_error(exc) from None
        else:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise UploadError(422, f"form field {self._name!r} is too long (at most "
                                       f"{MAX_FIELD_BYTES // 1024} KB)")

    def part_end(self) -> None:
        if self._file is not None:
            self.close()
            self.upload.files[self._name] = self._file
        else:
            self.upload.fields[self._name] = self._text.decode("utf-8", "replace")

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError as exc:
                raise _disk_error(exc) from None
            finally:
                self._handle = None


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def _disk_error(exc: OSError) -> UploadError:
    return UploadError(507, f"cannot store the upload: {exc.strerror or exc}")


async def receive(stream: AsyncIterator[bytes], content_type: str, folder: Path, stored_as: dict[str, str],
                  text_fields: tuple[str, ...], max_bytes: int) -> Upload:
    """Parse a multipart/form-data body from `stream` into `folder`: the file fields named in
    `stored_as` are written to `folder / (stored_as[field] + suffix)` (the first is the main one), the
    `text_fields` are returned; any other part, or one given twice, is refused. Refuses (413) a body
    over `max_bytes`, all parts together. Raises UploadError; files written so far stay for the caller
    to remove."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(422, f"send the video as multipart/form-data, in the file field "
                               f"{next(iter(stored_as))!r}")
    receiver = _Receiver(folder, stored_as, text_fields)
    parser = MultipartParser(boundary, receiver.callbacks())
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > max_bytes:
                raise UploadError(413, f"the upload is larger than this server's limit of "
                                       f"{_megabytes(max_bytes)}", limit="upload_size")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise UploadError(422, f"malformed multipart body: {exc}") from None
    finally:
        receiver.close()
    return receiver.upload
