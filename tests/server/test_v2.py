"""The Open Inference Protocol through the real `tritonclient` (http and aio) against serve-model."""

import asyncio
import concurrent.futures
import gzip
import json
import time
import zlib
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

from fovea.core.card import ModelCard
from tests.core.graphs import bright_pixels_segmenter
from tests.servers import serve

MODEL = "efficientnet-lite0-imagenet"
CATS = range(281, 286)


@pytest.fixture(scope="module")
def client(imagenet_url):
    return httpclient.InferenceServerClient(imagenet_url.removeprefix("http://"), concurrency=4)


def image_input(*paths):
    data = np.array([p.read_bytes() for p in paths], dtype=object)
    tensor = httpclient.InferInput("image_bytes", [len(paths)], "BYTES")
    tensor.set_data_from_numpy(data, binary_data=True)
    return tensor


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_server_live(query_params={"test_1": 1, "test_2": 2})
    assert client.is_model_ready(MODEL) and not client.is_model_ready("nope")
    server = client.get_server_metadata()
    assert server["name"] == "fovea" and "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata(MODEL)
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert json.loads(meta["properties"]["fovea.classes"])[281] == "tabby"
    config = client.get_model_config(MODEL)
    assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [3, 224, 224]
    assert config["instance_group"] == [{"name": MODEL, "kind": "KIND_CPU", "count": 3}]  # serve-model --workers 3
    assert [o["name"] for o in config["output"]] == [o["name"] for o in meta["outputs"]]


def test_unknown_model_is_404_with_trition_wording(client):
    for call in (lambda: client.get_model_metadata("wrong_model_name"), lambda: client.infer("wrong_model_name", [])):
        with pytest.raises(InferenceServerException) as error:
            call()
        assert "Request for unknown model" in error.value.message() and error.value.status() == "404"


def test_image_bytes_gives_a_cat_in_json_and_binary(client, zoo_dir):
    outputs = [httpclient.InferRequestedOutput("labels", binary_data=False), httpclient.InferRequestedOutput("scores")]
    result = client.infer(
        MODEL,
        [image_input(zoo_dir / "samples" / "chelsea.jpg")],
        outputs=outputs,
        request_id="abc",
        parameters={"top_k": 3},
    )
    assert result.get_response()["id"] == "abc" and result.get_response()["model_version"] == "1"
    labels = result.as_numpy("labels")
    assert labels.shape == (1, 3) and labels[0, 0] in CATS
    scores = result.as_numpy("scores")
    assert scores.shape == (1, 1000) and scores[0].argmax() == labels[0, 0]
    assert "parameters" not in result.get_output("labels")


def test_tensor_path_matches_the_image_path(client, zoo_dir):
    import fovea

    model = fovea.load(zoo_dir / "efficientnet-lite0-imagenet.onnx")
    batch = model.preprocess(
        [model.read(zoo_dir / "samples" / "chelsea.jpg"), model.read(zoo_dir / "samples" / "coffee.jpg")]
    )
    tensor = httpclient.InferInput("input", list(batch.tensor.shape), "FP32")
    tensor.set_data_from_numpy(batch.tensor, binary_data=True)
    logits = client.infer(MODEL, [tensor]).as_numpy("logits")  # no outputs named: every raw output, binary
    assert logits.shape == (2, 1000) and logits[0].argmax() in CATS and logits[1].argmax() in {967, 968, 504}
    json_tensor = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
    json_tensor.set_data_from_numpy(batch.tensor[:1], binary_data=False)
    out = client.infer(MODEL, [json_tensor], outputs=[httpclient.InferRequestedOutput("logits", binary_data=False)])
    np.testing.assert_allclose(out.as_numpy("logits")[0], logits[0], atol=1e-4)


def test_async_infer_with_concurrency(client, zoo_dir):
    pending = [
        client.async_infer(
            MODEL,
            [image_input(zoo_dir / "samples" / "chelsea.jpg")],
            outputs=[httpclient.InferRequestedOutput("labels")],
        )
        for _ in range(16)
    ]
    assert all(p.get_result().as_numpy("labels")[0, 0] in CATS for p in pending)


def test_aio_client(imagenet_url, zoo_dir):
    async def main():
        async with aioclient.InferenceServerClient(imagenet_url.removeprefix("http://")) as aio:
            assert await aio.is_model_ready(MODEL)
            data = np.array([(zoo_dir / "samples" / "coffee.jpg").read_bytes()], dtype=object)
            tensor = aioclient.InferInput("image_bytes", [1], "BYTES")
            tensor.set_data_from_numpy(data)
            results = await asyncio.gather(
                *(aio.infer(MODEL, [tensor], outputs=[aioclient.InferRequestedOutput("labels")]) for _ in range(8))
            )
            return [r.as_numpy("labels")[0, 0] for r in results]

    assert set(asyncio.run(main())) <= {967, 968, 504}


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compression_both_ways(imagenet_url, zoo_dir, algorithm):
    client = httpclient.InferenceServerClient(imagenet_url.removeprefix("http://"))
    outputs = [httpclient.InferRequestedOutput("labels"), httpclient.InferRequestedOutput("scores")]
    inputs = [image_input(zoo_dir / "samples" / "chelsea.jpg")]
    result = client.infer(
        MODEL,
        inputs,
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
        outputs=outputs,
    )
    assert result.as_numpy("labels")[0, 0] in CATS
    # What came over the wire: compressed as asked, and the same bytes as the plain answer once inflated.
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    url = f"{imagenet_url}/v2/models/{MODEL}/infer"
    plain_headers, plain = _raw_post(url, body, json_size, "identity")
    assert "content-encoding" not in plain_headers
    headers, packed = _raw_post(url, body, json_size, algorithm)
    assert headers["content-encoding"] == algorithm
    assert int(headers["content-length"]) == len(packed) < len(plain)
    assert (gzip.decompress if algorithm == "gzip" else zlib.decompress)(packed) == plain
    assert headers["inference-header-content-length"] == plain_headers["inference-header-content-length"]


def _raw_post(url, body, json_size, accept_encoding):
    """POST an infer body; the headers and the response body exactly as sent (httpx would inflate it)."""
    headers = {"Inference-Header-Content-Length": str(json_size), "Accept-Encoding": accept_encoding}
    with httpx.stream("POST", url, content=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        return response.headers, b"".join(response.iter_raw())


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip, deflate, br", "gzip"),  # aiohttp's default, what tritonclient.http.aio sends
        ("deflate", "deflate"),
        ("deflate;q=1, gzip;q=0.5", "deflate"),
        ("br, zstd", None),  # never encodings the clients cannot undo
        ("gzip;q=0", None),
        ("*", None),
        ("identity", None),
    ],
)
def test_response_compression_follows_accept_encoding(imagenet_url, zoo_dir, accept, expected):
    inputs = [image_input(zoo_dir / "samples" / "chelsea.jpg")]
    outputs = [httpclient.InferRequestedOutput("labels")]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    headers, _ = _raw_post(f"{imagenet_url}/v2/models/{MODEL}/infer", body, json_size, accept)
    assert headers.get("content-encoding") == expected
    metadata = httpx.get(f"{imagenet_url}/v2/models/{MODEL}", headers={"Accept-Encoding": accept})
    assert "content-encoding" not in metadata.headers  # only infer answers are compressed


def test_errors_are_400_with_an_error_body(client, imagenet_url):
    good = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
    good.set_data_from_numpy(np.zeros((1, 3, 224, 224), np.float32))
    cases = [
        ([good], [httpclient.InferRequestedOutput("nope")], "unknown output"),
        ([_tensor("input", np.zeros((1, 3, 224, 224), np.int32), "INT32")], None, "datatype"),
        ([_tensor("input", np.zeros((1, 3, 100, 100), np.float32), "FP32")], None, "shape"),
        ([_tensor("input", np.zeros((9, 3, 224, 224), np.float32), "FP32")], None, "batch size 9"),
    ]
    for inputs, outputs, message in cases:
        with pytest.raises(InferenceServerException) as error:
            client.infer(MODEL, inputs, outputs=outputs)
        assert error.value.status() == "400" and message in error.value.message()
    url = f"{imagenet_url}/v2/models/{MODEL}/infer"
    raw = [
        ({"Inference-Header-Content-Length": "999999"}, b"{}", 400),
        ({"Inference-Header-Content-Length": "abc"}, b"{}", 400),
        ({"Inference-Header-Content-Length": "2"}, b"{}xx", 400),
        ({"Content-Encoding": "gzip"}, gzip.compress(b"\0" * (80 * 1024 * 1024)), 413),
    ]
    for headers, body, status in raw:
        response = httpx.post(url, headers=headers, content=body, timeout=30)
        assert response.status_code == status and "error" in response.json()
    missing = httpx.get(f"{imagenet_url}/v2/nowhere")
    assert missing.status_code == 404 and "error" in missing.json()


def _tensor(name, array, datatype):
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def test_raw_mode_with_a_jpeg_body(imagenet_url, zoo_dir):
    response = httpx.post(
        f"{imagenet_url}/v2/models/{MODEL}/infer",
        headers={"Inference-Header-Content-Length": "0", "Content-Type": "image/jpeg"},
        content=(zoo_dir / "samples" / "chelsea.jpg").read_bytes(),
    )
    assert response.status_code == 200
    header = int(response.headers["inference-header-content-length"])
    doc = json.loads(response.content[:header])
    logits = np.frombuffer(response.content[header:], "<f4")
    assert doc["outputs"][0]["name"] == "logits" and logits.argmax() in CATS


def test_statistics_and_repository(client, zoo_dir):
    before = client.get_inference_statistics(MODEL)["model_stats"]
    assert len(before) == 1 and before[0]["version"] == "1"
    client.infer(
        MODEL, [image_input(zoo_dir / "samples" / "chelsea.jpg")], outputs=[httpclient.InferRequestedOutput("labels")]
    )
    after = client.get_inference_statistics(MODEL)["model_stats"][0]
    stats = after["inference_stats"]
    assert stats["success"]["count"] == before[0]["inference_stats"]["success"]["count"] + 1
    assert stats["queue"]["count"] == stats["success"]["count"]
    assert all(isinstance(v, int) for s in stats.values() for v in s.values())
    assert after["execution_count"] >= 1 and after["last_inference"] > 0
    assert client.get_model_repository_index() == [{"name": MODEL, "version": "1", "state": "READY", "reason": ""}]
    client.unload_model(MODEL)
    assert not client.is_model_ready(MODEL)
    with pytest.raises(InferenceServerException) as error:
        client.infer(MODEL, [image_input(zoo_dir / "samples" / "chelsea.jpg")])
    assert error.value.status() == "503"
    client.load_model(MODEL)
    assert client.is_model_ready(MODEL)
    with pytest.raises(InferenceServerException, match="failed to load"):
        client.load_model("wrong_model_name")


def test_segmentation_masks_come_back_at_each_image_size(segmenter_url):
    bright = np.zeros((100, 120, 3), np.uint8)
    bright[20:60, 30:90, 2] = 255  # red, in OpenCV's BGR order
    dark = np.zeros((50, 50, 3), np.uint8)
    tensor = httpclient.InferInput("image_bytes", [2], "BYTES")
    pngs = [cv2.imencode(".png", pixels)[1].tobytes() for pixels in (bright, dark)]
    tensor.set_data_from_numpy(np.array(pngs, dtype=object), binary_data=True)
    client = httpclient.InferenceServerClient(segmenter_url.removeprefix("http://"))
    outputs = [httpclient.InferRequestedOutput("masks"), httpclient.InferRequestedOutput("image_sizes")]
    result = client.infer("bright", [tensor], outputs=outputs)
    masks = result.as_numpy("masks")
    assert masks.shape == (2, 100, 120) and result.as_numpy("image_sizes").tolist() == [[100, 120], [50, 50]]
    band = np.zeros((100, 120), bool)
    band[18:62, 28:92] = True  # the bright band, give or take the 64x64 model's resolution
    assert (masks[0, 22:58, 32:88] == 1).all() and not (masks[0][~band] == 1).any()
    assert (masks[1, :50, :50] == 0).all() and (masks[1, 50:] == 255).all()  # padding past the smaller image


# -- compressed request bodies against a server with a 256 MiB limit: inflating that much takes a while -----------

BIG_LIMIT_MB = 256


@pytest.fixture(scope="module")
def big_limit_server(tmp_path_factory):
    card = ModelCard(
        name="bright",
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (64, 64)},
        decoder={"kind": "argmax"},
    )
    model = bright_pixels_segmenter(tmp_path_factory.mktemp("big") / "seg.onnx", card)
    with serve(model, "--max-request-mb", str(BIG_LIMIT_MB)) as url:
        yield url, _server_pid(url)


def _server_pid(url):
    """The serve-model process listening on `url`'s port, found by its command line."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve-model" in args and port.encode() in args:
            return int(proc.name)
    raise LookupError(f"no serve-model process on port {port}")


def _peak_rss_mib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def _gzip_bomb(mib):
    """A gzip stream of `mib` MiB of zeros, built from one fully flushed 1 MiB block repeated (about 1 KiB each)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    head = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)  # no back-references: repeatable as is
    return head + block * (mib - 1) + packer.flush()  # the trailer's length and CRC are wrong: never reached


def test_a_gzip_bomb_is_413_without_expanding_in_memory(big_limit_server):
    url, pid = big_limit_server
    bomb = _gzip_bomb(2048)  # 2 GiB of zeros in about 2 MiB
    assert len(bomb) < 4 << 20
    response = httpx.post(
        f"{url}/v2/models/bright/infer", headers={"Content-Encoding": "gzip"}, content=bomb, timeout=60
    )
    assert response.status_code == 413 and "over the limit" in response.json()["error"]
    # Inflated no further than the limit (plus the process itself, about 200 MiB), never towards the bomb's 2 GiB.
    assert _peak_rss_mib(pid) < 1024


def test_truncated_gzip_is_400(big_limit_server):
    url, _ = big_limit_server
    body = gzip.compress(json.dumps({"inputs": []}).encode())[:-12]
    response = httpx.post(f"{url}/v2/models/bright/infer", headers={"Content-Encoding": "gzip"}, content=body)
    assert response.status_code == 400 and "truncated" in response.json()["error"]


def test_health_answers_while_a_large_gzip_body_inflates(big_limit_server):
    url, _ = big_limit_server
    # A well-formed request of about 200 MiB once inflated, under the limit: a batch of zero images.
    batch = (BIG_LIMIT_MB - 56) * (1 << 20) // (3 * 64 * 64 * 4)
    tensor = httpclient.InferInput("images", [batch, 3, 64, 64], "FP32")
    tensor.set_data_from_numpy(np.zeros((batch, 3, 64, 64), np.float32), binary_data=True)
    body, json_size = httpclient.InferenceServerClient.generate_request_body([tensor])
    packed = gzip.compress(body, 1)
    del body, tensor
    headers = {"Content-Encoding": "gzip", "Inference-Header-Content-Length": str(json_size)}
    with httpx.Client(base_url=url, timeout=60) as infer, httpx.Client(base_url=url, timeout=10) as health:
        assert health.get("/v2/health/ready").status_code == 200  # the connection is open before timing starts
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            sent = time.perf_counter()
            posted = pool.submit(infer.post, "/v2/models/bright/infer", content=packed, headers=headers)
            latencies = []
            while not posted.done():
                started = time.perf_counter()
                assert health.get("/v2/health/ready").status_code == 200
                latencies.append(time.perf_counter() - started)
            answer = posted.result()
            took = time.perf_counter() - sent
    # Parsed through to the model's own check: the body was inflated in full, the batch is what is refused.
    assert answer.status_code == 400 and f"batch size {batch}" in answer.json()["error"]
    # A loop blocked by the inflate would hold one poll for most of the request; relative to the request's own
    # duration, so a loaded machine (slower everything) does not fail it.
    assert len(latencies) >= 5 and max(latencies) < max(0.2, took / 5), (took, latencies)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/systemsharedmemory/status"),
        ("POST", "/v2/systemsharedmemory/region/r/register"),
        ("POST", "/v2/cudasharedmemory/region/r/unregister"),
        ("GET", "/v2/trace/setting"),
        ("POST", "/v2/logging"),
        ("POST", f"/v2/models/{MODEL}/generate"),
    ],
)
def test_unimplemented_extensions_are_501_with_an_error_body(imagenet_url, method, path):
    response = httpx.request(method, imagenet_url + path, json={})
    assert response.status_code == 501 and "not implemented" in response.json()["error"]


def test_tritonclient_sees_501_for_shared_memory(client):
    with pytest.raises(InferenceServerException) as error:
        client.get_system_shared_memory_status()
    assert error.value.status() == "501"
