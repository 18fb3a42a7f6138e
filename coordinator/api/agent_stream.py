"""AgentService: the Connect stream and DownloadArtifact."""

from __future__ import annotations

from coordinator.api.base import Api


class StreamRpcs(Api):
    pass
