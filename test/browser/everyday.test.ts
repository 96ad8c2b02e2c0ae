/**
 * Everyday use (issue 14): an unknown task id gets a page that says what it means and a way on,
 * and the search it links to is filled in.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, screenshot, startServer, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  server = await startServer();
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("everyday use", () => {
  it("an unknown task id explains itself and links to a search for it", async () => {
    await page.goto(`${server.base}/tasks/0000dead-beef-4000-8000-000000000000`);
    const box = page.locator("[data-task-error]");
    await box.waitFor();
    const message = await box.innerText();
    expect(message).toContain("is not available");
    expect(message).toContain("retention period");
    await screenshot(page, "40-unknown-task");
    await box.getByRole("link", { name: "search for it" }).click();
    await page.waitForURL(/\/\?q=0000dead/);
    expect(await page.getByLabel("Find a task by id").inputValue()).toBe("0000dead-beef-4000-8000-000000000000");
  });
});
