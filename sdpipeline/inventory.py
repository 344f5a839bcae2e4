"""What lies in the delivery folder against what the codebook expects there.

A file the codebook does not name is never read, so a misnamed or misplaced delivery would
otherwise vanish without a word: the 2023 clients file dropped into the 2017 folder, a new
instrument nobody added to the codebook. Every raw asset of a wave refuses to load while its
folder holds such a file. Hidden files and Excel's ``~$`` lock files are not deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdpipeline import settings
from sdpipeline.codebook import Codebook
from sdpipeline.readers import DeliveryError


@dataclass(frozen=True)
class StrayFile:
    path: Path
    reason: str


def expected_files(codebook: Codebook) -> dict[str, dict[str, str]]:
    """File name → instrument, per wave, as the codebook names them."""
    return {
        wave_id: {
            instrument.files[wave_id].name: instrument.name
            for instrument in codebook.instruments.values()
            if wave_id in instrument.files
        }
        for wave_id in codebook.waves
    }


def _is_delivery(path: Path) -> bool:
    return not path.name.startswith((".", "~$"))


def stray_files(codebook: Codebook, wave_id: str, raw_dir: Path | None = None) -> list[StrayFile]:
    """Entries in the wave's folder that no instrument of that wave claims, and folders beside
    the wave folders that are no wave of the codebook."""
    raw_dir = raw_dir or settings.raw_dir()
    expected = expected_files(codebook)
    strays = [
        StrayFile(path, f"folder {path.name}/ is not a wave of the codebook {sorted(expected)}")
        for path in sorted(raw_dir.iterdir() if raw_dir.is_dir() else [])
        if path.is_dir() and path.name not in expected and _is_delivery(path)
    ]
    folder = raw_dir / wave_id
    for path in sorted(folder.iterdir() if folder.is_dir() else []):
        if not _is_delivery(path) or path.name in expected[wave_id]:
            continue
        strays.append(StrayFile(path, _reason(path.name, wave_id, expected)))
    return strays


def _reason(name: str, wave_id: str, expected: dict[str, dict[str, str]]) -> str:
    for other_wave, files in expected.items():
        if name in files and other_wave != wave_id:
            return (
                f"is the {files[name]} file of wave {other_wave}; it belongs in {other_wave}/, "
                f"not {wave_id}/"
            )
    for expected_name, instrument in expected[wave_id].items():
        if name.casefold() == expected_name.casefold():
            return f"differs from the {instrument} file's name {expected_name} in letter case"
    known = ", ".join(sorted(expected[wave_id]))
    return f"matches no instrument of wave {wave_id} (expected: {known})"


def check_delivery_folder(codebook: Codebook, wave_id: str, raw_dir: Path | None = None) -> None:
    """Raise ``DeliveryError`` naming every stray file, so nothing of the wave is refreshed
    from a delivery that is not what the codebook describes."""
    strays = stray_files(codebook, wave_id, raw_dir)
    if strays:
        listing = "; ".join(f"{stray.path.name} {stray.reason}" for stray in strays)
        raise DeliveryError(
            strays[0].path,
            f"the delivery folder holds files the codebook does not name: {listing}. Move them "
            "out or add them to the codebook",
        )
