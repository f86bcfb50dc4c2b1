"""Archives inside evidence (zip, tar, gzip, 7z): listed and digested member by member.

Readers (one module per format in ``formats/``, on the :data:`ARCHIVES` registry) list
members and push their bytes; :class:`Expander` turns them into result rows through the
one digester; :func:`expand_archive` is the task that does it for an archive found on
a filesystem or carved, :func:`expand_archives` for several in turn (one carve chunk's). Nothing is ever extracted to disk.
"""

from triage.workers.archives.base import ARCHIVES, ArchiveFormat, Member, archive_mimes
from triage.workers.archives.expand import SOURCE, Expander
from triage.workers.archives.limits import ArchiveLimits
from triage.workers.archives.source import (ARCHIVE_STATUS, BATCH_NAME, ArchiveBatch, ArchiveRef,
                                              RandomAccess, expand_archive, expand_archives, open_random)

__all__ = ["ARCHIVES", "ARCHIVE_STATUS", "BATCH_NAME", "SOURCE", "ArchiveBatch", "ArchiveFormat", "ArchiveLimits",
           "ArchiveRef", "Expander", "Member", "RandomAccess", "archive_mimes", "expand_archive", "expand_archives",
           "open_random"]
