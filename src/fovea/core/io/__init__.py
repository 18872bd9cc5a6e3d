"""Readers: bytes, files, arrays and URLs to `Image`s and `Volume`s, within `Limits`.

Every reader raises `fovea.errors.InputError` with a one-line message naming the input for anything it
cannot use, and `LimitExceeded` (an `InputError`) for anything over a limit, checked before decoding.
"""

from fovea.core.io.arrays import image_from_array
from fovea.core.io.dicom import read_dicom, read_dicom_series
from fovea.core.io.images import decode_frames, decode_image
from fovea.core.io.limits import DEFAULT_LIMITS, Limits
from fovea.core.io.media import Image, Volume
from fovea.core.io.nifti import read_nifti, write_nifti
from fovea.core.io.read import read_input
from fovea.core.io.sniff import sniff
from fovea.core.io.urls import check_url, fetch_url
from fovea.core.io.video import VideoInfo, iter_frames, probe_video, video_frame_indices

__all__ = [
    "DEFAULT_LIMITS",
    "Image",
    "Limits",
    "VideoInfo",
    "Volume",
    "check_url",
    "decode_frames",
    "decode_image",
    "fetch_url",
    "image_from_array",
    "iter_frames",
    "probe_video",
    "read_dicom",
    "read_dicom_series",
    "read_input",
    "read_nifti",
    "sniff",
    "video_frame_indices",
    "write_nifti",
]
