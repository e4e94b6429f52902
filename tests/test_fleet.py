"""Releases on the workstation: the repository's files and metadata, the rollout plan, and which
bundles a camera takes (issue 30, lines 1, 2 and 4). The camera's agent: test_fleet_agent.py."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from maskgate.errors import ReleaseError

pytest.importorskip("tuf")


@pytest.fixture(scope="module")
def release_builds(quantized_builds, tmp_path_factory):
    """The TFLite int8 bundles of the three models (a small real release)."""
    out = tmp_path_factory.mktemp("release-builds")
    for bundle in quantized_builds.iterdir():
        if bundle.is_dir() and bundle.name.endswith("-tflite-int8"):
            shutil.copytree(bundle, out / bundle.name)
    return out


@pytest.fixture(scope="module")
def site_key(tmp_path_factory):
    from maskgate.converters.signing import generate_key, load_key

    folder = tmp_path_factory.mktemp("keys")
    generate_key(folder / "site.key")
    return load_key(folder / "site.key", signing=True)


def _repo(path, key, **kw):
    from maskgate.fleet.repository import ReleaseRepository

    return ReleaseRepository(path, key, **kw)


def _stored_files(repo_root):
    return sorted(p for p in (repo_root / "targets").rglob("*") if p.is_file())


def test_a_release_is_stored_by_hash_signed_and_a_second_release_of_it_stores_nothing(release_builds, site_key,
                                                                                     tmp_path):
    from maskgate.fleet.release import describe

    builds = tmp_path / "builds"
    shutil.copytree(release_builds, builds)
    release, sources = describe(builds, version="2026.12.1", channel="stable", key=site_key)
    repo = _repo(tmp_path / "repo", site_key)
    first = repo.add(release, sources, percent=10)
    files = _stored_files(repo.root)
    assert first.new_files == len(files) and first.kept_files == 0
    for bundle in release.bundles:  # each file under its sha256, the bundles signed by the site key
        assert "signature.json" in bundle.files
        for file in bundle.files.values():
            stored = repo.stored_path(file.path, file.sha256)
            assert stored.name.startswith(file.sha256) and stored.stat().st_size == file.length
    again = repo.add(*describe(builds, version="2026.12.1", channel="stable", key=site_key))
    assert again.new_files == 0 and again.new_bytes == 0 and _stored_files(repo.root) == files
    assert repo.rollout().get("2026.12.1").percent == 10  # a re-release leaves the rollout as it was
    # every role signed by the site key, with an expiry; versions went up on each write
    root, targets, snapshot, timestamp = repo.current()
    for md in (root, targets, snapshot, timestamp):
        root.verify_delegate(md.signed.type, md)
        assert md.signed.expires is not None
    assert targets.signed.version == 3 and timestamp.signed.version == 3


def test_a_version_with_other_bundles_and_a_bundle_that_does_not_verify_are_refused(release_builds, site_key,
                                                                                   tmp_path):
    from maskgate.fleet.release import describe

    builds = tmp_path / "builds"
    shutil.copytree(release_builds, builds)
    repo = _repo(tmp_path / "repo", site_key)
    repo.add(*describe(builds, version="1", channel="stable", key=site_key))
    pose = next(builds.glob("pose_*"))
    shutil.rmtree(pose)
    with pytest.raises(ReleaseError, match="release 1 exists with other bundles"):
        repo.add(*describe(builds, version="1", channel="stable", key=site_key))
    model = next(next(builds.glob("mask_*")).glob("model.*"))
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(ReleaseError, match=r"cannot be released: mask_mobilenetv2-tflite-int8: .*sha256"):
        describe(builds, version="2", channel="stable", key=site_key)
    with pytest.raises(ReleaseError, match="letters, digits"):
        describe(builds, version="../1", channel="stable")


def test_another_key_cannot_write_to_the_repository_and_hmac_cannot_sign_releases(release_builds, site_key,
                                                                                 tmp_path):
    from maskgate.converters.signing import generate_key, load_key
    from maskgate.fleet.release import describe

    repo = _repo(tmp_path / "repo", site_key)
    repo.add(*describe(release_builds, version="1", channel="stable"))
    generate_key(tmp_path / "other.key")
    other = _repo(tmp_path / "repo", load_key(tmp_path / "other.key", signing=True))
    with pytest.raises(ReleaseError, match="signed by another key"):
        other.set_rollout("1", percent=100)
    generate_key(tmp_path / "hmac.key", algorithm="hmac-sha256")
    with pytest.raises(ReleaseError, match="Ed25519"):
        _repo(tmp_path / "repo2", load_key(tmp_path / "hmac.key", signing=True))


def test_rollout_widening_keeps_the_cameras_already_admitted_and_groups_and_halt_hold():
    from maskgate.fleet.rollout import ReleasePlan, RolloutPlan, place

    cameras = [f"gate-{i:03d}" for i in range(400)]
    plan = RolloutPlan((ReleasePlan(version="2", sequence=2, channel="stable", percent=10),
                        ReleasePlan(version="1", sequence=1, channel="stable", percent=100)))
    at10 = {c for c in cameras if plan.chosen_for(c, channel="stable").version == "2"}
    plan50 = plan.changed("2", percent=50)
    at50 = {c for c in cameras if plan50.chosen_for(c, channel="stable").version == "2"}
    assert at10 < at50  # widening adds cameras, never swaps them
    assert 0.05 < len(at10) / len(cameras) < 0.15 and 0.42 < len(at50) / len(cameras) < 0.58
    assert place("2", "gate-001") == place("2", "gate-001") != place("3", "gate-001")  # stable, per release
    assert plan50.chosen_for("gate-001", channel="canary") is None  # another channel takes neither
    grouped = plan.changed("2", percent=0, groups=("lobby",))
    assert all(grouped.chosen_for(c, channel="stable", groups=("lobby",)).version == "2" for c in cameras)
    assert all(grouped.chosen_for(c, channel="stable").version == "1" for c in cameras)
    halted = plan50.changed("2", halt=True, reason="bad")
    assert all(halted.chosen_for(c, channel="stable").version == "1" for c in cameras)
    assert all(plan50.chosen_for(c, channel="stable", refused=frozenset({"2"})).version == "1" for c in at50)
    with pytest.raises(ReleaseError, match="no release '9'"):
        plan.changed("9", percent=1)
    with pytest.raises(ReleaseError, match="between 0 and 100"):
        plan.changed("2", percent=101)
    round_trip = RolloutPlan.from_dict(json.loads(json.dumps(halted.to_dict())))
    assert round_trip == halted


def test_a_camera_takes_only_the_bundles_it_can_run(release_builds, site_key):
    from maskgate.fleet.choose import missing_models, runnable
    from maskgate.fleet.release import describe

    release, _ = describe(release_builds, version="1", channel="stable")
    mask = next(b for b in release.bundles if b.model == "mask_mobilenetv2")
    # the same release with an RKNN bundle for two chips (as 'maskgate build --formats rknn' records them)
    npu = [dataclasses.replace(mask, name=f"mask_mobilenetv2-rknn-int8-{soc}", format="rknn", soc=soc)
           for soc in ("rk3568", "rk3588")]
    wide = dataclasses.replace(release, bundles=(*release.bundles, *npu))
    here = {"tflite": ["tflite/cpu"], "rknn": ["rknn/npu"]}
    take, left = runnable(wide, soc="rk3568", formats=here)
    assert {b.name for b in take} == {b.name for b in release.bundles} | {"mask_mobilenetv2-rknn-int8-rk3568"}
    assert "built for rk3588" in left["mask_mobilenetv2-rknn-int8-rk3588"]
    take, left = runnable(wide, soc=None, formats={"tflite": ["tflite/cpu"]})
    assert {b.name for b in take} == {b.name for b in release.bundles} and len(left) == 2
    take, left = runnable(release, soc=None, formats={"openvino": ["openvino/cpu"]})
    assert take == [] and missing_models(release, take) == release.models
    assert "no runtime here serves tflite" in left[mask.name]


def test_the_soc_is_read_from_the_device_tree(tmp_path):
    from maskgate.fleet.choose import detected_soc

    compatible = tmp_path / "compatible"
    compatible.write_bytes(b"radxa,rock-3a\0rockchip,rk3568\0")
    assert detected_soc(compatible) == "rk3568"
    compatible.write_bytes(b"qcom,qcm6490-idp\0qcom,qcs6490\0")
    assert detected_soc(compatible) == "qcs6490"
    assert detected_soc(tmp_path / "absent") is None
