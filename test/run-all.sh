#!/usr/bin/env bash
# The README's test command (`npm test`): installs what the tests need, runs every suite, and ends
# with one line "N passed, N failed" totalling all of them (TypeScript, Python, browser).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-output
export WRANGLER_SEND_METRICS=false CI=${CI:-1}

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
/usr/bin/python3 -c "import celery, redis" 2>/dev/null || need_apt+=(python3-celery python3-redis)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "!! missing Debian packages: ${need_apt[*]}"
    echo "!! install them with: sudo apt-get install -y ${need_apt[*]}   (the suites that need them will fail)"
  fi
fi
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install`, not `npm ci`: the lock file names workerd's other-platform binaries as optional
  # packages that npm ci insists on seeing resolved.
  echo "== npm install"
  npm install --no-save --no-audit --no-fund --loglevel=error
fi
if [ ! -x node_modules/.bin/node ]; then
  echo "!! npm install did not provide node_modules/.bin/node (Node 22); cannot run the suites"
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0
failed=0
summary=()

# vitest suite: name, config
run_vitest() {
  local name=$1 config=$2 out="$PWD/test-output/$1.json"
  echo "== $name"
  rm -f "$out"
  node_modules/.bin/node node_modules/vitest/vitest.mjs run --config "$config" --reporter=default --reporter=json --outputFile="$out"
  local counts
  counts=$(node_modules/.bin/node -e '
    try { const r = require(process.argv[1]); console.log(r.numPassedTests, r.numFailedTests + (r.numTotalTestSuites && r.success === false && r.numFailedTests === 0 ? 1 : 0)); }
    catch { console.log("0 1"); }' "$out" 2>/dev/null || echo "0 1")
  add "$name" $counts
}

# python unittest suite: name, then the command
run_unittest() {
  local name=$1; shift
  echo "== $name"
  local log="test-output/$name.log"
  "$@" 2>&1 | tee "$log"
  local ran fails errors
  ran=$(grep -Eo '^Ran [0-9]+ test' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  fails=$(grep -Eo 'failures=[0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  errors=$(grep -Eo 'errors=[0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  local bad=$((fails + errors))
  [ "$ran" = 0 ] && bad=1
  add "$name" $((ran - fails - errors < 0 ? 0 : ran - fails - errors)) $bad
}

add() {
  summary+=("$1: $2 passed, $3 failed")
  passed=$((passed + $2))
  failed=$((failed + $3))
}

echo "== typecheck"
if node_modules/.bin/node node_modules/typescript/bin/tsc -p tsconfig.json; then add typecheck 1 0; else add typecheck 0 1; fi
[ -f web/tsconfig.json ] && { if node_modules/.bin/node node_modules/typescript/bin/tsc -p web/tsconfig.json --noEmit; then add typecheck-web 1 0; else add typecheck-web 0 1; fi; }

# The maintainer's checks: formatting (prettier), TypeScript and React rules (ESLint), Python (ruff).
echo "== lint"
if node_modules/.bin/node node_modules/prettier/bin/prettier.cjs --check . --log-level warn; then add prettier 1 0; else add prettier 0 1; fi
if node_modules/.bin/node node_modules/eslint/bin/eslint.js .; then add eslint 1 0; else add eslint 0 1; fi
if node_modules/.bin/node test/lint/ruff.mjs; then add ruff 1 0; else add ruff 0 1; fi

echo "== build web"
if npm run --silent build:web; then add build-web 1 0; else add build-web 0 1; fi
# The deploy bundle as `npm run deploy` builds it, without uploading: no account, login or network.
echo "== deploy dry run"
if npm run --silent deploy:check; then add deploy-dry-run 1 0; else add deploy-dry-run 0 1; fi
# The Pages alternative (docs/deploy.md "Pages as the UI host"): the Functions bundle and its
# _routes.json as `npm run deploy:pages` builds them, without uploading. test/node/pages.test.ts
# runs the Pages project locally against wrangler dev.
echo "== pages deploy dry run"
if npm run --silent deploy:pages:check; then add pages-dry-run 1 0; else add pages-dry-run 0 1; fi

run_vitest node test/node/vitest.config.ts
# Both trace layouts: the default shards (wrangler.toml), and one object per trace.
run_vitest workers test/workers/vitest.config.ts
TRACE_SHARDS=0 run_vitest workers-per-trace test/workers/vitest.config.ts
# Webhooks, delivered to a receiver on loopback (its own config: only this suite sends webhooks).
run_vitest webhooks test/webhooks/vitest.config.ts
TRACE_SHARDS=0 run_vitest webhooks-per-trace test/webhooks/vitest.config.ts
# The index contract (Durable Object and Upstash Redis through a local REST endpoint in front of
# redis-server) and the Upstash outage test, in both layouts.
run_vitest upstash test/upstash/vitest.config.ts
TRACE_SHARDS=0 run_vitest upstash-per-trace test/upstash/vitest.config.ts
# The OpenTelemetry export against a loopback OTLP receiver (its own suite: the export is on there).
run_vitest otlp test/otlp/vitest.config.ts
TRACE_SHARDS=0 run_vitest otlp-per-trace test/otlp/vitest.config.ts
[ -d python/tests ] && run_unittest python /usr/bin/python3 -m unittest discover -s python/tests -t python
[ -d test/e2e ] && run_unittest e2e /usr/bin/python3 -m unittest discover -s test/e2e -t test/e2e
[ -f test/browser/vitest.config.ts ] && run_vitest browser test/browser/vitest.config.ts

echo
echo "== summary"
printf '  %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
