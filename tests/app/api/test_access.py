"""API keys and scopes on every state-changing route, key management (API and `cxr keys`), the audit log,
`open_predict`, and the OpenAPI security scheme."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.main import create_app
from cxr.cli import main as cxr_main
from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.keys import authenticate
from registry.publish import publish_checkpoint
from registry.versions import list_versions
from tests.app.api.support import make_key

# every state-changing route, the scope it needs, and a body that would pass validation
ROUTES = [
    ("post", "/training-jobs", "train", {"model": "simple_cnn", "dataset": "pneumo"}),
    ("post", "/training-jobs/1/cancel", "train", None),
    ("post", "/evaluation-jobs", "train", {"model": "pneumo-cnn:1", "dataset": "pneumo"}),
    ("post", "/evaluation-jobs/1/cancel", "train", None),
    ("post", "/datasets", "train", {"name": "x", "kind": "folder", "path": "kermany-sample"}),
    ("put", "/models/pneumo-cnn/aliases/production", "admin", {"version": 1}),
    ("post", "/keys", "admin", {"name": "k", "scopes": ["predict"]}),
    ("delete", "/keys/someone", "admin", None),
    ("get", "/keys", "admin", None),
    ("get", "/audit", "admin", None),
]


@pytest.fixture(scope="module")
def anonymous(settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def keys(settings) -> dict[str, str]:
    return {scope: make_key(settings.database_url, f"only-{scope}", scope) for scope in ("predict", "train")}


def _call(client, method, path, body, headers=None):
    return client.request(method.upper(), path, json=body, headers=headers or {})


@pytest.mark.parametrize(("method", "path", "scope", "body"), ROUTES)
def test_no_key_or_an_unknown_one_is_401_with_the_error_body(anonymous, method, path, scope, body):
    r = _call(anonymous, method, path, body)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized" and "X-API-Key" in r.json()["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = _call(anonymous, method, path, body, {"X-API-Key": "cxr_00000000_not-a-key-we-ever-made"})
    assert r.status_code == 401 and "unknown or revoked" in r.json()["message"]


@pytest.mark.parametrize(("method", "path", "scope", "body"), ROUTES)
def test_a_key_without_the_scope_is_403(anonymous, keys, method, path, scope, body):
    weaker = keys["predict"] if scope == "train" else keys["train"]
    r = _call(anonymous, method, path, body, {"X-API-Key": weaker})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden" and f"needs '{scope}'" in r.json()["message"]


def test_a_train_key_submits_as_a_bearer_token_and_the_job_names_it(anonymous, keys, pneumonia, admin_key):
    r = anonymous.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo"},
                       headers={"Authorization": f"Bearer {keys['train']}"})
    assert r.status_code == 202, r.text
    events = [e for e in _audit(anonymous, admin_key) if e["target"] == r.headers["location"]]
    assert [(e["actor"], e["action"]) for e in events] == [("only-train", "job.submitted")]


def test_get_routes_stay_open(anonymous, pneumonia):
    for path in ("/training-jobs", "/evaluation-jobs", "/datasets", "/datasets/pneumo", "/models",
                 "/health/live"):
        assert anonymous.get(path).status_code == 200, path


def _audit(client, admin_key: str, **params) -> list[dict]:
    return client.get("/audit", params={"limit": 1000, **params}, headers={"X-API-Key": admin_key}).json()["items"]


def test_keys_are_created_once_listed_without_secrets_and_revoked(client, anonymous, settings):
    r = client.post("/keys", json={"name": "ci", "scopes": ["train", "predict"]})
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert created["scopes"] == ["predict", "train"] and key.startswith(created["prefix"])
    assert client.post("/keys", json={"name": "ci", "scopes": ["train"]}).status_code == 409
    assert client.post("/keys", json={"name": "x", "scopes": ["root"]}).status_code == 422
    listed = client.get("/keys").json()["items"]
    assert "ci" in [k["name"] for k in listed] and key not in str(listed) and all("key" not in k for k in listed)
    db = Database(settings.database_url)
    with db.session() as s:  # stored hashed: the plaintext appears nowhere in the table
        assert authenticate(s, key=key).name == "ci"
        assert key not in str(s.execute(text("SELECT * FROM api_keys")).all())
    db.dispose()
    assert anonymous.get("/training-jobs", headers={"X-API-Key": key}).status_code == 200
    r = client.delete("/keys/ci")
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert client.delete("/keys/ci").status_code == 409
    refused = anonymous.post("/training-jobs/1/cancel", headers={"X-API-Key": key})
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]


def test_the_audit_log_says_who_did_what_to_what(client, admin_key, pneumonia, run_version):
    client.put("/models/pneumo-cnn/aliases/staging", json={"version": 1})
    job = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo"}).json()
    client.post(f"/training-jobs/{job['id']}/cancel")
    client.post("/keys", json={"name": "audited", "scopes": ["predict"]})
    client.delete("/keys/audited")
    events = _audit(client, admin_key, actor="test-admin")
    seen = {(e["action"], e["target"]) for e in events}
    assert {("dataset.registered", "/datasets/pneumo"), ("alias.moved", "/models/pneumo-cnn/aliases/staging"),
            ("job.submitted", f"/training-jobs/{job['id']}"), ("job.cancelled", f"/training-jobs/{job['id']}"),
            ("key.created", "/keys/audited"), ("key.revoked", "/keys/audited")} <= seen
    assert events == sorted(events, key=lambda e: -e["id"]) and all(e["at"] for e in events)
    assert {e["action"] for e in _audit(client, admin_key, action="key.revoked")} == {"key.revoked"}
    assert client.get(f"/training-jobs/{job['id']}").status_code == 200


@pytest.fixture(scope="module")
def run_version(settings, pneumonia, tmp_path_factory):
    """A version of `pneumo-cnn` to move aliases of (published through the registry)."""

    db, store = Database(settings.database_url), LocalArtifactStore(settings.artifact_root)
    with db.session() as s:
        if not list_versions(s, name="pneumo-cnn"):
            path = tmp_path_factory.mktemp("v") / "model.pt"
            path.write_bytes(b"weights")
            publish_checkpoint(s, store, local_path=path, key="access/model.pt", name="pneumo-cnn",
                               summary={"architecture": "simple_cnn", "labels": ["Pneumonia"], "task": "binary",
                                        "data_config": {}, "thresholds": [0.5], "metrics": {}, "epoch": 0},
                               dataset_id=pneumonia["id"])
    db.dispose()


def test_predict_is_open_by_default_and_needs_a_predict_key_when_closed(settings, anonymous, keys):
    r = anonymous.post("/predict", files={"file": ("x.png", b"not an image", "image/png")})
    assert r.status_code not in (401, 403), r.text  # open: the request reaches the route
    closed = settings.model_copy(update={"open_predict": False})
    with TestClient(create_app(closed)) as c:
        for path in ("/predict", "/gradcam", "/preview"):
            r = c.post(path, files={"file": ("x.png", b"not an image", "image/png")})
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", path
            r = c.post(path, files={"file": ("x.png", b"not an image", "image/png")},
                       headers={"X-API-Key": keys["predict"]})
            assert r.status_code not in (401, 403), r.text
        spec = c.get("/openapi.json").json()
    assert {} not in spec["paths"]["/predict"]["post"]["security"]


def test_the_schema_documents_the_security_scheme(anonymous):
    spec = anonymous.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    for method, path, _, _ in ROUTES:
        template = path.replace("/1/", "/{job_id}/").replace("pneumo-cnn/aliases/production", "{name}/aliases/{alias}")
        template = template.replace("/keys/someone", "/keys/{name}")
        op = spec["paths"][template][method]
        assert {"ApiKey": []} in op["security"] and {"401", "403"} <= set(op["responses"]), (method, path)
    assert {} in spec["paths"]["/predict"]["post"]["security"]  # open_predict: a key is optional


def test_cxr_keys_create_list_revoke(settings, capsys):
    url = ["--url", settings.database_url]
    assert cxr_main(["keys", "create", "--name", "from-cli", "--scope", "train,predict", *url]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    db = Database(settings.database_url)
    with db.session() as s:
        assert authenticate(s, key=key).scopes == ["predict", "train"]
    assert cxr_main(["keys", "list", *url]) == 0
    listing = capsys.readouterr().out
    assert "from-cli" in listing and key[:12] in listing and key not in listing
    assert cxr_main(["keys", "revoke", "from-cli", *url]) == 0
    with db.session() as s:
        assert authenticate(s, key=key) is None
    db.dispose()
    assert cxr_main(["keys", "create", "--name", "bad", "--scope", "root", *url]) == 2
    assert "scopes must be some of" in capsys.readouterr().err
