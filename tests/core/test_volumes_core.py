"""Volumes in the inference core: the card's intensity window, DICOM rescale, NIfTI affines, and 3-D
classification / regression models (real ONNX graphs built here) predicting one result per volume."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import fovea
from fovea.core.card import ModelCard
from fovea.core.io import Image, Volume, read_dicom, read_dicom_series, read_nifti, write_nifti
from fovea.core.preprocess import Preprocessor
from fovea.errors import CardError, InputError
from tests.core.graphs import bright_pixels_segmenter, constant_outputs
from tests.core.volume_graphs import bright_volume_classifier, mean_regressor, volume_card

CT = get_testdata_file("CT_small.dcm", download=False)
SOFT_TISSUE = {"level": 40, "width": 400}  # -160..240 HU
SHAPE = (6, 20, 24)  # (depth, height, width)
PADDING = -3024.0  # what many CT scanners store outside their field of view


def phantom() -> np.ndarray:
    """A (D, H, W) CT phantom in HU: air around a water cylinder with a soft-tissue and a bone insert."""
    _, h, w = SHAPE
    y, x = np.mgrid[:h, :w]
    hu = np.full(SHAPE, -1000.0, np.float32)
    hu[:, (y - h / 2) ** 2 + (x - w / 2) ** 2 < 64] = 0.0
    hu[:, 8:11, 9:12] = 60.0
    hu[:, 10:12, 13:15] = 700.0
    return hu


def padded(hu: np.ndarray) -> np.ndarray:
    """The same phantom from a scanner that pads its corners outside the field of view: another intensity range."""
    out = hu.copy()
    out[:, :3, :3] = PADDING
    return out


def nifti_bytes(hu: np.ndarray, slope: float, intercept: float, affine=None) -> bytes:
    """`hu` stored as int16 with scl_slope / scl_inter, as a scanner's converter would write it."""
    stored = np.rint((hu - intercept) / slope).astype(np.int16)
    image = nib.Nifti1Image(stored.transpose(2, 1, 0), np.eye(4) if affine is None else affine)
    image.header.set_slope_inter(slope, intercept)
    return image.to_bytes()


def dicom_slice(hu_plane: np.ndarray, slope: float, intercept: float, k: int = 0) -> bytes:
    """One CT slice (CT_small's header) storing `hu_plane` with the given RescaleSlope / RescaleIntercept."""
    ds = pydicom.dcmread(CT)
    ds.Rows, ds.Columns = hu_plane.shape
    ds.PixelData = np.rint((hu_plane - intercept) / slope).astype(np.int16).tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.ImagePositionPatient = [0, 0, 2.0 * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def model_input(card: ModelCard, volume: Volume) -> np.ndarray:
    return Preprocessor(card.input).volume(volume)


# -- the card's window ----------------------------------------------------------------------------


def test_window_card_forms_and_errors():
    card = volume_card("segmentation", SHAPE, classes=["bg", "fg"], decoder={"kind": "argmax"}, window=SOFT_TISSUE)
    assert card.input.window.bounds == (-160.0, 240.0)
    assert ModelCard.from_json(card.to_json()).input.window == card.input.window  # survives the ONNX metadata
    ranged = volume_card(
        "regression", SHAPE, regressions=["v"], decoder={"kind": "identity"}, window={"range": [0, 80]}
    )
    assert ranged.input.window.bounds == (0.0, 80.0)
    base = {"task": "regression", "regressions": ["v"], "decoder": {"kind": "identity"}}
    for window, problem in [
        ({"level": 40}, "both `level` and `width`"),
        ({"level": 40, "width": 400, "range": [0, 1]}, "either"),
        ({}, "either"),
        ({"range": [5, 5]}, "low < high"),
        ({"level": 0, "width": -1}, "greater than 0"),
    ]:
        with pytest.raises(CardError, match=problem):
            ModelCard.from_data({**base, "input": {"window": window}})
    assert ModelCard.from_data(base).input.window is None  # an old card: no window ...
    assert "window" not in ModelCard.from_data(base).to_json()  # ... written as before, for older readers


def test_3d_detection_cards_are_refused_with_a_reason():
    spec = {"layout": "NCDHW", "color": "GRAY", "size": SHAPE, "mean": [0], "std": [1]}
    with pytest.raises(CardError, match="3-D detection is not supported"):
        ModelCard.from_data({"task": "detection", "classes": ["nodule"], "input": spec, "decoder": {"kind": "yolov8"}})


def test_window_gives_one_model_input_for_two_scans_of_one_phantom():
    """Scan B pads its corners at -3024 HU and stores other slope/intercept: min-max differs, the window does not."""
    a = read_nifti(nifti_bytes(phantom(), 1.0, -1024.0), name="a.nii")
    b = read_nifti(nifti_bytes(padded(phantom()), 2.0, -4000.0), name="b.nii")
    np.testing.assert_allclose(b.voxels[:, 5:, 5:], phantom()[:, 5:, 5:])  # scl_slope / scl_inter applied
    windowed = volume_card("segmentation", SHAPE, classes=["bg", "fg"], decoder={"kind": "argmax"}, window=SOFT_TISSUE)
    np.testing.assert_array_equal(model_input(windowed, a), model_input(windowed, b))
    x = model_input(windowed, a)[0, 0]
    water, tissue, bone = x[0, 10, 12], x[0, 9, 10], x[0, 11, 14]
    assert water == pytest.approx(round(160 / 400 * 255) / 255)  # 0 HU is 40% up the -160..240 window
    assert tissue == pytest.approx(round(220 / 400 * 255) / 255) and bone == 1.0 and x[0, 0, 0] == 0.0

    old = volume_card("segmentation", SHAPE, classes=["bg", "fg"], decoder={"kind": "argmax"})
    assert not np.array_equal(model_input(old, a), model_input(old, b))  # per-scan min-max: what a window fixes
    np.testing.assert_array_equal(model_input(old, a)[0, 0], a.to_uint8() / np.float32(255))  # as before


def test_dicom_series_rescale_and_window_agree_across_scanners():
    hu = phantom()
    a = read_dicom_series([dicom_slice(hu[k], 1.0, -1024.0, k) for k in range(SHAPE[0])])
    b = read_dicom_series([dicom_slice(padded(hu)[k], 0.5, -3024.0, k) for k in range(SHAPE[0])])
    np.testing.assert_allclose(a.voxels, hu)  # RescaleSlope / RescaleIntercept applied: Hounsfield units
    np.testing.assert_allclose(b.voxels, padded(hu))
    card = volume_card("segmentation", SHAPE, classes=["bg", "fg"], decoder={"kind": "argmax"}, window=SOFT_TISSUE)
    np.testing.assert_array_equal(model_input(card, a), model_input(card, b))


def test_single_dicom_frames_take_the_window_of_a_2d_model(tmp_path):
    """A 2-D CT model sees one grey level per HU on every file; a model without a window keeps per-file min-max."""
    hu = phantom()[0]
    a, b = dicom_slice(hu, 1.0, -1024.0), dicom_slice(padded(hu[None])[0], 0.5, -3024.0)
    cards = {}
    for name, window in (("windowed", SOFT_TISSUE), ("plain", None)):
        cards[name] = ModelCard(
            name=name,
            task="classification",
            classes=["a", "b"],
            input={"color": "GRAY", "size": (20, 24), "mean": [0], "std": [1], "window": window},
            decoder={"kind": "softmax"},
        )
    logits = {"logits": np.array([[0.0, 1.0]], np.float32)}
    windowed = fovea.load(constant_outputs(tmp_path / "w.onnx", cards["windowed"], logits))
    plain = fovea.load(constant_outputs(tmp_path / "p.onnx", cards["plain"], logits))
    image_a, image_b = windowed.read(a), windowed.read(b)
    np.testing.assert_array_equal(image_a.pixels, image_b.pixels)
    assert image_a.pixels[10, 12, 0] == round(160 / 400 * 255)  # water
    assert not np.array_equal(plain.read(a).pixels, plain.read(b).pixels)
    assert isinstance(read_dicom(a), Image)  # the reader without a window: unchanged
    np.testing.assert_array_equal(read_dicom(a).pixels, plain.read(a).pixels)


def test_enhanced_multi_frame_rescale_per_frame():
    """Enhanced CT keeps slope/intercept per frame in its functional groups; each frame is rescaled by its own."""
    ds = pydicom.dcmread(CT)
    frames = np.stack([np.full((ds.Rows, ds.Columns), 100, np.int16), np.full((ds.Rows, ds.Columns), 100, np.int16)])
    ds.NumberOfFrames = 2
    ds.PixelData = frames.tobytes()
    del ds.RescaleSlope, ds.RescaleIntercept
    groups = []
    for slope, intercept in ((1.0, -1024.0), (2.0, 0.0)):
        transformation = Dataset()
        transformation.RescaleSlope, transformation.RescaleIntercept = slope, intercept
        group = Dataset()
        group.PixelValueTransformationSequence = Sequence([transformation])
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    volume = read_dicom(buffer.getvalue())
    assert isinstance(volume, Volume) and volume.size == (2, ds.Rows, ds.Columns)
    assert set(np.unique(volume.voxels[0])) == {-924.0} and set(np.unique(volume.voxels[1])) == {200.0}
    shared = Dataset()
    shared.PixelValueTransformationSequence = groups[1].PixelValueTransformationSequence
    del ds.PerFrameFunctionalGroupsSequence
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    assert set(np.unique(read_dicom(buffer.getvalue()).voxels)) == {200.0}


def test_a_modality_lut_replaces_slope_and_intercept():
    ds = pydicom.dcmread(CT)
    stored = (np.arange(ds.Rows * ds.Columns) % 256).astype(np.int16).reshape(ds.Rows, ds.Columns)
    ds.PixelData = stored.tobytes()
    lut = Dataset()
    lut.add_new(0x00283002, "US", [256, 0, 16])  # LUTDescriptor: 256 entries from stored value 0, 16 bits
    lut.ModalityLUTType = "HU"
    lut.add_new(0x00283006, "US", [3 * v + 10 for v in range(256)])  # LUTData
    ds.ModalityLUTSequence = Sequence([lut])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)  # CT_small's slope/intercept stay, but the LUT takes precedence
    np.testing.assert_array_equal(read_dicom_series([buffer.getvalue()]).voxels[0], 3 * stored + 10)


# -- NIfTI affines ---------------------------------------------------------------------------------


def test_a_mask_written_for_a_volume_keeps_its_affine():
    affine = np.array([[-0.8, 0, 0, 90.0], [0, 0.8, 0.1, -120.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
    volume = read_nifti(nifti_bytes(phantom(), 1.0, 0.0, affine), name="scan.nii")
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
    mask = (volume.voxels > 0).astype(np.uint8)
    written = nib.Nifti1Image.from_bytes(__import__("gzip").decompress(write_nifti(mask, affine=volume.affine)))
    np.testing.assert_allclose(written.affine, affine, atol=1e-6)
    assert int(written.header["sform_code"]) == 1 and int(written.header["qform_code"]) == 1
    np.testing.assert_array_equal(np.asarray(written.dataobj).transpose(2, 1, 0), mask)
    assert read_nifti(write_nifti(volume)).affine == pytest.approx(affine, abs=1e-6)  # a Volume writes its own


def test_a_dicom_series_gets_the_affine_of_its_positions():
    """A sagittal series: voxel (column, row, slice) lands on each slice's ImagePositionPatient, in RAS."""
    rows, columns = (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)  # IOP: along a row (column index), then down a column
    files = []
    for k in range(3):
        ds = pydicom.dcmread(CT)
        ds.ImageOrientationPatient = [*columns, *rows]
        ds.ImagePositionPatient = [10.0 + 2.0 * k, -5.0, 30.0]
        ds.PixelSpacing = [0.7, 0.6]  # row spacing (y), column spacing (x)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    volume = read_dicom_series(files)
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for z in range(3):  # the normal is -x: slices ascend along it from the last file
        ipp = np.array([10.0 + 2.0 * (2 - z), -5.0, 30.0])
        np.testing.assert_allclose(volume.affine @ [0, 0, z, 1], [*(ipp * lps_to_ras), 1])
    corner = np.array([10.0, -5.0, 30.0]) + 3 * 0.6 * np.array(columns) + 2 * 0.7 * np.array(rows)
    np.testing.assert_allclose(volume.affine @ [3, 2, 2, 1], [*(corner * lps_to_ras), 1])
    written = read_nifti(write_nifti(volume))
    np.testing.assert_allclose(written.affine, volume.affine, atol=1e-5)


# -- 3-D classification and regression -------------------------------------------------------------


def test_3d_classifier_gives_one_class_per_volume(tmp_path):
    card = volume_card(
        "classification", (4, 8, 8), classes=["dark", "bright"], decoder={"kind": "softmax"}, window=SOFT_TISSUE
    )
    model = fovea.load(bright_volume_classifier(tmp_path / "cls3d.onnx", card))
    bright = Volume(np.full(SHAPE, 200.0, np.float32), name="bright")  # 90% up the window
    dark = Volume(np.full(SHAPE, -100.0, np.float32), name="dark")  # 15% up
    for volume, expected in ((bright, "bright"), (dark, "dark")):
        prediction = model.predict_volume(volume)
        assert prediction.names[0] == expected and prediction.size == SHAPE and prediction.source == volume.name
        assert prediction.probabilities.shape == (2,) and prediction.scores[0] > 0.99
    nifti = model.predict(nifti_bytes(np.full(SHAPE, 200.0, np.float32), 1.0, 0.0))  # predict routes a volume
    assert nifti.names[0] == "bright"
    with pytest.raises(InputError, match="3-D model: it takes volumes"):
        model.predict(np.zeros((8, 8, 3), np.uint8))


def test_3d_regressor_gives_one_set_of_values_per_volume(tmp_path):
    card = volume_card(
        "regression", SHAPE, regressions=["mean", "max"], decoder={"kind": "identity"}, window={"range": [-1000, 1000]}
    )
    model = fovea.load(mean_regressor(tmp_path / "reg3d.onnx", card))
    prediction = model.predict_volume(read_nifti(nifti_bytes(phantom(), 1.0, -1024.0)))
    expected = np.rint((np.clip(phantom(), -1000, 1000) + 1000) * 255 / 2000) / 255
    assert prediction.values["mean"] == pytest.approx(expected.mean(), abs=1e-5)
    assert prediction.values["max"] == pytest.approx(expected.max(), abs=1e-6)
    assert prediction.size == SHAPE


def test_a_2d_segmenter_on_slices_takes_the_window(tmp_path):
    card = ModelCard(
        name="slices",
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (20, 24), "window": {"range": [0, 100]}},  # red channel over 0.5: above 50 HU
        decoder={"kind": "argmax"},
    )
    model = fovea.load(bright_pixels_segmenter(tmp_path / "seg.onnx", card))
    hu = padded(phantom())
    prediction = model.predict_volume(Volume(hu, name="scan"))
    [mask] = prediction.masks[prediction.labels == 1]
    np.testing.assert_array_equal(mask, hu > 50)  # the soft-tissue and bone inserts, whatever the padding
