"""CallBatcher: concurrent calls written in rounds, each answered with its own outcome."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy.exc import OperationalError

from common.errors import ConvoyError, InvalidArgument, Unavailable
from coordinator.api.call_batcher import CallBatcher


class Writes:
    """A write function that records each round, refuses odd items and breaks on 'poison'."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.rounds: list[list[int | str]] = []
        self.gate = gate

    def __call__(self, items: list[int | str]) -> list[str | ConvoyError]:
        if self.gate is not None:
            self.gate.wait(5)
        self.rounds.append(list(items))
        if "poison" in items:
            raise ValueError("the database refused a row")
        if "down" in items:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return [InvalidArgument(f"{i} is odd") if isinstance(i, int) and i % 2 else f"wrote {i}" for i in items]


async def _submit_all(b: CallBatcher[int | str, str], items: list[int | str]) -> list[str | BaseException]:
    return list(await asyncio.gather(*(b.submit(i) for i in items), return_exceptions=True))


def test_a_burst_is_written_in_few_rounds_and_each_call_gets_its_own_answer() -> None:
    gate = threading.Event()
    writes = Writes(gate)
    b: CallBatcher[int | str, str] = CallBatcher("t", writes, max_batch=40)

    async def go() -> list[str | BaseException]:
        task = asyncio.ensure_future(_submit_all(b, list(range(100))))
        await asyncio.sleep(0.05)  # the first round holds the writer while the rest queue up
        gate.set()
        out = await task
        await b.close()
        return out

    out = asyncio.run(go())
    assert [r for r in out if isinstance(r, str)] == [f"wrote {i}" for i in range(0, 100, 2)]
    assert all(isinstance(out[i], InvalidArgument) for i in range(1, 100, 2))
    assert len(writes.rounds) <= 4 and max(len(r) for r in writes.rounds) == 40
    assert sorted(i for r in writes.rounds for i in r if isinstance(i, int)) == list(range(100))


def test_a_batch_that_raises_is_written_again_one_call_at_a_time() -> None:
    gate = threading.Event()
    writes = Writes(gate)
    b: CallBatcher[int | str, str] = CallBatcher("t", writes)

    async def go() -> list[str | BaseException]:
        task = asyncio.ensure_future(_submit_all(b, [0, 2, "poison", 4]))
        await asyncio.sleep(0.05)
        gate.set()
        return await task

    out = asyncio.run(go())
    assert out[0] == "wrote 0" and out[1] == "wrote 2" and out[3] == "wrote 4"
    assert isinstance(out[2], ValueError)


def test_an_unavailable_store_fails_the_round_without_retrying_each_call() -> None:
    gate = threading.Event()
    writes = Writes(gate)
    b: CallBatcher[int | str, str] = CallBatcher("t", writes)

    async def go() -> list[str | BaseException]:
        task = asyncio.ensure_future(_submit_all(b, [0, "down", 2]))
        await asyncio.sleep(0.05)
        gate.set()
        return await task

    out = asyncio.run(go())
    rounds_with_down = [r for r in writes.rounds if "down" in r]
    assert len(rounds_with_down) == 1 and all(isinstance(r, OperationalError) for r in out[1:])


def test_a_caller_that_goes_away_does_not_stop_the_writer() -> None:
    gate = threading.Event()
    b: CallBatcher[int | str, str] = CallBatcher("t", Writes(gate))

    async def go() -> str:
        first = asyncio.ensure_future(b.submit(0))
        await asyncio.sleep(0.02)
        first.cancel()
        gate.set()
        out = await b.submit(2)
        await b.close()
        await b.close()  # twice is fine
        return out

    assert asyncio.run(go()) == "wrote 2"


def test_closing_mid_round_answers_the_waiting_calls_with_unavailable() -> None:
    gate = threading.Event()
    b: CallBatcher[int | str, str] = CallBatcher("t", Writes(gate))

    async def go() -> BaseException | str:
        call = asyncio.ensure_future(b.submit(0))
        await asyncio.sleep(0.02)
        await b.close()
        gate.set()
        try:
            return await call
        except Unavailable as exc:
            return exc

    assert isinstance(asyncio.run(go()), Unavailable)


@pytest.mark.parametrize("size", [0, 1])
def test_max_batch_of_one_is_one_call_per_round(size: int) -> None:
    writes = Writes()
    b: CallBatcher[int | str, str] = CallBatcher("t", writes, max_batch=size)
    out = asyncio.run(_submit_all(b, [0, 2, 4]))
    assert out == ["wrote 0", "wrote 2", "wrote 4"] and all(len(r) == 1 for r in writes.rounds)


@pytest.mark.parametrize("linger", [0.0, 0.5])
def test_calls_arriving_one_at_a_time_share_a_round_when_the_writer_lingers(linger: float) -> None:
    writes = Writes()
    b: CallBatcher[int | str, str] = CallBatcher("t", writes, max_batch=40, linger_s=linger)

    async def go() -> list[str | BaseException]:
        tasks = []
        for i in (0, 2, 4):  # a wave's calls, a moment apart
            tasks.append(asyncio.ensure_future(b.submit(i)))
            await asyncio.sleep(0.05)
        out = list(await asyncio.gather(*tasks, return_exceptions=True))
        await b.close()
        return out

    assert asyncio.run(go()) == ["wrote 0", "wrote 2", "wrote 4"]
    if linger:
        assert writes.rounds == [[0, 2, 4]]
    else:  # each written as it came (a slow writer thread may catch two)
        assert len(writes.rounds) >= 2


def test_one_call_per_round_never_lingers() -> None:
    assert CallBatcher("t", Writes(), max_batch=1, linger_s=0.5).linger_s == 0.0
