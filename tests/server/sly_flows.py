"""Seed 001's flows through the unmodified `supervisely` SDK. Runs in the SDK's own virtualenv:

python sly_flows.py SESSION_URL FLOW [ARGS...]   -> prints one JSON document
"""

import json
import sys

import supervisely as sly
from tqdm import tqdm


def session(url, **kwargs):
    return sly.nn.inference.Session(sly.Api("http://unused", None), session_url=url, **kwargs)


def names(ann):
    return [t.name for t in ann.img_tags] or [label.obj_class.name for label in ann.labels]


def classification(url, chelsea, coffee, settings_yaml, image_url):
    s = session(url, inference_settings={"top_k": 2})
    out = {
        "info": s.get_session_info(),
        "defaults": s.get_default_inference_settings(),
        "tag_names": [t.name for t in s.get_model_meta().tag_metas][:3],
        "settings": dict(s.inference_settings),
    }
    out["path"] = names(s.inference_image_path(chelsea))
    out["paths"] = [names(a) for a in s.inference_image_paths([chelsea, coffee, chelsea])]
    out["id"] = names(s.inference_image_id(0))
    out["ids"] = [names(a) for a in s.inference_image_ids([1, 0])]
    out["url"] = names(s.inference_image_url(image_url))
    s.set_inference_settings(settings_yaml)
    out["yaml_settings"] = dict(s.inference_settings)
    try:
        s.update_inference_settings(bogus=1)
    except ValueError as exc:
        out["bogus"] = str(exc)
    try:
        s.inference_image_id(99)
    except Exception as exc:  # the SDK raises requests' HTTPError
        out["missing_id"] = str(exc)
    return out


def video(url):
    s = session(url)
    frames = s.inference_video_id(0, start_frame_index=2, frames_count=3)
    iterator = s.inference_video_id_async(0, start_frame_index=5, frames_count=6, frames_direction="backward")
    total = len(iterator)
    async_frames = [a.img_size for a in tqdm(iterator)]
    stopped = []
    for i, _ann in enumerate(tqdm(s.inference_video_id_async(0))):
        stopped.append(i)
        if i == 2:
            s.stop_async_inference()
    return {"sync": len(frames), "async_total": total, "async": len(async_frames), "stopped": len(stopped)}


def detection(url, image):
    s = session(url)
    s.update_inference_settings(conf_thres=0.7)
    confident = s.inference_image_path(image)
    s.update_inference_settings(conf_thres=0.1, classes=["cat"])
    cats = s.inference_image_path(image)
    label = confident.labels[0]
    box = label.geometry
    return {
        "confident": [label.obj_class.name for label in confident.labels],
        "cats": [label.obj_class.name for label in cats.labels],
        "box": [box.left, box.top, box.right, box.bottom],
        "confidence": [t.value for t in label.tags if t.name == "confidence"],
        "classes": [c.name for c in s.get_model_meta().obj_classes],
    }


def custom_detection(url, image):
    s = session(url)
    box = s.inference_image_path(image).labels[0].geometry
    s.update_inference_settings(threshold=250)
    return {
        "classes": [c.name for c in s.get_model_meta().obj_classes],
        "defaults": s.get_default_inference_settings(),
        "box": [box.left, box.top, box.right, box.bottom],
        "strict": [label.obj_class.name for label in s.inference_image_path(image).labels],
    }


FLOWS = {"classification": classification, "video": video, "detection": detection, "custom_detection": custom_detection}

if __name__ == "__main__":
    url, flow, *args = sys.argv[1:]
    print(json.dumps(FLOWS[flow](url, *args)))
