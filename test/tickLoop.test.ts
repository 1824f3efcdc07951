/**
 * The heartbeat loop shared by the poller, the replay runner and the capture runner: one tick at
 * a time, the first one included, and a poke during a tick is answered right after it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TickLoop } from '../engine/tickLoop.ts';
import { waitFor } from './harness.ts';

/** A tick that stays in progress until released; counts how many run at once. */
function gatedTicks() {
  const state = { started: 0, running: 0, maxRunning: 0, release: [] as (() => void)[] };
  const tick = async () => {
    state.started++;
    state.running++;
    state.maxRunning = Math.max(state.maxRunning, state.running);
    await new Promise<void>((resolve) => state.release.push(resolve));
    state.running--;
  };
  const releaseAll = () => { for (const release of state.release.splice(0)) release(); };
  return { state, tick, releaseAll };
}

describe('TickLoop', () => {
  it('never overlaps a poke with the first tick, and ticks again right after it', async () => {
    const { state, tick, releaseAll } = gatedTicks();
    const errors: Error[] = [];
    const loop = new TickLoop(tick, 60_000, (e) => errors.push(e));
    assert.equal(loop.start(), true);
    const first = loop.first();
    await waitFor(() => state.started === 1, 'the first tick runs');
    loop.poke();
    loop.poke();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(state.started, 1, 'no second tick while the first runs');
    releaseAll();
    await first;
    // The pokes are not left to the heartbeat a minute away: one more tick, at once.
    await waitFor(() => state.started === 2, 'a tick right after the first, for the pokes');
    releaseAll();
    await loop.halt();
    loop.stopped();
    assert.equal(state.maxRunning, 1);
    assert.equal(state.started, 2, 'two pokes during a tick make one more tick');
    assert.deepEqual(errors, []);
  });

  it('fails first() as its tick fails, reports later failures, and goes on ticking', async () => {
    let calls = 0;
    const errors: Error[] = [];
    const loop = new TickLoop(async () => {
      calls++;
      if (calls <= 2) throw new Error(`tick ${calls} failed`);
    }, 20, (e) => errors.push(e));
    loop.start();
    await assert.rejects(loop.first(), /tick 1 failed/);
    await waitFor(() => calls >= 3, 'the heartbeat goes on after failures');
    await loop.halt();
    loop.stopped();
    assert.deepEqual(errors.map((e) => e.message), ['tick 2 failed'], 'the first failure went to first(), not to onError');
  });

  it('halt() waits for the tick in progress and ends the pokes', async () => {
    const { state, tick, releaseAll } = gatedTicks();
    const loop = new TickLoop(tick, 60_000, () => {});
    loop.start();
    void loop.first();
    await waitFor(() => state.started === 1, 'the first tick runs');
    loop.poke();
    let halted = false;
    const halting = loop.halt().then(() => { halted = true; });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(halted, false, 'halt waits for the tick');
    releaseAll();
    await halting;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(state.started, 1, 'no tick after halt, though poked during the last one');
    loop.stopped();
  });
});
