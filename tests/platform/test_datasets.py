"""Dataset upload (zip of a DeepHealth YAML and its images), validation, safety, listing and deletion."""

import pytest

from fovea.errors import InputError, LimitExceeded
from fovea.platform.archives import ArchiveLimits, extract_zip
from tests.platform.conftest import bearer, login, register, zip_of


def upload(client, headers, archive, **fields):
    form = {"name": "Digits", "task_id": "1", **{k: str(v) for k, v in fields.items()}}
    return client.post("/backend/datasets", data=form, files={"dataset_data": ("d.zip", archive)}, headers=headers)


def test_upload_list_images_and_delete(backend, digits_zip):
    owner = register(backend, "owner")
    stranger = register(backend, "stranger")
    created = upload(backend, owner, digits_zip)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["classes"] == ",".join(str(d) for d in range(10)) and item["ctype"] == "RGB" and item["public"] is False
    assert item["path"].startswith("datasets/") and item["path"].endswith("digits.yml")
    assert [d["id"] for d in backend.get("/backend/datasets?task_id=1", headers=owner).json()] == [item["id"]]
    assert backend.get("/backend/datasets?task_id=2", headers=owner).json() == []
    assert backend.get(f"/backend/datasets/{item['id']}", headers=stranger).status_code == 404
    test_images = backend.get(f"/backend/datasets/{item['id']}/images?split=test", headers=owner).json()
    assert len(test_images) == 269 and all(row["split"] == ["test"] for row in test_images)
    first = backend.get(f"/backend/datasets/{item['id']}/images?offset=0&limit=2", headers=owner).json()
    assert [row["id"] for row in first] == [0, 1] and first[0]["label"] == [0] and first[0]["label_path"] is None
    assert backend.delete(f"/backend/datasets/{item['id']}", headers=stranger).status_code == 404
    assert backend.delete(f"/backend/datasets/{item['id']}", headers=owner).status_code == 204
    assert list((backend.settings.storage_dir / "datasets").iterdir()) == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.png": b"x"}, "exactly one dataset YAML"),
        ({"d.yml": b"classes: [a, b]\nimages:\n  - location: missing.png\n    label: 0\n"}, "does not exist"),
        ({"d.yml": b"classes: [a, b]\nimages:\n  - location: a.png\n    label: c\n", "a.png": b"x"}, "unknown class"),
        (
            {"d.yml": b"classes: [a, b]\nimages:\n  - location: a.png\n    label: 0\n", "a.png": b"text, not an image"},
            "is not a PNG",
        ),
        ({"d.yml": b"classes: [a, b]\nimages:\n  - location: ../a.png\n", "a.png": b"x"}, "outside the dataset"),
        ({"../evil.yml": b"x"}, "unsafe archive member"),
        ({"/abs.yml": b"x"}, "unsafe archive member"),
    ],
)
def test_invalid_archives_are_refused_and_leave_nothing(backend, files, message):
    headers = bearer(login(backend))
    response = upload(backend, headers, zip_of(files))
    assert response.status_code == 400, response.text
    body = response.json()
    assert message in body["error"] + " ".join(body.get("detail", {}).get("problems", [])), body
    folder = backend.settings.storage_dir / "datasets"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_links_bombs_and_non_zips(tmp_path):
    with pytest.raises(InputError, match="links"):
        extract_zip(zip_of({"a.yml": b"x"}, symlink="link.png"), tmp_path / "a")
    with pytest.raises(LimitExceeded, match="compression ratio"):
        extract_zip(zip_of({"zeros.bin": b"\0" * 5_000_000}), tmp_path / "b")
    with pytest.raises(LimitExceeded, match="members"):
        extract_zip(zip_of({f"{i}.txt": b"x" for i in range(5)}), tmp_path / "c", ArchiveLimits(max_members=3))
    with pytest.raises(InputError, match="not a zip"):
        extract_zip(b"plain bytes", tmp_path / "d")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_weights_trained_on_a_dataset_take_its_task_and_classes(backend, digits_zip):
    headers = bearer(login(backend))
    dataset_id = upload(backend, headers, digits_zip).json()["id"]
    segmentation_model = backend.post("/backend/models", json={"name": "UNet", "task_id": 2}, headers=headers).json()[
        "id"
    ]
    response = backend.post(
        "/backend/weights",
        data={"name": "w", "model_id": str(segmentation_model), "dataset_id": str(dataset_id)},
        files={"onnx_data": ("m.onnx", b"irrelevant")},
        headers=headers,
    )
    assert response.status_code == 400 and "another task" in response.json()["error"]


def _serve(folder):
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_datasets_by_url_yaml_or_zip_under_the_url_guard(backend, zoo_dir, tmp_path):
    import shutil

    from fovea.datasets import Sample, write_dataset_yaml

    served = tmp_path / "served"
    (served / "digits" / "images").mkdir(parents=True)
    samples = []
    for i in range(30):
        name = f"images/digit_{i:04d}.png"
        shutil.copyfile(zoo_dir / "digits" / name, served / "digits" / name)
        samples.append(Sample(location=name, label=i % 10))
    write_dataset_yaml(served / "digits" / "small.yml", "small", [str(d) for d in range(10)], samples,
                       {"training": list(range(20)), "test": list(range(20, 30))})  # fmt: skip
    (served / "small.zip").write_bytes(
        zip_of({f"digits/{p.relative_to(served / 'digits')}": p.read_bytes() for p in (served / "digits").rglob("*.*")})
    )
    server, url = _serve(served)
    headers = bearer(login(backend))

    def by_url(path):
        return backend.post("/backend/datasets", json={"name": "d", "task_id": 1, "path": path}, headers=headers)

    try:
        refused = by_url(f"{url}/digits/small.yml")
        assert refused.status_code == 400 and "not allowed" in refused.json()["error"]  # loopback: not allowlisted
        backend.settings.allow_url_hosts = ["127.0.0.1"]
        for path in (f"{url}/digits/small.yml", f"{url}/small.zip"):
            created = by_url(path)
            assert created.status_code == 201, created.text
            images = backend.get(f"/backend/datasets/{created.json()['id']}/images?split=test", headers=headers).json()
            assert [image["id"] for image in images] == list(range(20, 30)) and images[0]["label"] == [0]
        missing = by_url(f"{url}/nothing.yml")
        assert missing.status_code == 400 and "HTTP 404" in missing.json()["error"]
        local = by_url("/etc/passwd")
        assert local.status_code == 400 and "http(s) URL" in local.json()["error"]
    finally:
        server.shutdown()


def _lying_zip(files: dict[str, bytes], liar: str, declared: int, *, headers=("central", "local")) -> bytes:
    """A zip whose member `liar` declares `declared` uncompressed bytes in the chosen headers, whatever it holds."""
    import struct

    data = bytearray(zip_of(files))
    name = liar.encode()
    # (signature, offset of the name length, offset of the name, offset of the uncompressed size) per header kind
    layouts = {"central": (b"PK\x01\x02", 28, 46, 24), "local": (b"PK\x03\x04", 26, 30, 22)}
    for kind in headers:
        signature, name_length_at, name_at, size_at = layouts[kind]
        start = data.find(signature)
        while start != -1:
            (length,) = struct.unpack_from("<H", data, start + name_length_at)
            if data[start + name_at : start + name_at + length] == name:
                struct.pack_into("<I", data, start + size_at, declared)
            start = data.find(signature, start + 4)
    return bytes(data)


@pytest.mark.parametrize(
    ("declared", "headers"),
    [(100, ("central", "local")), (100, ("central",)), (6000, ("central", "local"))],
    ids=["smaller", "smaller-in-the-directory-only", "larger"],
)
def test_members_lying_about_their_size_are_refused_and_leave_nothing(backend, declared, headers):
    owner = bearer(login(backend))
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20  # 5128 bytes that deflate poorly: the ratio check passes
    files = {"d.yml": b"classes: [a, b]\nimages:\n  - location: a.png\n    label: 0\n", "a.png": png}
    response = upload(backend, owner, _lying_zip(files, "a.png", declared, headers=headers))
    assert response.status_code == 400, response.text
    assert "a.png" in response.json()["error"]
    folder = backend.settings.storage_dir / "datasets"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert backend.get("/backend/datasets", headers=owner).json() == []
