"""The matte options, spelled once: what `rvmkit matte`, `convert_video`, `live`, serve jobs and batch
items choose about the model and the outputs, with the one check of every value.

Each front-end maps its own names onto `MatteOptions` (convert_video's RVM keywords, live's flags, a
serve job's form, a batch call's keywords) and calls `checked()` before any work, so a value is judged
by one rule wherever it is typed. The room sits above video/ and runtime/ (whose validators it calls)
and below api/, so every front-end can import it; it imports them when a check runs, so the CLI's
--help (which lists ROLES and FORMATS) stays as quick to start as before.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvmkit.errors import RvmkitError

if TYPE_CHECKING:
    from rvmkit.runtime import ModelSpec

#: the outputs a run can write, in the order they are planned and listed
ROLES = ("composition", "alpha", "foreground")
#: the output formats of `batch --format` and a serve job's `format` (png: a folder of PNG frames)
FORMATS = ("mp4", "mkv", "webm", "mov", "png")


@dataclass(frozen=True)
class MatteOptions:
    """The model and output options of one run, shared by every item of a batch (picklable)."""

    model: str | None = None
    variant: str | None = None
    backend: str | None = None
    device: str = "cpu"
    downsample_ratio: str | float | None = "auto"
    input_resize: tuple[int, int] | None = None
    output_type: str | None = None
    background: str | None = None
    output_video_mbps: float | None = None
    crf: int | None = None
    seq_chunk: int = 1
    fp16: bool = False
    precision: str = "fp32"

    def check_values(self) -> None:
        """The values checkable without loading anything: ratio, then every number (one line each)."""
        from rvmkit.contract import parse_ratio

        parse_ratio(self.downsample_ratio)
        check_numbers(self.seq_chunk, self.output_video_mbps, self.crf, self.input_resize)

    def checked(self) -> MatteOptions:
        """Validate everything checkable without an input (one-line errors before any work starts):
        the values, the model against backend/device/precision, the background; return a copy naming
        the backend that will run and the input resize as whole numbers."""
        from rvmkit.video.composite import parse_background

        self.check_values()
        _, name = check_model_fit(self.model, self.backend, self.device, self.fp16, self.variant,
                                  self.precision)
        with parse_background(self.background, 16, 16):  # a colour, or a readable image/video
            pass
        resize = tuple(int(v) for v in self.input_resize) if self.input_resize is not None else None
        return replace(self, backend=name, input_resize=resize)

    def for_workers(self) -> MatteOptions:
        """This copy with absolute paths, so workers in other folders or machines see the same files."""
        model = None if self.model is None else str(Path(self.model).expanduser().absolute())
        background = self.background
        if background is not None and Path(background).expanduser().exists():
            background = str(Path(background).expanduser().absolute())
        return replace(self, model=model, background=background)

    def as_dict(self) -> dict[str, Any]:
        """The options by name (convert_video's keywords, a job spec's JSON)."""
        return asdict(self)


def output_paths(folder: Path, roles: list[str] | tuple[str, ...], fmt: str,
                 stem: str | None = None) -> dict[str, Path]:
    """Where each output is written in `folder`: `[<stem>.]<role>.<fmt>`, or a `[<stem>.]<role>` folder
    of PNG frames for fmt png (serve names outputs by role, batch by input stem and role)."""
    names = {role: role if stem is None else f"{stem}.{role}" for role in roles}
    return {role: folder / (name if fmt == "png" else f"{name}.{fmt}") for role, name in names.items()}


def check_numbers(seq_chunk: int, mbps: float | None, crf: int | None,
                  input_resize: tuple[int, int] | None, num_workers: int | None = None) -> None:
    """The numeric matte options against their ranges (`rvmkit.contract.LIMITS`), in one line each."""
    from rvmkit.contract import check_limit
    from rvmkit.video.reader import check_resize

    check_limit("seq_chunk", seq_chunk)
    if mbps is not None:
        check_limit("output_video_mbps", mbps)
    if crf is not None:
        check_limit("crf", crf)
    if crf is not None and mbps is not None:
        raise RvmkitError("give --crf or --output-video-mbps, not both: one sets the quality, the other "
                          "the bitrate")
    if input_resize is not None:
        check_resize(input_resize)
    if num_workers is not None:
        check_limit("compat_num_workers", num_workers)


def check_model_fit(model: str | os.PathLike | None, backend: str | None, device: str,
                    fp16: bool, variant: str | None = None, precision: str = "fp32") -> tuple[ModelSpec, str]:
    """(model spec, backend name) once the model, backend, device, fp16, variant and precision are known
    to fit together, so a mismatch is a one-line error before anything is loaded."""
    from rvmkit.runtime import check_backend, default_backend, registry, resolve_model
    from rvmkit.runtime.precision import check_precision

    spec = resolve_model(model, backend)
    name = backend or default_backend(spec)
    if spec.path is None and spec.module is None:
        spec = resolve_model(None, name)
    pretrained_other = spec.path is None and spec.module is None and variant not in (None, "mobilenetv3")
    if pretrained_other or (variant is not None and spec.path is not None and spec.kind != "checkpoint"):
        what = "the pretrained model is mobilenetv3" if spec.path is None else f"{spec.label} is not a .pth"
        raise RvmkitError(f"--variant {variant}: {what}; the variant applies to a .pth checkpoint "
                          "(--model rvm_resnet50.pth --variant resnet50)")
    check_backend(name, spec, device)
    if fp16 and not registry.takes_fp16(name):
        raise RvmkitError("fp16 applies to --backend torch; ONNX backends run an fp16 ONNX model "
                          "(export one with rvmkit export)")
    check_precision(precision, name, device)
    return spec, name
