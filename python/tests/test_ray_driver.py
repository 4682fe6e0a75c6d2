"""The Ray driver's own logic (python/moe_scope_ray.py) without a Ray cluster: which units count as finished,
plan validation, and a unit's retry while a lost attempt still holds its folder. The driver on a real
cluster is tested by scripts/test-ray.sh."""

import json
import os

import pytest

import moe_scope_ray as driver


def write(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def unit_in(tmp_path, shard=1, shards=3):
    d = tmp_path / "unit"
    d.mkdir(exist_ok=True)
    return {"id": 4, "experiment": "demo.onnx.0shot.answer.none", "shard": shard, "shards": shards, "dir": str(d)}


def test_a_unit_is_finished_only_with_its_own_shard_and_a_complete_summary(tmp_path):
    unit = unit_in(tmp_path)
    assert not driver.unit_finished(unit), "nothing written yet"
    write(os.path.join(unit["dir"], "manifest.json"), {"shard": {"index": 1, "count": 3}})
    assert not driver.unit_finished(unit), "no summary yet"
    write(os.path.join(unit["dir"], "summary.json"), {"complete": False})
    assert not driver.unit_finished(unit), "an interrupted run"
    write(os.path.join(unit["dir"], "summary.json"), {"complete": True})
    assert driver.unit_finished(unit)
    assert not driver.unit_finished(unit_in(tmp_path, shard=2)), "another shard's folder"
    assert not driver.unit_finished(unit_in(tmp_path, shards=4)), "another shard count"
    with open(os.path.join(unit["dir"], "summary.json"), "w") as f:
        f.write('{"complete": tr')
    assert not driver.unit_finished(unit), "a torn summary"


def test_read_plan_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"nowhere\.json: cannot read the sweep plan"):
        driver.read_plan(str(tmp_path / "nowhere.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        driver.read_plan(str(bad))
    write(bad, {"format": "moe-scope.run"})
    with pytest.raises(ValueError, match=r'bad\.json: field "format" is \'moe-scope.run\', not "moe-scope.sweep"'):
        driver.read_plan(str(bad))
    write(bad, {"format": "moe-scope.sweep", "node": "n", "cli": "c", "sweepDir": "d", "units": []})
    with pytest.raises(ValueError, match=r'bad\.json: field "experiments" is missing'):
        driver.read_plan(str(bad))


def test_main_refuses_a_bad_plan_before_touching_ray(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["moe_scope_ray.py", "--plan", str(tmp_path / "missing.json")])
    assert driver.main() == 2
    assert "missing.json: cannot read the sweep plan" in capsys.readouterr().err


def test_run_unit_waits_while_the_folder_is_locked_and_fails_on_other_errors(tmp_path):
    marker = tmp_path / "first-attempt"
    # exit 75 (folder locked by a live process) the first time, then succeed
    script = f'if [ -f "{marker}" ]; then exit 0; else touch "{marker}"; exit 75; fi'
    info = driver.run_unit("/bin/sh", "-c", [script], "unit 0", lock_wait_s=30)
    assert info["label"] == "unit 0" and marker.exists()
    with pytest.raises(RuntimeError, match=r"unit 1: eval exited with status 3"):
        driver.run_unit("/bin/sh", "-c", ["exit 3"], "unit 1", lock_wait_s=30)
    with pytest.raises(RuntimeError, match=r"unit 2: eval exited with status 75"):
        driver.run_unit("/bin/sh", "-c", ["exit 75"], "unit 2", lock_wait_s=0)


def test_a_local_ray_is_asked_for_loopback_and_no_dashboard_a_named_cluster_is_left_alone():
    local = driver.init_options(None)
    assert local["_node_ip_address"] == "127.0.0.1" and local["include_dashboard"] is False and local["address"] is None
    named = driver.init_options("10.0.0.5:6379")
    assert named == {"address": "10.0.0.5:6379", "log_to_driver": True}


def test_listening_sockets_beyond_loopback_are_found_among_the_processes_a_sweep_started():
    import subprocess
    import sys

    code = "import socket, sys, time; s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(); print('up', flush=True); time.sleep(60)"
    wide = subprocess.Popen([sys.executable, "-c", code, "0.0.0.0"], stdout=subprocess.PIPE)
    narrow = subprocess.Popen([sys.executable, "-c", code, "127.0.0.1"], stdout=subprocess.PIPE)
    try:
        assert wide.stdout.readline() == b"up\n" and narrow.stdout.readline() == b"up\n"
        mine = driver.descendants(os.getpid())
        assert {wide.pid, narrow.pid} <= mine
        exposed = driver.exposed_sockets(mine)
        assert any(e.startswith(f"{wide.pid} ") and "0.0.0.0:" in e for e in exposed), exposed
        assert not any(e.startswith(f"{narrow.pid} ") for e in exposed), exposed
    finally:
        wide.kill()
        narrow.kill()
        wide.wait()
        narrow.wait()
