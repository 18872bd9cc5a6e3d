"""`fovea.Session`: drive a deployed model with the Supervisely `Session` method names (seed 001).

Speaks HTTP to a session URL (`http://host:port/net/<token>` or a `fovea serve-model` root). Results have the
seed's shape (the SDK's `SessionJSON`): one dict per image or video frame, `pred["annotation"]` holding the
Supervisely annotation JSON and `pred["data"]` extra data, plus the server's `name`, `image_id`, `frame_index`, ...
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

POLL_S = 0.2


class Session:
    def __init__(
        self,
        url: str,
        inference_settings: dict[str, Any] | str | Path | None = None,
        *,
        timeout: float = 300.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = client or httpx.Client(timeout=timeout)
        self.inference_settings: dict[str, Any] = {}
        self._defaults: dict[str, Any] | None = None
        self._active: AsyncInference | None = None
        if inference_settings is not None:
            self.set_inference_settings(inference_settings)
        try:
            self.get_session_info()
        except httpx.HTTPError as exc:
            raise ValueError(
                f"Can't connect to the model. Check if the session_url {self.url} is correct ({exc})"
            ) from None

    # -- transport --------------------------------------------------------------------------------

    def _post(self, endpoint: str, state: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if "files" in kwargs:
            data = {"settings": json.dumps({"settings": self.inference_settings}), **kwargs.pop("data", {})}
            response = self._http.post(f"{self.url}/{endpoint}", data=data, **kwargs)
        else:
            body = {"state": {"settings": self.inference_settings, **(state or {})}, "context": {}}
            response = self._http.post(f"{self.url}/{endpoint}", json=body, **kwargs)
        if response.status_code != 200:
            try:
                message = response.json().get("message") or response.text
            except ValueError:
                message = response.text
            raise httpx.HTTPStatusError(
                f"{endpoint}: HTTP {response.status_code}: {message}", request=response.request, response=response
            )
        return response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- information ------------------------------------------------------------------------------

    def get_session_info(self) -> dict[str, Any]:
        return self._post("get_session_info")

    def get_model_meta(self) -> dict[str, Any]:
        """The ProjectMeta JSON: output classes and tags."""
        return self._post("get_output_classes_and_tags")

    get_model_project_meta = get_model_meta

    def get_deploy_info(self) -> dict[str, Any]:
        return self._post("get_deploy_info")

    def get_default_inference_settings(self) -> dict[str, Any]:
        if self._defaults is None:
            self._defaults = self._post("get_custom_inference_settings")["settings"]
        return dict(self._defaults)

    # -- settings ---------------------------------------------------------------------------------

    def _validate(self, settings: dict[str, Any]) -> None:
        acceptable = [*self.get_default_inference_settings(), "classes"]
        for key in settings:
            if key not in acceptable:
                raise ValueError(f"Key {key!r} is not acceptable. Acceptable keys are: {', '.join(acceptable)}")

    def update_inference_settings(self, **settings: Any) -> dict[str, Any]:
        """Change the given settings, keep the others; returns the settings now in force (as the SDK does)."""
        self._validate(settings)
        self.inference_settings.update(settings)
        return dict(self.inference_settings)

    def set_inference_settings(self, settings: dict[str, Any] | str | Path) -> dict[str, Any]:
        """Replace the settings with a dict, or with the contents of a YAML file; returns them."""
        if isinstance(settings, (str, Path)):
            settings = yaml.safe_load(Path(settings).read_text()) or {}
        if not isinstance(settings, dict):
            raise ValueError("inference settings must be a mapping")
        self._validate(settings)
        self.inference_settings = dict(settings)
        return dict(self.inference_settings)

    # -- images -----------------------------------------------------------------------------------

    def inference_image_path(self, image_path: str | Path) -> dict[str, Any]:
        path = Path(image_path)
        with path.open("rb") as handle:
            return self._post("inference_image", files=[("files", (path.name, handle))])

    def inference_image_paths(self, image_paths: list[str | Path]) -> list[dict[str, Any]]:
        files = [("files", (Path(p).name, Path(p).read_bytes())) for p in image_paths]
        return self._post("inference_batch", files=files)

    def inference_image_url(self, url: str) -> dict[str, Any]:
        return self._post("inference_image_url", {"image_url": url})

    def inference_image_id(self, image_id: int, upload: bool = False) -> dict[str, Any]:
        return self._post("inference_image_id", {"image_id": image_id, "upload": upload})

    def inference_image_ids(self, image_ids: list[int]) -> list[dict[str, Any]]:
        return self._post("inference_batch_ids", {"batch_ids": list(image_ids)})

    # -- videos -----------------------------------------------------------------------------------

    @staticmethod
    def _video_state(
        start_frame_index: int | None, frames_count: int | None, frames_direction: str | None
    ) -> dict[str, Any]:
        state = {"startFrameIndex": start_frame_index, "framesCount": frames_count, "direction": frames_direction}
        return {k: v for k, v in state.items() if v is not None}

    def inference_video_id(
        self,
        video_id: int,
        start_frame_index: int | None = None,
        frames_count: int | None = None,
        frames_direction: str | None = None,
    ) -> list[dict[str, Any]]:
        state = {"videoId": video_id, **self._video_state(start_frame_index, frames_count, frames_direction)}
        return self._post("inference_video_id", state)["ann"]

    def inference_video_id_async(
        self,
        video_id: int,
        start_frame_index: int | None = None,
        frames_count: int | None = None,
        frames_direction: str | None = None,
    ) -> AsyncInference:
        state = {"videoId": video_id, **self._video_state(start_frame_index, frames_count, frames_direction)}
        return self._start_async(self._post("inference_video_id_async", state)["inference_request_uuid"])

    def inference_video_path_async(
        self,
        video_path: str | Path,
        start_frame_index: int | None = None,
        frames_count: int | None = None,
        frames_direction: str | None = None,
    ) -> AsyncInference:
        path = Path(video_path)
        state = {
            "settings": self.inference_settings,
            **self._video_state(start_frame_index, frames_count, frames_direction),
        }
        with path.open("rb") as handle:
            started = self._post(
                "inference_video_async", files=[("files", (path.name, handle))], data={"state": json.dumps(state)}
            )
        return self._start_async(started["inference_request_uuid"])

    def inference_video_path(self, video_path: str | Path, **frames: Any) -> list[dict[str, Any]]:
        return list(self.inference_video_path_async(video_path, **frames))

    def _start_async(self, request_uuid: str) -> AsyncInference:
        if self._active is not None:
            self._active.stop()
            self._active.close()
        self._active = AsyncInference(self, request_uuid)
        return self._active

    def stop_async_inference(self) -> None:
        if self._active is not None:
            self._active.stop()


class AsyncInference(Iterator[dict[str, Any]]):
    """Result dicts of an asynchronous request as they come; `len()` is the number of frames or images."""

    def __init__(self, session: Session, request_uuid: str) -> None:
        self.session = session
        self.uuid = request_uuid
        self._queue: list[dict[str, Any]] = []
        self._done = False
        self._stopping = False
        self.total = self._wait_started()

    def _call(self, endpoint: str) -> Any:
        return self.session._post(endpoint, {"inference_request_uuid": self.uuid})

    def _raise_on_error(self, progress: dict[str, Any]) -> None:
        if progress.get("exception") or progress.get("stage") == "Error":
            error = progress.get("exception") or {}
            raise RuntimeError(f"Inference Error: {error.get('type', 'Error')}: {error.get('message', '')}")

    def _wait_started(self) -> int:
        while True:
            progress = self._call("get_inference_progress")
            self._raise_on_error(progress)
            if progress["progress"]["total"] != 1 or progress["finished"] or progress["pending_results"]:
                return int(progress["progress"]["total"])
            time.sleep(POLL_S)

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> AsyncInference:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._stopping:  # stopped by the caller: the iteration ends here, whatever is still queued
            self.close()
            raise StopIteration
        while not self._queue:
            if self._done:
                self.close()
                raise StopIteration
            progress = self._call("pop_inference_results")
            self._raise_on_error(progress)
            self._queue.extend(progress["pending_results"])
            if not progress["is_inferring"]:
                self._done = True
            elif not self._queue:
                time.sleep(POLL_S)
        return self._queue.pop(0)

    def stop(self) -> None:
        """Stop the server-side work; iteration ends at the next `next()`."""
        self._stopping = True
        self._call("stop_inference")

    def close(self) -> None:
        if self.uuid:
            self._call("get_inference_result")
            self._call("clear_inference_request")
            self.uuid = ""
