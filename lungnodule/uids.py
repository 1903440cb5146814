"""DICOM UIDs for everything the toolkit creates (synthetic series, tampered scans, DICOM exports)."""

from __future__ import annotations

from pydicom.uid import generate_uid

# pydicom's registered root for software built on it; our UIDs are unique under it.
UID_ROOT = "1.2.826.0.1.3680043.8.498."


def new_uid(*entropy: object) -> str:
    """Return a valid DICOM UID (<= 64 characters) under :data:`UID_ROOT`.

    With `entropy` (any printable values, e.g. a seed and an index) the UID is deterministic;
    without it the UID is random.
    """
    sources = [str(e) for e in entropy] if entropy else None
    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=sources))
