"""The agent's result spool: each result is on disk (fsync) before it is sent, until the instance has it.

One JSON file per batch of results (``{"entries": [{"output", "result"}, ...]}``), named by its
first result's ``sys_id`` (each result's ``sys_id`` is also its answer's idempotency key).
Written to a temporary name, synced, renamed, and the folder synced: a crash leaves either the
whole batch or none, and a batch costs two syncs however many results it holds. The file is
removed once every result in it is confirmed. A file that cannot be read back is renamed
``*.damaged`` and left for a person; it never stops the others.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.ecc.record import EccRecord, check_sys_id
from midprobe.runner.queue.wire import answers_json


class ResultSpool:
    """Results waiting for the instance's confirmation, in ``folder`` (created if missing); thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        #: Per spool file, the results in it not confirmed yet; and each such result's file.
        self._left: dict[Path, set[str]] = {}
        self._file_of: dict[str, Path] = {}
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
        self.put_many([(output_sys_id, result)])

    def put_many(self, pairs: Sequence[tuple[str, EccRecord]], *, encoded: str | None = None) -> None:
        """Keep every ``(output sys_id, result)`` pair durably, in one file (one sync for the batch).

        ``encoded``: the pairs already as ``wire.answers_json`` has them (the request's body shares it).
        """
        if not pairs:
            return
        path = self._path(pairs[0][1].sys_id)
        temporary = path.with_suffix(".tmp")
        text = '{"entries": ' + (answers_json(pairs) if encoded is None else encoded) + "}"
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
        self._remember(path, [result.sys_id for _, result in pairs])

    def _remember(self, path: Path, results: Sequence[str]) -> None:
        with self._lock:
            self._left[path] = set(results)
            for result_sys_id in results:
                self._file_of[result_sys_id] = path

    def remove(self, result_sys_id: str) -> None:
        """Forget a confirmed result; its file goes once every result in it is confirmed.

        Not synced: a removal lost in a crash only resends that result, which the instance
        recognises by its idempotency key.
        """
        with self._lock:
            path = self._file_of.pop(result_sys_id, None) or self._path(result_sys_id)
            left = self._left.get(path)
            if left is not None:
                left.discard(result_sys_id)
                if left:
                    return
                del self._left[path]
        try:
            path.unlink(missing_ok=True)
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
                found = [
                    (check_sys_id(str(entry["output"])), EccRecord.from_dict(entry["result"]))
                    for entry in data.get("entries", [data])
                ]
            except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError):
                path.rename(path.with_suffix(".damaged"))
                continue
            self._remember(path, [result.sys_id for _, result in found])
            entries += found
        entries.sort(key=lambda entry: entry[1].sequence)
        return entries

    def _sync_folder(self) -> None:
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


__all__ = ["ResultSpool"]
