"""`explain`: Grad-CAM of classification weights on one image, answered as the heat-map overlay PNG.

The console's Try page calls it ("Explain"). The body is `inferenceSingle`'s (`project_id`, `modelweights_id`,
`image_data` or `image_url`, plus an optional `class_index`; default: the predicted class), checked for the
caller's access the same way. Grad-CAM needs PyTorch (the `train` extra): without it the route answers 501.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException

from fovea.platform import processes
from fovea.platform.errors import InputError
from fovea.server.backend.deps import BackendRoute, CurrentUser, JsonBody, database, settings
from fovea.server.backend.process_routes import url_limits
from fovea.server.backend.schemas.common import binary, json_body_schema, parse_body
from fovea.server.backend.schemas.explain import ExplainRequest

router = APIRouter(route_class=BackendRoute)

# One Grad-CAM at a time: each converts the network to PyTorch and back-propagates through it (hundreds of MB and
# all cores for a second or two); more at once only make each slower and the server's memory peak higher. A request
# that cannot start within QUEUE_WAIT_S gets a 503, rather than holding a worker thread any longer.
_ONE_AT_A_TIME = threading.Lock()
QUEUE_WAIT_S = 30


@router.post(
    "/explain", response_class=Response, responses=binary("image/png"), openapi_extra=json_body_schema(ExplainRequest)
)
def explain(request: Request, user: CurrentUser, body: JsonBody) -> Response:
    """A plain function, so in a worker thread: Grad-CAM takes seconds of CPU and must not block the event loop."""
    explain_request = parse_body(ExplainRequest, body)
    order = explain_request.order()
    weights_path = processes.weights_to_explain(database(request), user, order, settings(request).storage_dir)
    class_index = _class_index(explain_request.class_index)
    _require_torch()
    data = processes.single_image_bytes(order, url_limits(request))

    import fovea
    from fovea.training.explain import grad_cam

    if not _ONE_AT_A_TIME.acquire(timeout=QUEUE_WAIT_S):
        raise HTTPException(503, "the server is busy explaining other images; try again", {"Retry-After": "5"})
    try:
        explanation = grad_cam(fovea.load(weights_path), data, class_index)
    finally:
        _ONE_AT_A_TIME.release()
    ok, png = cv2.imencode(".png", explanation.overlay()[:, :, ::-1])  # OpenCV writes BGR
    if not ok:
        raise RuntimeError("the overlay could not be encoded as PNG")
    return Response(png.tobytes(), media_type="image/png", headers={"Cache-Control": "no-store"})


def _class_index(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError("class_index must be a class's index: an integer from 0")
    return value


def _require_torch() -> None:
    try:
        import onnx2torch  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise HTTPException(
            501, "Grad-CAM needs PyTorch on the server: install fovea with its train extra, pip install 'fovea[train]'"
        ) from None
