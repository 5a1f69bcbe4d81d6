"""Lock stores. ``LockStoreContract`` is the behaviour every lock store must have; a store's
test class subclasses it and overrides the ``lock_stores`` fixture with two stores that share
their locks (two handles on one in-memory store, or two clients of one Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.storage.locks import InMemoryLockStore, LockStore


async def _turn(store: LockStore, sender_id: str, log: list[str], name: str) -> None:
    async with store.lock(sender_id):
        log.append(f"{name} in")
        await asyncio.sleep(0.02)  # a turn that awaits (an action server, the NLU, ...)
        log.append(f"{name} out")


class LockStoreContract:
    @pytest.fixture
    def lock_stores(self) -> Iterator[tuple[LockStore, LockStore]]:
        raise NotImplementedError("override the lock_stores fixture")

    def test_is_a_lock_store(self, lock_stores: tuple[LockStore, LockStore]) -> None:
        assert all(isinstance(store, LockStore) for store in lock_stores)

    async def test_turns_of_one_conversation_never_overlap(
            self, lock_stores: tuple[LockStore, LockStore]) -> None:
        log: list[str] = []
        await asyncio.gather(*(_turn(lock_stores[i % 2], "ana", log, str(i)) for i in range(6)))
        assert len(log) == 12
        for start in range(0, 12, 2):  # every "in" is followed by the same turn's "out"
            assert log[start].endswith(" in")
            assert log[start + 1] == log[start].replace(" in", " out")

    async def test_conversations_do_not_wait_for_each_other(
            self, lock_stores: tuple[LockStore, LockStore]) -> None:
        first, second = lock_stores
        async with first.lock("ana"):
            await asyncio.wait_for(_turn(second, "bo", [], "bo"), timeout=5)

    async def test_the_lock_is_free_again_after_a_failing_turn(
            self, lock_stores: tuple[LockStore, LockStore]) -> None:
        first, second = lock_stores
        with pytest.raises(RuntimeError):
            async with first.lock("ana"):
                raise RuntimeError("the turn failed")
        await asyncio.wait_for(_turn(second, "ana", [], "next"), timeout=5)


class TestInMemoryLockStore(LockStoreContract):
    @pytest.fixture
    def lock_stores(self) -> Iterator[tuple[LockStore, LockStore]]:
        store = InMemoryLockStore()
        yield store, store


async def test_in_memory_locks_are_forgotten_when_unused() -> None:
    store = InMemoryLockStore()
    log: list[str] = []
    await asyncio.gather(*(_turn(store, f"user{i % 3}", log, str(i)) for i in range(9)))
    assert len(store) == 0
    async with store.lock("ana"):
        assert len(store) == 1
    assert len(store) == 0
