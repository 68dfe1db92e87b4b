"""A demo folder from an earlier release is moved aside, not half-reused; the current one is
kept as it is."""

from __future__ import annotations

from pathlib import Path

from deploy.demo import LAYOUT, LAYOUT_FILE, retire_earlier_data


def test_an_earlier_releases_demo_folder_is_moved_aside_whole(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "nats" / "hub").mkdir(parents=True)
    (root / "credentials.json").write_text("{}")

    aside = retire_earlier_data(root)

    assert aside is not None and aside.parent == tmp_path
    assert (aside / "credentials.json").read_text() == "{}"  # nothing of it lost
    assert (aside / "nats" / "hub").is_dir()
    assert [p.name for p in root.iterdir()] == [LAYOUT_FILE]  # a new demo starts empty
    assert (root / LAYOUT_FILE).read_text().strip() == LAYOUT


def test_a_current_demo_folder_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    retire_earlier_data(root)  # a first start marks it
    (root / "credentials.json").write_text('{"kept": true}')

    assert retire_earlier_data(root) is None
    assert (root / "credentials.json").read_text() == '{"kept": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
