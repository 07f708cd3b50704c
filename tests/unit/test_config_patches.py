"""Every patch file of every kustomization under config/ holds one YAML document: kustomize
v5.5, built into kubectl releases still in use, panics on a file holding two `$patch: delete`
documents, so `kubectl apply -k` (docs/install.md) would crash. The cluster tier renders each
kustomization with kubectl's own kustomize too (tests/cluster/test_install.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

CONFIG = Path(__file__).resolve().parents[2] / "config"
KUSTOMIZATIONS = sorted(CONFIG.rglob("kustomization.yaml"))


def test_there_are_kustomizations_with_patches() -> None:
    assert any(yaml.safe_load(k.read_text()).get("patches") for k in KUSTOMIZATIONS)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda k: str(k.parent.name))
def test_each_patch_file_holds_one_document(kustomization: Path) -> None:
    for patch in yaml.safe_load(kustomization.read_text()).get("patches") or []:
        if "path" not in patch:
            continue
        file = kustomization.parent / patch["path"]
        docs = [d for d in yaml.safe_load_all(file.read_text()) if d is not None]
        assert len(docs) == 1, f"{file.relative_to(CONFIG.parent)}: {len(docs)} documents"
