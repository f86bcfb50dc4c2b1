"""What a run is configured with, read from ``triage.yaml`` once when the run starts.

Everything a checkpoint depends on is here (plus the tool version, the image and the
known-item snapshot), so :meth:`RunSettings.stamp` is what decides whether the work
folder of an earlier run can be resumed or must be discarded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from triage import config
from triage.rules.errors import InputError
from triage.workers.archives.limits import ArchiveLimits
from triage.workers.refs import ContentOptions

CARVE_MODES = ("none", "unalloc", "all")


def content_options() -> ContentOptions:
    """The limits content and carving tasks run under (one place: ``content.*`` in triage.yaml)."""
    return ContentOptions(
        chunk_bytes=config.get_bytes("content.chunk-bytes"),
        magic_bytes=config.get_bytes("content.magic-bytes"),
        max_image_bytes=config.get_bytes("content.max-image-bytes"),
        max_image_pixels=int(config.get("content.max-image-pixels")),
    )


def archive_limits() -> ArchiveLimits:
    """How far archives found in evidence are expanded (``archives.*`` in triage.yaml)."""
    return ArchiveLimits(
        depth=int(config.get("archives.depth")),
        max_members=int(config.get("archives.max-members")),
        max_bytes=config.get_bytes("archives.max-bytes"),
        max_ratio=int(config.get("archives.max-ratio")),
        ratio_after=config.get_bytes("archives.ratio-after"),
        nested_bytes=config.get_bytes("archives.nested-bytes"),
    )


@dataclass(frozen=True)
class RunSettings:
    options: ContentOptions
    batch_bytes: int
    batch_files: int
    split_bytes: int     # files larger than this are read by a chain of segment tasks
    carve: str           # one of CARVE_MODES
    carve_chunk: int
    carve_overlap: int
    extract: bool        # write carved objects to OUT/carved/
    phash_distance: int  # near-duplicate threshold, bits of 64
    archives: ArchiveLimits | None = None  # how archives found are expanded (archives.* in triage.yaml)
    vss: bool = True     # walk NTFS Volume Shadow Copies (vss.enabled; --no-vss)

    @classmethod
    def from_config(cls, carve: str | None = None, extract: bool = False) -> RunSettings:
        configured = config.get("carve.mode")  # DASK_TRIAGE__CARVE__MODE=none arrives as None
        mode = carve or ("none" if configured is None else str(configured))
        if mode not in CARVE_MODES:
            raise InputError(f"carve mode {mode!r} unknown; choose one of {', '.join(CARVE_MODES)}")
        opts = content_options()
        return cls(
            options=opts,
            batch_bytes=config.get_bytes("content.batch-bytes"),
            batch_files=int(config.get("content.batch-files")),
            # never below the image-decode bound: a picture is read by one task, so it can be decoded
            split_bytes=max(config.get_bytes("content.split-bytes"), opts.max_image_bytes),
            carve=mode,
            carve_chunk=config.get_bytes("carve.chunk-bytes"),
            carve_overlap=config.get_bytes("carve.overlap"),
            extract=extract,
            phash_distance=int(config.get("known.phash-max-distance")),
            archives=archive_limits(),
            vss=bool(config.get("vss.enabled")),
        )

    def stamp(self) -> dict:
        """Plain data for the work folder's plan stamp."""
        d = asdict(self)
        d["options"] = asdict(self.options)
        return d
