# The Convex test runtime (tests/convex: convex, convex-test, typescript, tsx, pinned by its
# lockfile), installed with npm when missing or older than the lockfile. Sourced by
# scripts/test.sh and scripts/demo.sh.

convex_tools=tests/convex

ensure_convex_tools() {
    local installed=$convex_tools/node_modules/.package-lock.json
    if [[ -e $installed && ! $convex_tools/package-lock.json -nt $installed ]]; then
        return
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: the Convex test runtime needs Node.js 20 or later with npm (for $convex_tools)" >&2
        exit 1
    fi
    echo "installing the Convex test runtime: $convex_tools/node_modules is missing or older than its package-lock.json" >&2
    npm ci --prefix "$convex_tools" --no-audit --no-fund
}
