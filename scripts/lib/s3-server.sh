# The local S3-compatible server the files tests read from: moto's server (`moto_server`, from
# PyPI, pinned below), installed with pip when missing. Sourced by scripts/test.sh and
# scripts/bench-files.sh. Nothing is downloaded while the tests run.

moto_version=5.2.1

ensure_s3_server() {
    if command -v moto_server >/dev/null 2>&1; then
        return
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        echo "error: the files tests need Python 3 with pip for moto's S3 server (moto[server]==$moto_version)" >&2
        exit 1
    fi
    # `pip install --user` puts the script in the user base's bin/, which need not be on PATH.
    local user_bin
    user_bin="$(python3 -m site --user-base)/bin"
    export PATH="$PATH:$user_bin"
    if command -v moto_server >/dev/null 2>&1; then
        return
    fi
    echo "installing moto's S3 server: moto[server]==$moto_version" >&2
    python3 -m pip install --user --quiet "moto[server]==$moto_version"
    command -v moto_server >/dev/null 2>&1 || {
        echo "error: moto_server is not on PATH after pip install (looked in $user_bin too)" >&2
        exit 1
    }
}
