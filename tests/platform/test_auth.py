"""OAuth2 password/refresh grants, revocation, registration and the users list, on SQLite and PostgreSQL."""

from tests.platform.conftest import ADMIN_PASSWORD, bearer, login, register


def token_request(client, **form):
    return client.post("/backend/auth/token/", data={"client_id": "fovea", **form})


def test_password_grant_and_me(backend):
    tokens = login(backend)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 36000 and tokens["scope"] == "read write"
    me = backend.get("/backend/auth/user/", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["username"] == "admin"
    assert backend.get("/backend/auth/user", headers=bearer(tokens)).status_code == 200  # no trailing slash too


def test_token_errors(backend):
    wrong = token_request(backend, grant_type="password", username="admin", password="nope")
    assert wrong.status_code == 400 and wrong.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid credentials given.",
    }
    unknown = token_request(backend, grant_type="password", username="ghost", password="nope")
    assert unknown.json()["error"] == "invalid_grant"
    assert token_request(backend, grant_type="magic").json()["error"] == "unsupported_grant_type"
    assert token_request(backend, username="admin").json()["error"] == "invalid_request"
    client = backend.post(
        "/backend/auth/token/",
        data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "evil"},
    )
    assert client.status_code == 401 and client.json() == {"error": "invalid_client"}


def test_refresh_rotates_and_revoke_kills_the_pair(backend):
    first = login(backend)
    second = token_request(backend, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert second["access_token"] != first["access_token"]
    reused = token_request(backend, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert (
        backend.post(
            "/backend/auth/revoke-token/", data={"token": second["refresh_token"], "client_id": "fovea"}
        ).status_code
        == 204
    )
    gone = backend.get("/backend/auth/user/", headers=bearer(second))
    assert gone.status_code == 401 and gone.headers["www-authenticate"] == "Bearer"
    assert (
        backend.post("/backend/auth/revoke-token/", data={"token": "unknown", "client_id": "fovea"}).status_code == 204
    )
    assert backend.post("/backend/auth/revoke-token/", data={"client_id": "fovea"}).status_code == 400


def test_missing_or_bad_bearer_is_401(backend):
    assert backend.get("/backend/projects").status_code == 401
    assert backend.get("/backend/projects", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert backend.get("/backend/projects", headers={"Authorization": "Basic abc"}).status_code == 401


def test_registration_rules_and_users_list(backend):
    headers = register(backend, "dhtest")
    cases = [
        ({"username": "dhtest", "email": "x@example.org", "password": "a-long-passphrase-9"}, "username"),
        ({"username": "other", "email": "DHTEST@example.org", "password": "a-long-passphrase-9"}, "email"),
        ({"username": "other", "email": "o@example.org", "password": "short"}, "password"),
        ({"username": "other", "email": "o@example.org", "password": "12345678901"}, "password"),
        ({"username": "other", "email": "o@example.org", "password": "password"}, "password"),
        ({"username": "other", "email": "o@example.org", "password": "xx-other-xx"}, "password"),
        ({"username": "other", "email": "not-an-email", "password": "a-long-passphrase-9"}, "email"),
    ]
    for body, field in cases:
        response = backend.post("/backend/auth/user/", json=body)
        assert response.status_code == 400 and field in response.json()["detail"]["fields"], (body, response.text)
    assert backend.post("/backend/auth/user/", content=b'{"username": "x",}').status_code == 400  # trailing comma
    rows = backend.get("/backend/auth/users/", headers=headers).json()
    assert [r["username"] for r in rows] == ["admin", "dhtest"]
    assert rows[1]["email"] == "dhtest@example.org" and rows[0]["email"] == ""  # others' details hidden
    assert backend.get(f"/backend/auth/users/{rows[0]['id']}/", headers=headers).json()["username"] == "admin"
    assert backend.get("/backend/auth/users/999/", headers=headers).status_code == 404


def test_users_create_cli_and_closed_registration(tmp_path):
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from fovea.platform.bootstrap import bootstrap
    from fovea.platform.config import PlatformSettings
    from fovea.server.backend.app import create_backend_app

    home = tmp_path / "home"
    env = {**os.environ, "FOVEA_HOME": str(home), "FOVEA_ADMIN_PASSWORD": ADMIN_PASSWORD}
    created = subprocess.run(
        [sys.executable, "-m", "fovea.cli", "users", "create", "carol", "--password", "a-long-passphrase-9", "--staff"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    again = subprocess.run(
        [sys.executable, "-m", "fovea.cli", "users", "create", "carol"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    settings = PlatformSettings(home=home, admin_password=ADMIN_PASSWORD, registration_open=False)
    db, _ = bootstrap(settings)
    with TestClient(create_backend_app(settings, db)) as client:
        tokens = login(client, "carol", "a-long-passphrase-9")
        assert client.get("/backend/auth/user/", headers=bearer(tokens)).json()["username"] == "carol"
        closed = client.post(
            "/backend/auth/user/",
            json={"username": "dave", "email": "d@example.org", "password": "a-long-passphrase-9"},
        )
        assert closed.status_code == 403 and closed.json() == {"error": "registration is disabled"}
    db.dispose()
