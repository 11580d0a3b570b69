"""The agent's result spool: each result is on disk (fsync) before it is sent, until the instance has it.

One JSON file per result, named by the result's ``sys_id`` (which is also the answer's
idempotency key). Written to a temporary name, synced, renamed, and the folder synced: a
crash leaves either the whole entry or none. A file that cannot be read back is renamed
``*.damaged`` and left for a person; it never stops the others.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.ecc.record import EccRecord, check_sys_id


class ResultSpool:
    """Results waiting for the instance's confirmation, in ``folder`` (created if missing)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise ConfigError(
                f"cannot create the result spool: {error.strerror or error}", field="spool_dir"
            ) from None

    def _path(self, result_sys_id: str) -> Path:
        return self.folder / f"{check_sys_id(result_sys_id)}.json"

    def put(self, output_sys_id: str, result: EccRecord) -> None:
        """Keep ``result`` (the answer to ``output_sys_id``) durably; ``QueueError`` if the disk refuses."""
        path = self._path(result.sys_id)
        temporary = path.with_suffix(".tmp")
        text = json.dumps({"output": output_sys_id, "result": result.as_dict()})
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
            self._sync_folder()
        except OSError as error:
            raise QueueError(
                f"cannot write the result spool {self.folder}: {error.strerror or error}"
            ) from None

    def remove(self, result_sys_id: str) -> None:
        try:
            self._path(result_sys_id).unlink(missing_ok=True)
            self._sync_folder()
        except OSError as error:
            raise QueueError(
                f"cannot update the result spool {self.folder}: {error.strerror or error}"
            ) from None

    def backlog(self) -> int:
        """How many results wait for the instance (a count of files: nothing is read)."""
        return sum(1 for _ in self.folder.glob("*.json"))

    def pending(self) -> list[tuple[str, EccRecord]]:
        """The (output sys_id, result) pairs still waiting, oldest result first."""
        entries: list[tuple[str, EccRecord]] = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                entries.append((check_sys_id(str(data["output"])), EccRecord.from_dict(data["result"])))
            except (OSError, ValueError, KeyError, TypeError, ConfigError):
                path.rename(path.with_suffix(".damaged"))
        entries.sort(key=lambda entry: entry[1].sequence)
        return entries

    def _sync_folder(self) -> None:
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


__all__ = ["ResultSpool"]
