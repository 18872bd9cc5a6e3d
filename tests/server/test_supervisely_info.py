"""The Supervisely dialect's info objects, from a session that is loaded but not started."""

import fovea
from fovea.core.card import ModelCard
from fovea.server.dialects.supervisely_info import deploy_info
from fovea.sessions.session import ModelSession
from tests.core.graphs import constant_outputs


def test_deploy_info_takes_the_precision_from_the_card(tmp_path):
    card = ModelCard(
        name="half",
        task="classification",
        classes=["a", "b"],
        input={"size": (8, 8), "dtype": "float16"},
        decoder={"kind": "softmax"},
    )
    path = constant_outputs(tmp_path / "half.onnx", card, {"logits": [[0.2, 0.8]]})
    info = deploy_info(ModelSession(fovea.load(path)))
    assert info["model_precision"] == "fp16"
    assert len(info) == 12  # the client builds a dataclass of exactly these keys
