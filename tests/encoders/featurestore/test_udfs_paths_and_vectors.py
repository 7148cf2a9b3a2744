"""The UDF module: relative env paths resolved from where the user stands (also inside ``feast -c REPO
apply``, which changes directory first), and pins that bring their own frozen vectors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoders.featurestore import udfs
from encoders.runtime import BundleEncoder


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    (tmp_path / "work" / "feature_repo").mkdir(parents=True)
    (tmp_path / "work" / "feature_repo" / "feature_store.yaml").write_text("project: t\n")
    return tmp_path / "work"


def test_invoking_dir_sees_through_feast_apply_changing_directory(layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["/venv/bin/feast", "-c", "feature_repo", "apply"]
    monkeypatch.chdir(layout)  # `feast -c feature_repo materialize-incremental`: feast stays where we are
    assert udfs.invoking_dir(argv) == layout.resolve()
    monkeypatch.chdir(layout / "feature_repo")  # `apply`: feast has changed into the repository
    monkeypatch.setenv("PWD", str(layout))
    assert udfs.invoking_dir(argv) == layout.resolve()
    monkeypatch.setenv("PWD", "/")  # a stale $PWD (started from a program, not a shell): strip REPO's parts
    assert udfs.invoking_dir(argv) == layout.resolve()
    assert udfs.invoking_dir(["/venv/bin/feast", "--chdir=./feature_repo", "apply"]) == layout.resolve()
    assert udfs.invoking_dir(["python", "-c", "feature_repo"]) == (layout / "feature_repo").resolve()  # not feast
    assert udfs.resolve_user_path("runs/demo/bundle", argv) == layout.resolve() / "runs/demo/bundle"
    assert udfs.resolve_user_path("/abs/b", argv) == Path("/abs/b")


def test_relative_bundle_resolves_and_a_missing_one_names_variable_and_path(
    layout: Path, tiny_onnx_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(layout)
    os.symlink(tiny_onnx_bundle, layout / "bundle")
    monkeypatch.setenv(udfs.BUNDLE_ENV, "bundle")
    assert udfs.bundle_path() == str(layout.resolve() / "bundle")
    assert udfs.bundle_dim("pin") == BundleEncoder(tiny_onnx_bundle, kind="pin").dim
    monkeypatch.setenv(udfs.BUNDLE_ENV, "runs/nope")
    with pytest.raises(FileNotFoundError, match=rf"SEARCHSAGE_BUNDLE=runs/nope: no such directory \({layout.resolve()}"):
        udfs.bundle_path()
    monkeypatch.setenv(udfs.DIM_ENV, "abc")
    with pytest.raises(ValueError, match="SEARCHSAGE_EMBEDDING_DIM='abc': expected a positive integer"):
        udfs.expected_dim()


def test_pins_with_vectors_keep_them_exactly_the_others_use_the_pin_tower(
    tiny_onnx_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc = BundleEncoder(tiny_onnx_bundle, kind="pin")
    monkeypatch.setenv(udfs.BUNDLE_ENV, str(tiny_onnx_bundle))
    monkeypatch.delenv(udfs.DIM_ENV, raising=False)
    own = np.random.default_rng(3).standard_normal((2, enc.dim)).astype(np.float32)
    df = pd.DataFrame({"pin_id": ["a", "b", "c"], "text": ["oak table", "", "red chair"],
                       "embedding": [own[0], own[1], None], "model_version": ["catalog-v7", None, None]})
    out = udfs.embed_pin_rows(df)
    assert np.asarray(out["embedding"][0]).tobytes() == own[0].tobytes()
    assert np.asarray(out["embedding"][1]).tobytes() == own[1].tobytes()
    np.testing.assert_allclose(out["embedding"][2], enc.encode(["red chair"])[0], atol=1e-6)
    assert out["model_version"].tolist() == ["catalog-v7", udfs.PROVIDED_VERSION, enc.model_version]

    monkeypatch.delenv(udfs.BUNDLE_ENV)  # every pin brings its vector: no bundle needed at all
    only_own = udfs.embed_pin_rows(df.iloc[:2])
    assert np.asarray(only_own["embedding"][1]).tobytes() == own[1].tobytes()

    monkeypatch.setenv(udfs.DIM_ENV, str(enc.dim + 1))
    with pytest.raises(udfs.PinVectorMismatch, match=rf"pin 'a' brings a {enc.dim}-d embedding but the feature view "
                       rf"declares vector_length={enc.dim + 1}"):
        udfs.embed_pin_rows(df.iloc[:2])
