"""deploy/k8s as the cluster would receive it, and what running its containers here as processes needs.

`build` does what `kubectl apply -k` does with the kustomizations there, for the parts they use: resources
(files and other kustomizations), the namespace, and image overrides (`kustomize edit set image`). No
kustomize binary installs from Debian or PyPI, so this is the build the tests check; it refuses any other
kustomization field, so one added later cannot pass unchecked.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.integration.stack import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = {"gpu": K8S / "overlays" / "gpu", "cpu": K8S / "overlays" / "cpu"}
SECRETS_EXAMPLE = K8S / "secrets.example.env"
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

Object = dict[str, Any]


def build(folder: Path) -> list[Object]:
    """The objects `kubectl apply -k folder` would send."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{folder}: kustomization fields this build does not know: {sorted(unknown)}"
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    namespace = kustomization.get("namespace")
    for obj in objects:
        if namespace and obj["kind"] != "Namespace":
            obj["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in containers(obj):
                _set_image(container, image)
    return objects


def _set_image(container: Object, override: Object) -> None:
    name, tag = container["image"].rsplit(":", 1) if ":" in container["image"] else (container["image"], "")
    if name != override["name"]:
        return
    name = override.get("newName", name)
    if "digest" in override:
        container["image"] = f"{name}@{override['digest']}"
    else:
        container["image"] = f"{name}:{override.get('newTag', tag)}" if override.get("newTag", tag) else name


def by_key(objects: list[Object]) -> dict[tuple[str, str], Object]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod_spec(obj: Object) -> Object:
    return obj["spec"]["template"]["spec"]


def containers(obj: Object) -> Iterator[Object]:
    """Every container and init container of a workload (nothing for other kinds)."""
    if obj["kind"] not in WORKLOADS:
        return
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def secret_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in SECRETS_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def container_env(objects: dict[tuple[str, str], Object], container: Object, *, secret: dict[str, str],
                  pod_name: str) -> dict[str, str]:
    """The environment Kubernetes gives `container`: its ConfigMaps, then its own entries (values, the
    Secret's keys, the pod's name)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]
        if "secretKeyRef" in ref:
            key = ref["secretKeyRef"]["key"]
            if key in secret:
                env[entry["name"]] = secret[key]
            else:
                assert ref["secretKeyRef"].get("optional"), f"{container['name']}: the Secret has no {key}"
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[entry["name"]] = pod_name
        else:
            raise AssertionError(f"{container['name']}: a value source this test does not know: {ref}")
    return env


def map_paths(env: dict[str, str], mounts: dict[str, str]) -> dict[str, str]:
    """`env` with every path under one of `mounts` (container path -> this machine's) moved to this machine;
    a path must match whole components (`/tmp/x` is under `/tmp`, `/tmpx` is not)."""
    inside = "|".join(re.escape(path) for path in sorted(mounts, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w/])({inside})(?=/|\"|$)")
    # one pass, so a path already moved is never moved again (this machine's folders may lie under /tmp too)
    return {key: pattern.sub(lambda m: mounts[m.group(1)], value) for key, value in env.items()}



def without(obj: Object, *paths: tuple[str | int, ...]) -> Object:
    """A copy of `obj` with the values at `paths` removed (to compare what is left)."""
    out = copy.deepcopy(obj)
    for path in paths:
        node = out
        for step in path[:-1]:
            node = node[step]
        node.pop(path[-1])  # type: ignore[arg-type]
    return out
