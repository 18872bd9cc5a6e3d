"""fovea.Session (seed 001's method names over HTTP) against a real serve-model process."""

import httpx
import pytest

import fovea
from tests.media import write_video


def tag_names(pred):
    """Class names of a result in the seed's shape: `pred["annotation"]` is the Supervisely annotation JSON."""
    annotation = pred["annotation"]
    return [t["name"] for t in annotation["tags"]] or [o["classTitle"] for o in annotation["objects"]]


def test_image_flows_and_settings(imagenet_url, zoo_dir, tmp_path):
    samples = zoo_dir / "samples"
    settings = tmp_path / "settings.yml"
    settings.write_text("top_k: 2\n")
    with fovea.Session(imagenet_url, inference_settings=settings) as session:
        assert session.inference_settings == {"top_k": 2}
        assert session.get_session_info()["task type"] == "classification"
        assert session.get_model_meta() == session.get_model_project_meta()
        assert session.get_default_inference_settings() == {"top_k": 5}
        pred = session.inference_image_path(samples / "chelsea.jpg")
        assert pred["data"] == {} and pred["name"] == "chelsea.jpg"  # seed 001: {"annotation": ..., "data": ...}
        cat = tag_names(pred)
        assert "cat" in cat[0]
        assert [
            tag_names(a) for a in session.inference_image_paths([samples / "coffee.jpg", samples / "chelsea.jpg"])
        ] == [
            ["espresso"],
            cat,
        ]
        by_id = session.inference_image_id(0)
        assert tag_names(by_id) == cat and by_id["image_id"] == 0
        assert [tag_names(a) for a in session.inference_image_ids([1, 0])] == [["espresso"], cat]
        assert session.update_inference_settings(top_k=1) == {"top_k": 1}  # returns what it set, as the seed shows
        assert session.set_inference_settings({"top_k": 4}) == {"top_k": 4}
        assert session.inference_settings == {"top_k": 4}
        with pytest.raises(ValueError, match=r"Key 'bogus' is not acceptable\. Acceptable keys are: top_k, classes"):
            session.update_inference_settings(bogus=1)
        with pytest.raises(httpx.HTTPStatusError, match="404"):
            session.inference_image_id(42)


def test_video_by_id_async_with_len_and_stop(imagenet_url):
    with fovea.Session(imagenet_url) as session:
        frames = session.inference_video_id(0, start_frame_index=0, frames_count=4)
        assert [f["frame_index"] for f in frames] == [0, 1, 2, 3] and all("objects" in f["annotation"] for f in frames)
        iterator = session.inference_video_id_async(0, start_frame_index=9, frames_count=5, frames_direction="backward")
        assert len(iterator) == 5
        assert len(list(iterator)) == 5
        seen = []
        for frame_pred in session.inference_video_id_async(0):
            assert frame_pred["annotation"]["objects"] == []  # the seed's loop body; a classifier tags, no objects
            seen.append(frame_pred)
            if len(seen) == 3:
                session.stop_async_inference()
        assert len(seen) == 3


def test_local_video_path(imagenet_url, tmp_path):
    video = write_video(tmp_path / "local.mkv", 12)
    with fovea.Session(imagenet_url) as session:
        frames = session.inference_video_path(video, start_frame_index=2, frames_count=5)
        assert len(frames) == 5 and all(f["annotation"]["size"] == {"height": 48, "width": 64} for f in frames)


def test_wrong_url_is_a_clear_error():
    with pytest.raises(ValueError, match="Can't connect to the model"):
        fovea.Session("http://127.0.0.1:9/nowhere", timeout=2)
