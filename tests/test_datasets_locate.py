"""ecgcore.datasets.locate: reference databases under $ECGCORE_DATA, no library default."""
from __future__ import annotations

import pytest

from ecgcore.datasets import DATA_ENV, locate
from ecgcore.pipelines.recipes.denoise_pairs import DenoisePairs


def test_locate_finds_the_folder_under_the_variable(tmp_path, monkeypatch):
    (tmp_path / "mitdb").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert locate("mitdb") == tmp_path / "mitdb"
    with pytest.raises(FileNotFoundError, match=r"QT Database not found: .*qtdb is not a folder \(ECGCORE_DATA="):
        locate("qtdb")
    for bad in ("", "..", "mitdb/../x"):
        with pytest.raises(ValueError, match="named by its folder"):
            locate(bad)


def test_locate_without_the_variable_names_it(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="set ECGCORE_DATA .*no default location"):
        locate("ecgiddb")


def test_noise_folder_beside_the_records_then_through_the_variable(tmp_path, monkeypatch):
    recipe = DenoisePairs()
    records = tmp_path / "archive" / "mitdb"
    records.mkdir(parents=True)
    data = tmp_path / "data"
    (data / "nstdb").mkdir(parents=True)
    monkeypatch.setenv(DATA_ENV, str(data))
    assert recipe._noise_dir(records, {}) == data / "nstdb"
    (tmp_path / "archive" / "nstdb").mkdir()
    assert recipe._noise_dir(records, {}) == tmp_path / "archive" / "nstdb"  # side by side wins
    assert recipe._noise_dir(records, {"noise_dir": str(data / "nstdb")}) == data / "nstdb"
    (tmp_path / "archive" / "nstdb").rmdir()
    monkeypatch.delenv(DATA_ENV)
    with pytest.raises(FileNotFoundError, match="beside the records .*ECGCORE_DATA.*--noise-dir"):
        recipe._noise_dir(records, {})
