"""build/e2e-stack.json under pytest-xdist: the controller adds up the tallies of
the workers that ran e2e files, each with its own test bed."""

from __future__ import annotations

import json

import stack_report
from xdist_scheduling import xdist_scope


def _tally(slurm_pods: int, htcondor_pods: int, submitted: int, components: dict) -> dict:
    report = stack_report.empty()
    report["components"] = components
    report["pods"]["slurm-plugin"] = slurm_pods
    report["pods"]["htcondor-plugin"] = htcondor_pods
    report["slurm_jobs"]["submitted"] = submitted
    report["slurm_jobs"]["finished"] = submitted
    return report


def test_the_workers_tallies_are_added_up_and_their_components_joined(tmp_path):
    one = _tally(3, 0, 3, {"slurmctld": {"version": "22.05"}, "kube-apiserver": {"version": "v1.35.4"}})
    two = _tally(8, 3, 8, {"interlink-htcondor-plugin": {"commit": "abc"}, "kube-apiserver": {"version": "v1.35.4"}})

    merged = stack_report.merge([one, two])

    assert merged["pods"] == {"slurm-plugin": 11, "htcondor-plugin": 3, "kubernetes-plugin": 0}
    assert merged["slurm_jobs"] == {"submitted": 11, "finished": 11}
    assert set(merged["components"]) == {"slurmctld", "kube-apiserver", "interlink-htcondor-plugin"}
    assert one["pods"]["slurm-plugin"] == 3  # the inputs are left as they were
    line = stack_report.write(merged, tmp_path / "e2e-stack.json")
    assert json.loads((tmp_path / "e2e-stack.json").read_text()) == merged
    assert '"slurm-plugin": 11' in line


def test_an_e2e_file_is_one_unit_of_work_and_other_tests_are_each_their_own():
    assert xdist_scope("tests/e2e/test_faults_e2e.py::test_a") == "tests/e2e/test_faults_e2e.py"
    assert xdist_scope("tests/e2e/test_faults_e2e.py::test_b[x]") == "tests/e2e/test_faults_e2e.py"
    assert xdist_scope("tests/test_units.py::test_a") == "tests/test_units.py::test_a"
