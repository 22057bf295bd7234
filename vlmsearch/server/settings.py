"""What a server allows: where it listens, who may call it, how big an upload may be, which folders
it may index. Frozen and passed down; the CLI builds it from its options."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vlmsearch.errors import ConfigError

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class ServerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # required when the server listens beyond this machine
    cors_origins: tuple[str, ...] = ()  # browsers on other origins are refused unless named here
    allow_paths: tuple[Path, ...] = ()  # server-side folders /v1/index may read; uploads need none
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_files: int = 100
    max_image_pixels: int = 40_000_000
    max_turns: int = Field(default=50, ge=0)  # earlier turns a conversation may send (only the last few reach prompts)
    max_history_chars: int = Field(default=200_000, ge=0)  # their questions, answers and cited text together
    sbs: Path | None = None  # an `eval sbs` folder to serve the judging page from, at /judge/
    uploads: Path | None = None  # where uploaded files are kept for indexing [default: beside the store]
    thumbnail_side: int = Field(default=320, ge=32, le=2048)

    @property
    def local_only(self) -> bool:
        return self.host in LOOPBACK

    def check(self) -> ServerSettings:
        """Refuse settings that would expose the library: beyond localhost, a key is required."""
        if not self.local_only and not self.api_key:
            raise ConfigError(
                f"listening on {self.host} makes the server reachable from other machines: set an API key with "
                "--api-key or VLMSEARCH_API_KEY (clients send it as 'Authorization: Bearer <key>')"
            )
        for path in self.allow_paths:
            if not path.is_dir():
                raise ConfigError(f"--allow-path {path}: not a folder")
        return self
