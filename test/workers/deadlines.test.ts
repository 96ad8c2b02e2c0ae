/** The one-alarm policy every object shares (durable-objects/deadlines.ts), on a real object's storage. */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_ALARM_AHEAD_MS, OneAlarm } from "../../durable-objects/deadlines";

describe("OneAlarm", () => {
  it("only ever moves the alarm earlier, counts each write, clamps what the runtime would refuse", async () => {
    await runInDurableObject(env.TRACE_GRAPH.getByName("one-alarm-test"), async (_obj: unknown, state) => {
      let writes = 0;
      const alarm = new OneAlarm(state.storage, () => writes++, "test");
      const now = Date.now() / 1000;
      await alarm.atOrBefore([now + 100, null]);
      expect(await state.storage.getAlarm()).toBe(Math.ceil((now + 100) * 1000));
      await alarm.atOrBefore([now + 500]); // later: left where it is, no write
      expect(writes).toBe(1);
      await alarm.atOrBefore([now + 50, NaN]); // earlier: moved; NaN skipped
      expect(await state.storage.getAlarm()).toBe(Math.ceil((now + 50) * 1000));
      expect(writes).toBe(2);
      alarm.fired();
      await state.storage.deleteAlarm();
      await alarm.atOrBefore([now + 1e12]); // years away: a day ahead at most
      const at = (await state.storage.getAlarm())!;
      expect(at).toBeLessThanOrEqual(Date.now() + MAX_ALARM_AHEAD_MS);
      expect(at).toBeGreaterThan(Date.now() + MAX_ALARM_AHEAD_MS - 60_000);
      await state.storage.deleteAlarm();
    });
  });
});
