"""The package's build backend: maturin's, with one check first.

Building from source compiles the Rust crate, so it needs a Rust toolchain. Without one,
maturin would try to download one (and, offline, end in a long traceback); this says what is
missing in one line instead. Every hook is maturin's own once the check passes.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Mapping, Optional

import maturin

MESSAGE = (
    "inflight-log: building from source needs a Rust toolchain (cargo 1.89 or newer) and "
    "there is no cargo on PATH: install one (https://rustup.rs) and run pip again, or "
    "install a prebuilt wheel"
)


def _need_cargo() -> None:
    if not (os.environ.get("CARGO") or shutil.which("cargo")):
        raise SystemExit(MESSAGE)


def get_requires_for_build_wheel(config_settings: Optional[Mapping[str, Any]] = None) -> list[str]:
    _need_cargo()
    return maturin.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings: Optional[Mapping[str, Any]] = None) -> list[str]:
    _need_cargo()
    return maturin.get_requires_for_build_sdist(config_settings)


def get_requires_for_build_editable(
    config_settings: Optional[Mapping[str, Any]] = None,
) -> list[str]:
    _need_cargo()
    return maturin.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Optional[Mapping[str, Any]] = None
) -> str:
    _need_cargo()
    return maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: Optional[Mapping[str, Any]] = None
) -> str:
    _need_cargo()
    return maturin.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    _need_cargo()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    _need_cargo()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    _need_cargo()
    return maturin.build_sdist(sdist_directory, config_settings)
