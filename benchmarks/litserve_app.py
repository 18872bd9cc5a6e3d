"""The same model behind LitServe with its own dynamic batching, for benchmarks/serving.py.

    python -m benchmarks.litserve_app MODEL.onnx PORT

Decoding and preprocessing are Fovea's (so the comparison is about serving, not image code).
"""

from __future__ import annotations

import sys

import litserve as ls
import numpy as np


class OnnxClassifier(ls.LitAPI):
    def __init__(self, path: str) -> None:
        super().__init__(max_batch_size=8, batch_timeout=0.002)
        self.path = path

    def setup(self, device: str) -> None:
        import fovea

        self.model = fovea.load(self.path)

    def decode_request(self, request):
        data = request["files"].file.read()
        return self.model.preprocess([self.model.read(data)]).tensor

    def batch(self, inputs):
        return np.concatenate(inputs)

    def predict(self, x):
        return self.model.run(x, self.model.network)[0]

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        top = np.argsort(-output)[:5]
        return {"labels": top.tolist(), "scores": output[top].tolist()}


if __name__ == "__main__":
    model_path, port = sys.argv[1], int(sys.argv[2])
    server = ls.LitServer(OnnxClassifier(model_path), accelerator="cpu", workers_per_device=1)
    server.run(port=port, generate_client_file=False)
