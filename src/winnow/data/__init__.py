"""Stage 1, `winnow scan`: walk DATA, decode every file once, write RUN/manifest.parquet
and the pixel cache. The data folder is only ever read.

Modules: walk (find files), decode (bounded-memory decoding), hashing, scan (the stage),
cache (pixel shards), manifest (the table every stage shares), io (atomic writes), lock
(one writer per RUN), labels (a label is a folder name), config (ScanConfig).
"""

from winnow.lazy import lazy_exports

EXPORTS = {
    "ScanConfig": "config",
    "ScanSummary": "scan",
    "ScanError": "scan",
    "scanned_folder": "scan",
    "read_manifest": "manifest",
    "read_table": "manifest",
    "write_manifest": "manifest",
    "manifest_path": "manifest",
    "SCAN_SCHEMA": "manifest",
    "PixelCache": "cache",
    "run_lock": "lock",
    "check_label": "labels",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
