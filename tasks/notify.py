"""The operators' notification channel: the `erp-ozmap-alerts` Prefect block, when one exists."""

from __future__ import annotations

from typing import Any

ALERT_BLOCK = "erp-ozmap-alerts"


def load_alert_block() -> Any | None:
    """The notification block named `erp-ozmap-alerts` (Slack, e-mail, ...), or None if nobody
    created one. Raises TypeError when a block of that name is not a notification block."""
    from prefect import get_client
    from prefect.blocks.core import Block

    with get_client(sync_client=True) as client:
        docs = [d for d in client.read_block_documents() if d.name == ALERT_BLOCK]
    if not docs or docs[0].block_type is None:
        return None
    slug = f"{docs[0].block_type.slug}/{ALERT_BLOCK}"
    block = Block.load(slug)
    if not hasattr(block, "notify"):
        raise TypeError(f"block {slug} is not a notification block")
    return block
