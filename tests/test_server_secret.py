"""The per-server Secret's names and volume layout (pure)."""

import pytest

from offload_spawner.identity.server_secret import file_key, file_volumes, secret_name


def test_secret_name_extends_the_pod_name():
    assert secret_name("jupyter-alice") == "jupyter-alice-offload"


def test_file_keys_are_valid_secret_keys_and_distinct():
    a = file_key("/etc/dask/offload.yaml")
    b = file_key("/etc/dask2/offload.yaml")
    assert a != b
    import re

    assert re.fullmatch(r"[-._a-zA-Z0-9]+", a) and len(a) <= 253


@pytest.mark.parametrize("bad", ["relative/path", "/etc/../x", "/etc//dask"])
def test_file_key_refuses_paths_that_are_not_absolute_and_normal(bad):
    with pytest.raises(ValueError):
        file_key(bad)


def test_file_volumes_one_volume_per_directory():
    volumes, mounts = file_volumes("s", {"/etc/dask/a.yaml": "a", "/etc/dask/b.yaml": "b", "/opt/x/c.json": "c"})
    assert [m["mountPath"] for m in mounts] == ["/etc/dask", "/opt/x"]
    first = volumes[0]["secret"]
    assert first["secretName"] == "s"
    assert [i["path"] for i in first["items"]] == ["a.yaml", "b.yaml"]
    assert first["items"][0]["key"] == file_key("/etc/dask/a.yaml")
    assert all(m["readOnly"] for m in mounts)
