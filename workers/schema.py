"""The results schemas, defined once. Every producer and reader imports these."""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")

FILES_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.int32(), nullable=False),   # volume index, as in volumes.parquet
        pa.field("path", pa.string(), nullable=False),       # as `fls -r -p`: root-relative, '/'-joined, NTFS stream as 'file:stream';
                                                             # an archive member: '<archive row path>/<member path as stored>'
        pa.field("name", pa.string(), nullable=False),       # last path element (with ':stream' for an NTFS stream)
        pa.field("inode", pa.uint64(), nullable=False),      # TSK metadata address (0 for a deleted name with no metadata)
        pa.field("attr_type", pa.int32()),                   # TSK attribute type read (NTFS: 128 $DATA, 144 $INDEX_ROOT); null = default
        pa.field("attr_id", pa.int32()),                     # TSK attribute id; `fls` prints inode-attr_type-attr_id on NTFS
        pa.field("type", pa.string(), nullable=False),       # `fls` type pair, name/meta: 'r/r', 'd/d', 'l/l', 'V/V', 'r/-' ...
        pa.field("size", pa.int64(), nullable=False),        # bytes in the attribute read (file size for the default stream)
        pa.field("deleted", pa.bool_(), nullable=False),     # the name is unallocated (fls marks it '*')
        pa.field("source", pa.string(), nullable=False),     # 'allocated', 'deleted', 'orphan', 'carved', 'archive member'
                                                             # (of an archive found), 'logical' (member of a tar/zip/folder source),
                                                             # 'vss:N' (in NTFS shadow copy N, 1 = oldest, and not the same in the
                                                             # live volume: deleted or changed since; offset null)
        pa.field("mtime", TS),                               # UTC; null where the filesystem stores none (or 0)
        pa.field("atime", TS),
        pa.field("ctime", TS),                               # metadata change time (ext/NTFS), null on FAT
        pa.field("crtime", TS),                              # creation time
        pa.field("md5", pa.string()),                        # lower-case hex of the bytes `icat` would output; null if unread
        pa.field("sha1", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("mime", pa.string()),                       # libmagic MIME type of the first bytes
        pa.field("magic", pa.string()),                      # libmagic description
        pa.field("ext_mismatch", pa.bool_()),                # the name's extension disagrees with the detected content type
        pa.field("phash", pa.string()),                      # 16 hex chars (64-bit pHash) for decodable images, else null
        pa.field("entropy", pa.float64()),                   # Shannon entropy, bits per byte (0-8), of all content bytes
                                                             # read; near 8 suggests encrypted/compressed; null if unread
        pa.field("status", pa.string(), nullable=False),     # 'ok', or why content/metadata could not be (fully) read
        pa.field("known", pa.string()),                      # strongest category of the known-item sets holding this exact
                                                             # content (md5/sha1/sha256): 'known-bad' > 'notable' > 'known-good'
        pa.field("hashset_hits", pa.list_(pa.string())),     # names of those sets, sorted; [] when hashed but unknown
        pa.field("phash_match", pa.string()),                # nearest reference image within the threshold, '<set>:<reference>'
        pa.field("phash_distance", pa.int32()),              # its Hamming distance in bits (0-64)
        pa.field("offset", pa.int64()),                      # image byte offset where the content starts (first data run;
                                                             # a carved object's start); null when resident or no data
        pa.field("length", pa.int64()),                      # a carved object's length in the image; null for files
        pa.field("container", pa.string()),                  # an archive member: the path of the archive's row (with
                                                             # `partition`, it names the archive; nested: a member row's
                                                             # path); null for everything else
        # ranking (triage.rules.ranking; null only before the merge ranks the table):
        pa.field("score", pa.int32()),                       # 0-100, higher = look first; the sum of the reasons' weights
        pa.field("tier", pa.string()),                       # 'notable', 'likely-notable', 'unknown' or 'known-good'
        pa.field("reasons", pa.list_(pa.struct([             # the rules that fired, in rule-file order, then the
            pa.field("rule", pa.string()),                   # tier-band adjustment: rule name,
            pa.field("weight", pa.int32()),                  # its weight (signed),
            pa.field("reason", pa.string()),                 # and its sentence
        ]))),
    ]
)

#: columns the ranking fills in after the merge; task functions leave them out
RANK_COLUMNS = ("score", "tier", "reasons")

VOLUMES_SCHEMA = pa.schema(
    [
        pa.field("index", pa.int32(), nullable=False),       # position in the volume system (mmls row), or 0 for a bare filesystem
        pa.field("slot", pa.string(), nullable=False),       # mmls slot ('000:001'), 'Meta', '-------', or 'whole image'
        pa.field("start", pa.int64(), nullable=False),       # byte offset in the image
        pa.field("length", pa.int64(), nullable=False),      # bytes
        pa.field("flags", pa.string(), nullable=False),      # 'alloc', 'unalloc', 'meta' (TSK partition flags)
        pa.field("description", pa.string(), nullable=False),  # e.g. 'NTFS / exFAT (0x07)', 'Linux filesystem'
        pa.field("volume_system", pa.string(), nullable=False),  # 'dos', 'gpt', ..., or 'none' for a bare filesystem
        pa.field("filesystem", pa.string()),                 # TSK filesystem type found ('NTFS', 'FAT32', 'Ext4' ...) or null
        pa.field("files", pa.int64(), nullable=False),       # rows this entry contributed to files.parquet (walked + carved)
        pa.field("status", pa.string(), nullable=False),     # 'ok', 'not walked (unallocated)', or why no filesystem was read
        # the hierarchy disk -> partition -> container -> volume (triage.workers.volumes.LAYERS):
        pa.field("parent", pa.int32()),                      # index of the row this volume lies in (an LVM logical
                                                             # volume's physical volume); null at the top
        pa.field("layer", pa.string()),                      # what the row is (always set by a run): 'disk', 'partition',
                                                             # 'lvm-pv', 'lvm-lv', 'apfs-container', 'apfs-volume' (walked
                                                             # through libfsapfs), 'vss' (a shadow copy of its parent NTFS
                                                             # volume, slot 'vss:N'), 'luks', 'bitlocker', 'filevault'; inside
                                                             # the last three files.parquet `offset` is null: the image
                                                             # holds only ciphertext, the files' partition names the volume
        pa.field("extents", pa.list_(pa.struct([             # image byte ranges holding the volume, in volume order, when
            pa.field("start", pa.int64()),                   # not [start, start + length): an LVM logical volume's
            pa.field("length", pa.int64()),                  # segments; null when contiguous; [] for a logical volume
        ]))),                                                # whose segments cannot be mapped, or a shadow copy (its
                                                             # offsets are null)
    ]
)
