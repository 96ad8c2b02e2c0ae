/**
 * Documentation links stay inside the repository and resolve: every relative link in every tracked
 * Markdown file names a tracked file or directory, and a `#fragment` names a heading of the target
 * (GitHub's anchors). Nothing may link out of the tree (e.g. `../shared/…`, which only exists on
 * the machine the docs were written on).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function tracked(): string[] {
  return execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0").filter(Boolean);
}

/** Code (fenced blocks, inline spans) is not prose: links in it are examples, not links. */
function withoutCode(text: string): string {
  return text.replace(/^([ \t]*)(```|~~~)[^\n]*\n[\s\S]*?^\1\2[^\n]*$/gm, "").replace(/(`+)[^`]*?\1/g, "");
}

/** GitHub's heading anchor: markup dropped, lower case, punctuation removed, spaces → hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** Every anchor a Markdown file offers (repeated headings get -1, -2, … as on GitHub). */
function anchors(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const prose = text.replace(/^([ \t]*)(```|~~~)[^\n]*\n[\s\S]*?^\1\2[^\n]*$/gm, "");
  for (const m of prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) out.add(m[1]!);
  return out;
}

/** Link targets in Markdown prose: inline links and images, reference definitions, HTML href/src. */
export function linkTargets(text: string): string[] {
  const prose = withoutCode(text);
  const out: string[] = [];
  for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+["'(][^)]*)?\)/g)) out.push(m[1]!);
  for (const m of prose.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$/gm)) out.push(m[1]!);
  for (const m of prose.matchAll(/\b(?:href|src)="([^"]+)"/g)) out.push(m[1]!);
  return out;
}

/** Problems with the links of `file` (a repo-relative path) whose text is `text`. */
export function checkLinks(
  file: string,
  text: string,
  files: Set<string>,
  read: (path: string) => string,
): string[] {
  const dirs = new Set<string>();
  for (const f of files) for (let d = posix.dirname(f); d !== "."; d = posix.dirname(d)) dirs.add(d);
  const problems: string[] = [];
  for (const target of linkTargets(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
    const [rawPath = "", fragment] = target.split("#", 2);
    const path = decodeURIComponent(rawPath);
    if (path.startsWith("/")) {
      problems.push(`${file}: ${target} points outside the repository`);
      continue;
    }
    const resolved =
      path === "" ? file : posix.normalize(posix.join(posix.dirname(file), path)).replace(/\/$/, "");
    if (resolved.startsWith("..")) {
      problems.push(`${file}: ${target} points outside the repository`);
      continue;
    }
    if (!files.has(resolved) && !dirs.has(resolved) && resolved !== ".") {
      problems.push(`${file}: ${target} → ${resolved} is not a tracked file or directory`);
      continue;
    }
    if (fragment && files.has(resolved) && resolved.endsWith(".md") && !anchors(read(resolved)).has(fragment))
      problems.push(`${file}: ${target} → no heading "#${fragment}" in ${resolved}`);
  }
  return problems;
}

describe("documentation links", () => {
  const files = new Set(tracked());
  const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
  const markdown = [...files].filter((f) => f.endsWith(".md"));

  it("finds the Markdown files to check", () => {
    expect(markdown).toEqual(
      expect.arrayContaining(["README.md", "python/README.md", "docs/design.md", "docs/celery-semantics.md"]),
    );
  });

  it("every relative link in every tracked .md file resolves inside the repository", () => {
    const problems = markdown.flatMap((f) => checkLinks(f, read(f), files, read));
    expect(problems).toEqual([]);
  });

  it("the check itself catches what it is for", () => {
    const fake = new Set(["README.md", "docs/a.md", "docs/sub/b.txt"]);
    const texts: Record<string, string> = {
      "docs/a.md": "# Title\n\n## Wire format v1 (`POST /v1/events`)\n\n## Again\n\n## Again\n",
    };
    const text = [
      "[ok](docs/a.md) [ok](docs/a.md#wire-format-v1-post-v1events) [ok](docs/a.md#again-1) [ok](docs/sub/)",
      "[ok](https://example.com/x.md) ![img](docs/sub/b.txt 'title')",
      "[out](../shared/CELERY.md) [gone](docs/missing.md) [anchor](docs/a.md#nope) [abs](/etc/passwd)",
      "[ref]: docs/nothing.md",
      '<a href="docs/zzz.md">x</a>',
      "`[code](not/checked.md)`",
      "```\n[block](not/checked.md)\n```",
    ].join("\n");
    const problems = checkLinks("README.md", text, fake, (p) => texts[p] ?? "");
    expect(problems).toEqual([
      "README.md: ../shared/CELERY.md points outside the repository",
      "README.md: docs/missing.md → docs/missing.md is not a tracked file or directory",
      'README.md: docs/a.md#nope → no heading "#nope" in docs/a.md',
      "README.md: /etc/passwd points outside the repository",
      "README.md: docs/nothing.md → docs/nothing.md is not a tracked file or directory",
      "README.md: docs/zzz.md → docs/zzz.md is not a tracked file or directory",
    ]);
    // Two code blocks, each after a blank line: the prose and heading between them stay prose.
    const fenced = "# T\n\n```sh\na\n```\n\n## Between\n\n[gone](docs/between.md)\n\n```sh\nb\n```\n";
    expect(checkLinks("docs/c.md", fenced, new Set(["docs/c.md"]), () => "")).toEqual([
      "docs/c.md: docs/between.md → docs/docs/between.md is not a tracked file or directory",
    ]);
    expect(
      checkLinks("docs/c.md", `${fenced}[ok](#between)\n`, new Set(["docs/c.md"]), () => fenced),
    ).toEqual(checkLinks("docs/c.md", fenced, new Set(["docs/c.md"]), () => ""));
    expect(slug("Set-up on a fresh machine (two commands)")).toBe("set-up-on-a-fresh-machine-two-commands");
    expect(slug("When stemtrace is down: the producer's buffer, spool and exit flush")).toBe(
      "when-stemtrace-is-down-the-producers-buffer-spool-and-exit-flush",
    );
  });
});
