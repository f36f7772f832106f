"""`rvmkit batch`: matte many videos on Ray (a local cluster, or an existing one with --address)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rvmkit.batch import FORMATS
from rvmkit.cli.options import (
    add_model_options,
    add_render_options,
    add_segment_options,
    limited,
    matte_options,
)
from rvmkit.video.writer import OUTPUT_TYPES

EPILOG = """\
examples:
  rvmkit batch clips/*.mp4 --output-dir out
  rvmkit batch a.mp4 b.mp4 --output-dir out --outputs composition,alpha --background white
  rvmkit batch talk.mp4 --output-dir out --segments 8            # one long video over 8 workers
  rvmkit batch /shared/in/*.mov --output-dir /shared/out --address ray://head:10001

OUTPUT-DIR receives <stem>.<output>.<format> (a <stem>.<output> folder of PNGs for --format png) and
manifest.json. Re-running skips inputs already done with the same options from an unchanged input
(manifest.json keeps a fingerprint of both per input). Inputs that failed, are partial, or whose options
(model, background, ratio, format, bitrate, segments, ...) or input file (size, mtime) changed since are
redone, replacing their outputs. Progress: a line per finished input, and per segment with --segments.
A failed input is reported on stderr ("failed INPUT: error"), even with --quiet; the others go on, and
the exit status is 1 if any input failed. Argument errors stop before anything is created (status 2),
and so does a Ray cluster that cannot be reached: no wait on Ray is unbounded (README: Scale out on Ray).
With --device cuda each worker holds one GPU. On a multi-machine cluster, give paths on a filesystem
every worker sees, and install rvmkit on the workers.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="matte many videos, or one long one in segments, on a Ray cluster",
        description="Matte every INPUT into --output-dir on Ray workers (one model per worker).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, image folders or images")
    parser.add_argument("--output-dir", required=True, metavar="DIR",
                        help="where outputs and manifest.json go")
    parser.add_argument("--outputs", default="composition", metavar="LIST",
                        help="comma-separated: composition, alpha, foreground (default: composition)")
    parser.add_argument("--format", default="mp4", choices=FORMATS,
                        help="output container (png: a folder of PNGs per output); default mp4")
    parser.add_argument("--output-type", choices=OUTPUT_TYPES,
                        help="png_sequence = --format png")
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--address", metavar="ADDR",
                         help="existing Ray cluster: host:port, ray://host:10001, or auto (the one "
                              "`ray start` ran here); default: RAY_ADDRESS, else start a new local one")
    cluster.add_argument("--num-workers", type=limited("num_workers"), metavar="N",
                         help="model-holding workers (default: cluster CPUs / --cpus-per-worker, or "
                              "its GPUs)")
    cluster.add_argument("--cpus-per-worker", type=limited("cpus_per_worker"), default=1, metavar="N",
                         help="threads per worker (1)")
    add_segment_options(cluster)
    add_model_options(parser.add_argument_group("model"))
    add_render_options(parser.add_argument_group("outputs"))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files at the output names (the batch's own are always redone)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines and no Ray warnings; failed inputs are still reported")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rvmkit.batch.manifest import MANIFEST_NAME
    from rvmkit.batch.ray_runner import RunOptions, run_batch, stderr_log

    run = RunOptions(address=args.address, num_workers=args.num_workers, cpus_per_worker=args.cpus_per_worker,
                     segments=args.segments, warmup=args.warmup)
    items = run_batch(args.inputs, args.output_dir, outputs=args.outputs.split(","), fmt=args.format, run=run,
                      log=None if args.quiet else stderr_log, on_failure=stderr_log, overwrite=args.overwrite,
                      **matte_options(args))
    counts = {status: sum(item.status == status for item in items)
              for status in ("done", "skipped", "failed")}
    if not args.quiet:
        print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
              f"manifest: {Path(args.output_dir).absolute() / MANIFEST_NAME}", file=sys.stderr)
    return 1 if counts["failed"] else 0
