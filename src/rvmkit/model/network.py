"""RVM's MattingNetwork: encoder, LR-ASPP, recurrent decoder, projection heads and refiner."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rvmkit.model import REFINERS, VARIANTS
from rvmkit.model.common import resize_by_factor
from rvmkit.model.decoder import LRASPP, Projection, RecurrentDecoder
from rvmkit.model.mobilenetv3 import MobileNetV3LargeEncoder
from rvmkit.model.refiners import DeepGuidedFilterRefiner, FastGuidedFilterRefiner
from rvmkit.model.resnet import ResNet50Encoder

# variant -> (encoder class, LR-ASPP output channels, decoder channels)
_ARCHITECTURE = {
    "mobilenetv3": (MobileNetV3LargeEncoder, 128, [80, 40, 32, 16]),
    "resnet50": (ResNet50Encoder, 256, [128, 64, 32, 16]),
}


class MattingNetwork(nn.Module):
    """Checkpoint-compatible RobustVideoMatting network.

    `forward` keeps the official semantics: src in 0..1 as [B,3,H,W] or [B,T,3,H,W]; states None
    or tensors (a [1,1,1,1] zero state broadcasts); returns [fgr, pha, r1, r2, r3, r4], or
    [seg, r1, r2, r3, r4] with `segmentation_pass=True`.
    """

    def __init__(self, variant: str = "mobilenetv3", refiner: str = "deep_guided_filter") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if refiner not in REFINERS:
            raise ValueError(f"refiner must be one of {REFINERS}, got {refiner!r}")
        encoder_cls, aspp_channels, decoder_channels = _ARCHITECTURE[variant]
        self.variant = variant
        self.backbone = encoder_cls()
        f1, f2, f3, f4 = encoder_cls.channels
        self.aspp = LRASPP(f4, aspp_channels)
        self.decoder = RecurrentDecoder([f1, f2, f3, aspp_channels], decoder_channels)
        self.project_mat = Projection(16, 4)
        self.project_seg = Projection(16, 1)
        refiner_cls = DeepGuidedFilterRefiner if refiner == "deep_guided_filter" else FastGuidedFilterRefiner
        self.refiner = refiner_cls()
        #: False when the weights carry no trained segmentation head (imported from the official ONNX)
        self.has_segmentation = True

    def forward(self, src: Tensor, r1: Tensor | None = None, r2: Tensor | None = None,
                r3: Tensor | None = None, r4: Tensor | None = None, downsample_ratio: float = 1.0,
                segmentation_pass: bool = False) -> list[Tensor]:
        if src.ndim == 4:
            return self.forward_frame(src, r1, r2, r3, r4, downsample_ratio, segmentation_pass)
        if src.ndim != 5:
            raise ValueError(f"src must be [B,3,H,W] or [B,T,3,H,W], got shape {tuple(src.shape)}")
        # Time-series input: frames are processed in order, carrying the recurrent state.
        outputs: list[list[Tensor]] = []
        states = [r1, r2, r3, r4]
        for t in range(src.size(1)):
            *frame_out, n1, n2, n3, n4 = self.forward_frame(src[:, t], *states, downsample_ratio,
                                                            segmentation_pass)
            states = [n1, n2, n3, n4]
            outputs.append(frame_out)
        stacked = [torch.stack(parts, dim=1) for parts in zip(*outputs, strict=True)]
        return [*stacked, *states]

    def forward_frame(self, src: Tensor, r1: Tensor | None, r2: Tensor | None, r3: Tensor | None,
                      r4: Tensor | None, downsample_ratio: float = 1.0, segmentation_pass: bool = False,
                      always_refine: bool = False, time_chunk: bool = False) -> list[Tensor]:
        """One [B,3,H,W] frame: the network's one forward (the export and the torch backend call it).

        `always_refine` runs the refiner even at ratio 1, as the official ONNX graphs do (they cannot
        branch on the ratio). `time_chunk` reads the batch axis as T consecutive frames of one stream:
        the encoder, heads and refiner run on all T at once, the recurrent decoder frame by frame."""
        if segmentation_pass and not self.has_segmentation:
            raise ValueError("segmentation_pass needs a checkpoint with a trained project_seg; weights "
                             "imported from the official ONNX have none (use the official .pth)")
        resized = downsample_ratio != 1 or always_refine
        src_sm = resize_by_factor(src, downsample_ratio) if resized else src
        f1, f2, f3, f4 = self.backbone(src_sm)
        f4 = self.aspp(f4)
        features = (src_sm, f1, f2, f3, f4)
        if time_chunk:
            hid, *rec = self._decode_in_time(features, [r1, r2, r3, r4])
        else:
            hid, *rec = self.decoder(*features, r1, r2, r3, r4)
        if segmentation_pass:
            return [self.project_seg(hid), *rec]
        fgr_residual, pha = self.project_mat(hid).split([3, 1], dim=1)
        if resized:
            fgr_residual, pha = self.refiner(src, src_sm, fgr_residual, pha, hid)
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        return [fgr, pha.clamp(0.0, 1.0), *rec]

    def _decode_in_time(self, features: tuple[Tensor, ...], states: list[Tensor | None]) -> list[Tensor]:
        """The recurrent decoder over T frames (the batch axis) in order, carrying the state."""
        hids = []
        for t in range(features[0].size(0)):
            frame = slice(t, t + 1)
            hid, *states = self.decoder(*(feature[frame] for feature in features), *states)
            hids.append(hid)
        return [torch.cat(hids), *states]
